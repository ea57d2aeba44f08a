#pragma once
// Byte-to-text encodings shared by the core and every bundled plugin.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sink::text {

// Lowercase hex, no separators.
std::string hex(const uint8_t *data, size_t len);
void append_hex(std::string &out, const uint8_t *data, size_t len);

// RFC 4648 base64 with padding.
std::string base64(const uint8_t *data, size_t len);
// The inverse, strict: padded RFC 4648 only; false for anything else.
bool base64_decode(const std::string &text, std::string *out);

// True when the bytes are well-formed UTF-8 (no overlongs, no surrogates).
bool valid_utf8(std::string_view bytes);

// The ABI 1.0 text form of arbitrary bytes: printable ASCII and valid
// multi-byte UTF-8 stay as they are; control bytes, DEL, invalid UTF-8 and
// the backslash itself become \xHH, so the form is unambiguous.
std::string escape_bytes(std::string_view bytes);

// Shortest decimal text that reads back as the same double, never in
// exponent form ("0.000055533", not "5.5533e-05").
std::string plain_decimal(double v);

} // namespace sink::text
