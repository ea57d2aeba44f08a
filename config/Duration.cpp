#include "Duration.h"

#include <cstdint>
#include <limits>

namespace sink {
namespace {

struct Unit {
  std::string_view name;
  int64_t ns;
};

constexpr Unit kUnits[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, // U+00B5 micro sign
    {"\xce\xbcs", 1000}, // U+03BC Greek mu
    {"ms", 1000 * 1000},
    {"s", 1000LL * 1000 * 1000},
    {"m", 60LL * 1000 * 1000 * 1000},
    {"h", 3600LL * 1000 * 1000 * 1000},
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

} // namespace

std::optional<Duration> parse_go_duration(std::string_view s, std::string *why) {
  auto fail = [&](const char *msg) -> std::optional<Duration> {
    if (why) *why = msg;
    return std::nullopt;
  };
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration(0);
  if (s.empty()) return fail("a Go duration such as 30s, 1m30s or 500ms");

  // Exact integer arithmetic, as Go does: whole * unit + fraction * unit / scale.
  using u128 = unsigned __int128;
  const u128 kMax = static_cast<u128>(std::numeric_limits<int64_t>::max());
  u128 total = 0;
  while (!s.empty()) {
    size_t i = 0;
    u128 whole = 0;
    bool any = false;
    while (i < s.size() && is_digit(s[i])) {
      whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
      if (whole > kMax) return fail("a duration below 2562047h");
      ++i;
      any = true;
    }
    u128 frac = 0, scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && is_digit(s[i])) {
        if (scale < static_cast<u128>(1e18)) { // digits past ns precision cannot matter
          frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
          scale *= 10;
        }
        ++i;
        any = true;
      }
    }
    if (!any) return fail("a Go duration such as 30s, 1m30s or 500ms");
    size_t u = i;
    while (u < s.size() && s[u] != '.' && !is_digit(s[u]))
      ++u;
    std::string_view unit = s.substr(i, u - i);
    if (unit.empty()) return fail("a unit after each number (ns, us, ms, s, m, h), e.g. 30s");
    const Unit *found = nullptr;
    for (const auto &k : kUnits)
      if (k.name == unit) found = &k;
    if (!found) return fail("a unit of ns, us, ms, s, m or h");
    const u128 unit_ns = static_cast<u128>(found->ns);
    total += whole * unit_ns + frac * unit_ns / scale;
    if (total > kMax) return fail("a duration below 2562047h");
    s.remove_prefix(u);
  }
  auto ns = static_cast<int64_t>(total);
  return Duration(negative ? -ns : ns);
}

std::string format_go_duration(Duration d) {
  int64_t v = d.count();
  if (v == 0) return "0s";
  std::string sign = v < 0 ? "-" : "";
  uint64_t u = v < 0 ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);

  // Trims trailing zeros of a fractional part of `digits` width.
  auto frac = [](uint64_t value, int digits) {
    std::string f(static_cast<size_t>(digits), '0');
    for (int i = digits - 1; i >= 0; --i) {
      f[static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
    while (!f.empty() && f.back() == '0')
      f.pop_back();
    return f.empty() ? std::string() : "." + f;
  };

  if (u < 1000000000ULL) { // under a second: ns, µs or ms
    if (u < 1000) return sign + std::to_string(u) + "ns";
    if (u < 1000000) return sign + std::to_string(u / 1000) + frac(u % 1000, 3) + "\xc2\xb5s";
    return sign + std::to_string(u / 1000000) + frac(u % 1000000, 6) + "ms";
  }
  uint64_t secs = u / 1000000000ULL;
  std::string out = std::to_string(secs % 60) + frac(u % 1000000000ULL, 9) + "s";
  uint64_t mins = secs / 60;
  if (mins > 0) {
    out = std::to_string(mins % 60) + "m" + out;
    uint64_t hours = mins / 60;
    if (hours > 0) out = std::to_string(hours) + "h" + out;
  }
  return sign + out;
}

} // namespace sink
