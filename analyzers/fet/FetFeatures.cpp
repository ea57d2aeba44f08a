#include "FetFeatures.h"

#include <bit>
#include <cmath>

namespace sink::fet {

double Features::popcount_avg() const {
  return len ? static_cast<double>(popcount_total) / static_cast<double>(len) : 0.0;
}

double Features::ascii_fraction() const {
  return len ? static_cast<double>(printable) / static_cast<double>(len) : 0.0;
}

double Features::round4(double v) { return std::round(v * 10000.0) / 10000.0; }

std::string Features::exempt_by_names() const {
  static constexpr struct {
    unsigned bit;
    const char *name;
  } kNames[] = {{kPopcount, "popcount"},
                {kAsciiPrefix, "ascii_prefix"},
                {kAsciiFraction, "ascii_fraction"},
                {kAsciiRun, "longest_ascii_run"},
                {kProtocol, "protocol"}};
  std::string out;
  for (const auto &n : kNames) {
    if (!(exempt_by & n.bit)) continue;
    if (!out.empty()) out += ',';
    out += n.name;
  }
  return out;
}

std::string protocol_of(std::string_view p) {
  if (p.size() >= 3) {
    const auto b0 = static_cast<uint8_t>(p[0]), b1 = static_cast<uint8_t>(p[1]),
               b2 = static_cast<uint8_t>(p[2]);
    if (b0 >= 0x16 && b0 <= 0x17 && b1 == 0x03 && b2 <= 0x09) return "tls";
  }
  for (std::string_view m : {"GET ", "PUT ", "POST ", "HEAD "})
    if (p.substr(0, m.size()) == m) return "http";
  return "";
}

Features compute(std::string_view p) {
  Features f;
  f.len = p.size();
  if (p.empty()) return f;
  bool in_prefix = true;
  size_t run = 0;
  for (char c : p) {
    const auto b = static_cast<uint8_t>(c);
    f.popcount_total += static_cast<unsigned>(std::popcount(b));
    if (printable(b)) {
      ++f.printable;
      if (in_prefix) ++f.ascii_prefix;
      if (++run > f.longest_ascii_run) f.longest_ascii_run = run;
    } else {
      in_prefix = false;
      run = 0;
    }
  }
  f.protocol = protocol_of(p);

  // Exact ratios in integers: popcount_total / len <= 3.4 is
  // popcount_total * 5 <= 17 * len, and so on; never the rounded display.
  const uint64_t len = f.len;
  if (f.popcount_total * 5 <= 17 * len || f.popcount_total * 5 >= 23 * len) f.exempt_by |= kPopcount;
  if (f.ascii_prefix >= 6) f.exempt_by |= kAsciiPrefix;
  if (static_cast<uint64_t>(f.printable) * 2 > len) f.exempt_by |= kAsciiFraction;
  if (f.longest_ascii_run > 20) f.exempt_by |= kAsciiRun;
  if (!f.protocol.empty()) f.exempt_by |= kProtocol;
  return f;
}

} // namespace sink::fet
