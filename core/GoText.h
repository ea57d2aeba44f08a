#pragma once
// Text the original's log lines got from Go's fmt: %q of bytes and %v of a
// float64. Scripts parse these lines, so the shapes matter.
#include <cstddef>
#include <cstdint>
#include <string>

namespace sink {

// Go's strconv.Quote of a byte string: printable ASCII and valid printable
// UTF-8 as is; \a \b \f \n \r \t \v \\ \"; other bytes \xNN; other runes
// \uNNNN / \UNNNNNNNN. (Printability of non-ASCII runes is approximated:
// controls, separators and noncharacters are escaped.)
std::string go_quote(const uint8_t *data, size_t len);
// The same, written at out, which has room for go_quote_room(len) bytes;
// returns the end. One pass, no temporaries (the legacy log quotes every read).
char *go_quote_to(char *out, const uint8_t *data, size_t len);
constexpr size_t go_quote_room(size_t len) { return 4 * len + 2; }

// Go's %v of a float64: shortest round-trip digits, exponent form only below
// 1e-4 or from 1e21.
std::string go_float(double v);

} // namespace sink
