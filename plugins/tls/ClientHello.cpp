#include "ClientHello.h"

namespace sink::tls {
namespace {

// Bounds-checked big-endian reader over a byte range.
class Cursor {
public:
  Cursor(const uint8_t *p, size_t n) : p_(p), end_(p + n) {}
  bool ok() const { return ok_; }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  uint8_t u8() {
    if (!need(1)) return 0;
    return *p_++;
  }
  uint16_t u16() {
    if (!need(2)) return 0;
    uint16_t v = static_cast<uint16_t>(p_[0] << 8 | p_[1]);
    p_ += 2;
    return v;
  }
  // A sub-range of n bytes, consumed from this cursor.
  Cursor take(size_t n) {
    if (!need(n)) return Cursor(p_, 0);
    Cursor c(p_, n);
    p_ += n;
    return c;
  }
  std::string str(size_t n) {
    if (!need(n)) return {};
    std::string s(reinterpret_cast<const char *>(p_), n);
    p_ += n;
    return s;
  }

private:
  bool need(size_t n) {
    if (left() < n) ok_ = false;
    return ok_;
  }
  const uint8_t *p_, *end_;
  bool ok_ = true;
};

std::vector<uint16_t> u16_list(Cursor c) {
  std::vector<uint16_t> out;
  while (c.left() >= 2)
    out.push_back(c.u16());
  return out;
}

// Returns false when a length inside the extension runs past its end.
bool parse_extension(ClientHello &h, uint16_t type, Cursor body) {
  switch (type) {
  case 0: { // server_name
    Cursor list = body.take(body.u16());
    while (list.ok() && list.left() >= 3) {
      uint8_t name_type = list.u8();
      std::string name = list.str(list.u16());
      if (!list.ok()) return false;
      if (name_type == 0 && h.sni.empty()) h.sni = name;
    }
    return body.ok() && list.ok() && list.left() == 0;
  }
  // Lists that only feed fingerprints are read best-effort, as before; the
  // names and protocols recorded as text (SNI, ALPN) must be exact.
  case 10: h.groups = u16_list(body.take(body.u16())); return true;
  case 11: {
    Cursor list = body.take(body.u8());
    while (list.left() > 0)
      h.point_formats.push_back(list.u8());
    return true;
  }
  case 13: h.signature_algorithms = u16_list(body.take(body.u16())); return true;
  case 16: {
    Cursor list = body.take(body.u16());
    while (list.ok() && list.left() > 0) {
      std::string proto = list.str(list.u8());
      if (!list.ok()) return false;
      h.alpn.push_back(proto);
    }
    return body.ok();
  }
  case 43: h.supported_versions = u16_list(body.take(body.u8())); return true;
  default: return true;
  }
}

const char *extension_name(uint16_t type) {
  switch (type) {
  case 0: return "server_name";
  case 10: return "supported_groups";
  case 11: return "ec_point_formats";
  case 13: return "signature_algorithms";
  case 16: return "ALPN";
  case 43: return "supported_versions";
  default: return "an";
  }
}

} // namespace

bool is_grease(uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

std::optional<ClientHello> parse_client_hello(const uint8_t *data, size_t len, std::string *why) {
  auto fail = [&](const char *what) -> std::optional<ClientHello> {
    if (why) *why = what;
    return std::nullopt;
  };
  Cursor c(data, len);
  ClientHello h;
  h.legacy_version = c.u16();
  c.take(32);     // random
  c.take(c.u8()); // session id
  h.ciphers = u16_list(c.take(c.u16()));
  c.take(c.u8()); // compression methods
  if (!c.ok())
    return fail("ClientHello truncated before its extensions (cipher suites, session id or compression)");
  if (c.left() == 1) return fail("ClientHello has one stray byte where the extensions length belongs");
  if (c.left() >= 2) {
    Cursor exts = c.take(c.u16());
    if (!c.ok()) return fail("ClientHello extensions length runs past the end of the message");
    while (exts.ok() && exts.left() >= 4) {
      uint16_t type = exts.u16();
      Cursor body = exts.take(exts.u16());
      if (!exts.ok()) return fail("a ClientHello extension's length runs past the extensions block");
      h.extensions.push_back(type);
      if (!parse_extension(h, type, body)) {
        if (why)
          *why = std::string("a length inside the ") + extension_name(type) + " extension runs past its end";
        return std::nullopt;
      }
    }
    if (exts.left() != 0) return fail("ClientHello extensions block ends inside an extension header");
  }
  return h;
}

std::string ClientHelloReader::error_at_end() const {
  if (state_ == State::kNeedMore && !wire_.empty())
    return "ClientHello incomplete: the connection ended after " + std::to_string(wire_.size()) + " bytes";
  return error_;
}

const char *ClientHelloReader::format() const {
  if (state_ == State::kNeedMore) return !wire_.empty() && wire_[0] == 22 ? "tls" : "";
  switch (state_) {
  case State::kSslV2: return "sslv2";
  case State::kNotTls: return "";
  default: return consumed_ > 0 || hello_ || !error_.empty() ? "tls" : "";
  }
}

ClientHelloReader::State ClientHelloReader::feed(const uint8_t *data, size_t len) {
  if (state_ != State::kNeedMore) return state_;
  size_t room = kMaxHelloBytes + 5 - wire_.size();
  wire_.insert(wire_.end(), data, data + std::min(len, room));
  state_ = advance();
  if (state_ != State::kNeedMore) {
    wire_.clear();
    wire_.shrink_to_fit();
    handshake_.clear();
    handshake_.shrink_to_fit();
  }
  return state_;
}

ClientHelloReader::State ClientHelloReader::advance() {
  auto malformed = [&](std::string why) {
    error_ = std::move(why);
    return State::kMalformed;
  };
  // An SSLv2-compatible ClientHello: 2-byte header with the high bit set,
  // then message type 1 (CLIENT-HELLO). Old clients still offer TLS 1.x so.
  if (consumed_ == 0 && wire_.size() >= 3 && (wire_[0] & 0x80) && wire_[2] == 1) {
    error_ = "SSLv2-compatible ClientHello (not fingerprinted)";
    return State::kSslV2;
  }
  // Move every complete handshake record into handshake_.
  while (wire_.size() - consumed_ >= 5) {
    const uint8_t *rec = wire_.data() + consumed_;
    if (rec[0] != 22 || rec[1] != 3) { // not a handshake record of SSL 3.0 / TLS 1.x
      error_ = "not a TLS handshake record";
      return State::kNotTls;
    }
    size_t rec_len = static_cast<size_t>(rec[3] << 8 | rec[4]);
    if (rec_len > 16384 + 2048)
      return malformed("TLS record length " + std::to_string(rec_len) + " is out of range");
    // An empty record carries nothing; OpenSSL skips it and completes the
    // handshake, so the fingerprint must not be lost to 5 prepended bytes.
    if (rec_len == 0) {
      if (++empty_in_a_row_ > kMaxEmptyRecordsInARow)
        return malformed("more than " + std::to_string(kMaxEmptyRecordsInARow) +
                         " empty TLS records in a row");
      consumed_ += 5;
      continue;
    }
    empty_in_a_row_ = 0;
    if (wire_.size() - consumed_ < 5 + rec_len) break;
    handshake_.insert(handshake_.end(), rec + 5, rec + 5 + rec_len);
    consumed_ += 5 + rec_len;
  }
  if (wire_.empty()) return State::kNeedMore;
  if (wire_[0] != 22) {
    error_ = "not a TLS handshake record";
    return State::kNotTls;
  }
  const char *too_big = "ClientHello larger than 64 KiB";
  if (handshake_.size() < 4) return wire_.size() >= kMaxHelloBytes ? malformed(too_big) : State::kNeedMore;
  if (handshake_[0] != 1)
    return malformed("first handshake message has type " + std::to_string(handshake_[0]) +
                     ", not ClientHello");
  size_t body_len =
      static_cast<size_t>(handshake_[1]) << 16 | static_cast<size_t>(handshake_[2]) << 8 | handshake_[3];
  if (body_len > kMaxHelloBytes) return malformed(too_big);
  if (handshake_.size() < 4 + body_len)
    return wire_.size() >= kMaxHelloBytes ? malformed(too_big) : State::kNeedMore;
  std::string why;
  hello_ = parse_client_hello(handshake_.data() + 4, body_len, &why);
  return hello_ ? State::kDone : malformed(why);
}

} // namespace sink::tls
