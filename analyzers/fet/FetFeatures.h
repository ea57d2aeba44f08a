#pragma once
// The exemption rules of the Great Firewall of China's fully-encrypted-
// traffic detector (Algorithm 1 of Wu et al., "How the Great Firewall of
// China Detects and Blocks Fully Encrypted Traffic", USENIX Security 2023),
// computed over the first data packet of a connection. Pure computation, so
// unit tests can pin every threshold edge.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sink::fet {

// The rules in the paper's order (Ex1..Ex5); the names are what
// `fet.exempt_by` lists.
enum Rule : unsigned {
  kPopcount = 1u << 0,      // Ex1: average set bits per byte <= 3.4 or >= 4.6
  kAsciiPrefix = 1u << 1,   // Ex2: the first six bytes are printable
  kAsciiFraction = 1u << 2, // Ex3: more than 50% of the bytes are printable
  kAsciiRun = 1u << 3,      // Ex4: more than 20 contiguous printable bytes
  kProtocol = 1u << 4,      // Ex5: the start matches TLS or HTTP
};

struct Features {
  size_t len = 0;          // bytes looked at
  size_t ascii_prefix = 0; // leading bytes in 0x20..0x7e
  size_t longest_ascii_run = 0;
  size_t printable = 0;        // bytes in 0x20..0x7e
  uint64_t popcount_total = 0; // set bits over all bytes
  std::string protocol;        // "tls", "http" or ""
  unsigned exempt_by = 0;      // Rule bits that fired

  bool exempt() const { return exempt_by != 0; }
  // Exact values for display; rules never compare these.
  double popcount_avg() const;
  double ascii_fraction() const;
  // Rounded to 4 decimals, as the extras carry them.
  static double round4(double v);
  // "popcount,ascii_prefix,..." in the paper's order; "" when none fired.
  std::string exempt_by_names() const;
};

constexpr bool printable(uint8_t b) { return b >= 0x20 && b <= 0x7e; }

// "tls" when the first three bytes are [\x16-\x17] \x03 [\x00-\x09], "http"
// when it starts with "GET ", "PUT ", "POST " or "HEAD ", else "".
std::string protocol_of(std::string_view first_packet);

// Every feature and rule over the first packet. len 0 gives an empty result
// with no rule fired; callers add no extras for it.
Features compute(std::string_view first_packet);

} // namespace sink::fet
