#include "GoText.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace sink {
namespace {

// Decodes one UTF-8 rune; returns its length or 0 if invalid.
size_t decode_utf8(const uint8_t *p, size_t n, uint32_t *rune) {
  uint8_t c = p[0];
  size_t len;
  uint32_t r, min;
  if (c < 0x80) {
    *rune = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    len = 2, r = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3, r = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4, r = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    r = (r << 6) | (p[i] & 0x3f);
  }
  if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) return 0;
  *rune = r;
  return len;
}

bool printable_rune(uint32_t r) {
  if (r < 0x20 || r == 0x7f) return false;
  if (r >= 0x80 && r <= 0x9f) return false;     // C1 controls
  if (r == 0xad) return false;                  // soft hyphen
  if (r >= 0x2028 && r <= 0x202e) return false; // separators, bidi controls
  if (r >= 0x200b && r <= 0x200f) return false; // zero-width, marks
  if (r >= 0x2060 && r <= 0x206f) return false; // invisible operators
  if (r == 0xfeff) return false;                // BOM
  if (r >= 0xfff9 && r <= 0xfffb) return false; // interlinear annotations
  if ((r & 0xfffe) == 0xfffe) return false;     // noncharacters
  if (r >= 0xfdd0 && r <= 0xfdef) return false;
  if (r >= 0xe000 && r <= 0xf8ff) return false; // private use
  if (r >= 0xf0000) return false;               // private use planes
  return true;
}

} // namespace

char *go_quote_to(char *out, const uint8_t *data, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out++ = '"';
  for (size_t i = 0; i < len;) {
    const uint8_t c = data[i];
    // ASCII is most of what probes send, and all of a zero-filled flood:
    // handled here without decoding.
    if (c < 0x80) {
      ++i;
      if (c >= 0x20 && c < 0x7f) {
        if (c == '"' || c == '\\') *out++ = '\\';
        *out++ = static_cast<char>(c);
        continue;
      }
      static constexpr char kNamed[] = "\0\0\0\0\0\0\0abtnvfr";
      *out++ = '\\';
      if (c >= 7 && c <= 13) {
        *out++ = kNamed[c];
      } else {
        *out++ = 'x';
        *out++ = kHex[c >> 4];
        *out++ = kHex[c & 0xf];
      }
      continue;
    }
    uint32_t r = 0;
    const size_t n = decode_utf8(data + i, len - i, &r);
    if (n == 0) {
      *out++ = '\\';
      *out++ = 'x';
      *out++ = kHex[c >> 4];
      *out++ = kHex[c & 0xf];
      ++i;
      continue;
    }
    if (r == '"' || r == '\\') {
      *out++ = '\\';
      *out++ = static_cast<char>(r);
    } else if (printable_rune(r)) {
      std::memcpy(out, data + i, n);
      out += n;
    } else {
      char esc = 0;
      switch (r) {
      case '\a': esc = 'a'; break;
      case '\b': esc = 'b'; break;
      case '\f': esc = 'f'; break;
      case '\n': esc = 'n'; break;
      case '\r': esc = 'r'; break;
      case '\t': esc = 't'; break;
      case '\v': esc = 'v'; break;
      default: break;
      }
      *out++ = '\\';
      if (esc) {
        *out++ = esc;
      } else {
        // \xNN, \uNNNN or \UNNNNNNNN: never longer than 4 bytes per input byte.
        const int digits = r < 0x80 ? 2 : r < 0x10000 ? 4 : 8;
        *out++ = r < 0x80 ? 'x' : r < 0x10000 ? 'u' : 'U';
        for (int d = digits - 1; d >= 0; --d)
          *out++ = kHex[(r >> (4 * d)) & 0xf];
      }
    }
    i += n;
  }
  *out++ = '"';
  return out;
}

std::string go_quote(const uint8_t *data, size_t len) {
  std::string out(go_quote_room(len), '\0');
  out.resize(static_cast<size_t>(go_quote_to(out.data(), data, len) - out.data()));
  return out;
}

std::string go_float(double v) {
  char buf[64];
  double a = std::fabs(v);
  bool exp_form = a != 0 && (a < 1e-4 || a >= 1e21);
  auto res = std::to_chars(buf, buf + sizeof buf, v,
                           exp_form ? std::chars_format::scientific : std::chars_format::fixed);
  return std::string(buf, res.ptr);
}

} // namespace sink
