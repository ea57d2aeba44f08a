#include "PortList.h"

#include <algorithm>
#include <bitset>
#include <charconv>

namespace sink {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::optional<uint16_t> parse_port(std::string_view s, std::string_view spec, std::string *why) {
  s = trim(s);
  unsigned long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec == std::errc::invalid_argument || p != s.data() + s.size()) {
    if (why)
      *why = "\"" + std::string(spec) + "\" is not a port number or range (expected e.g. 8080 or 9000-9002)";
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || v > 65535) {
    if (why) *why = "port " + std::string(s) + " is out of range 0-65535";
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

} // namespace

bool append_port_spec(std::string_view spec, std::vector<uint16_t> &ports, std::string *why) {
  spec = trim(spec);
  if (spec.empty()) {
    if (why) *why = "empty element in port list (expected e.g. 8080 or 9000-9002)";
    return false;
  }
  auto dash = spec.find('-');
  auto lo = parse_port(spec.substr(0, dash), spec, why);
  if (!lo) return false;
  uint16_t hi_v = *lo;
  if (dash != std::string_view::npos) {
    auto hi = parse_port(spec.substr(dash + 1), spec, why);
    if (!hi) return false;
    if (*hi < *lo) {
      if (why) *why = "range " + std::string(spec) + " has its low end above its high end";
      return false;
    }
    hi_v = *hi;
  }
  // Which ports are already listed: a linear search per port would make
  // "1-65535" quadratic.
  std::bitset<65536> seen;
  for (uint16_t p : ports)
    seen.set(p);
  for (uint32_t p = *lo; p <= hi_v; ++p) {
    auto port = static_cast<uint16_t>(p);
    // Port 0 asks the kernel for a fresh ephemeral port each time, so it is
    // never a duplicate of itself.
    if (port == 0 || !seen.test(port)) ports.push_back(port);
    seen.set(port);
  }
  return true;
}

std::optional<std::vector<uint16_t>> parse_port_list(std::string_view text, std::string *why) {
  std::vector<uint16_t> ports;
  size_t start = 0;
  while (true) {
    size_t comma = text.find(',', start);
    auto part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (!append_port_spec(part, ports, why)) return std::nullopt;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return ports;
}

std::string format_port_list(const std::vector<uint16_t> &ports) {
  std::string out;
  for (size_t i = 0; i < ports.size();) {
    size_t j = i;
    while (j + 1 < ports.size() && ports[j] != 0 && ports[j + 1] == ports[j] + 1)
      ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(ports[i]);
    if (j > i) out += "-" + std::to_string(ports[j]);
    i = j + 1;
  }
  return out;
}

} // namespace sink
