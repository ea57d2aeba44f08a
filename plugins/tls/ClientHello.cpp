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

void parse_extension(ClientHello &h, uint16_t type, Cursor body) {
  switch (type) {
  case 0: { // server_name
    Cursor list = body.take(body.u16());
    while (list.ok() && list.left() >= 3) {
      uint8_t name_type = list.u8();
      std::string name = list.str(list.u16());
      if (name_type == 0 && h.sni.empty()) h.sni = name;
    }
    break;
  }
  case 10: h.groups = u16_list(body.take(body.u16())); break;
  case 11: {
    Cursor list = body.take(body.u8());
    while (list.left() > 0)
      h.point_formats.push_back(list.u8());
    break;
  }
  case 13: h.signature_algorithms = u16_list(body.take(body.u16())); break;
  case 16: {
    Cursor list = body.take(body.u16());
    while (list.ok() && list.left() > 0) {
      std::string proto = list.str(list.u8());
      if (list.ok()) h.alpn.push_back(proto);
    }
    break;
  }
  case 43: h.supported_versions = u16_list(body.take(body.u8())); break;
  default: break;
  }
}

} // namespace

bool is_grease(uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

std::optional<ClientHello> parse_client_hello(const uint8_t *data, size_t len) {
  Cursor c(data, len);
  ClientHello h;
  h.legacy_version = c.u16();
  c.take(32);     // random
  c.take(c.u8()); // session id
  h.ciphers = u16_list(c.take(c.u16()));
  c.take(c.u8()); // compression methods
  if (!c.ok()) return std::nullopt;
  if (c.left() >= 2) {
    Cursor exts = c.take(c.u16());
    while (exts.ok() && exts.left() >= 4) {
      uint16_t type = exts.u16();
      Cursor body = exts.take(exts.u16());
      if (!exts.ok()) break;
      h.extensions.push_back(type);
      parse_extension(h, type, body);
    }
    if (!exts.ok()) return std::nullopt;
  }
  return h;
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
  // Move every complete handshake record into handshake_.
  while (wire_.size() - consumed_ >= 5) {
    const uint8_t *rec = wire_.data() + consumed_;
    if (rec[0] != 22) return State::kNotTls; // not a handshake record
    if (rec[1] != 3) return State::kNotTls;  // SSL 3.0 / TLS 1.x record versions only
    size_t rec_len = static_cast<size_t>(rec[3] << 8 | rec[4]);
    if (rec_len == 0 || rec_len > 16384 + 2048) return State::kMalformed;
    if (wire_.size() - consumed_ < 5 + rec_len) break;
    handshake_.insert(handshake_.end(), rec + 5, rec + 5 + rec_len);
    consumed_ += 5 + rec_len;
  }
  if (wire_.empty()) return State::kNeedMore;
  if (wire_[0] != 22) return State::kNotTls;
  if (handshake_.size() < 4) return wire_.size() >= kMaxHelloBytes ? State::kMalformed : State::kNeedMore;
  if (handshake_[0] != 1) return State::kMalformed; // first message must be a ClientHello
  size_t body_len =
      static_cast<size_t>(handshake_[1]) << 16 | static_cast<size_t>(handshake_[2]) << 8 | handshake_[3];
  if (body_len > kMaxHelloBytes) return State::kMalformed;
  if (handshake_.size() < 4 + body_len)
    return wire_.size() >= kMaxHelloBytes ? State::kMalformed : State::kNeedMore;
  hello_ = parse_client_hello(handshake_.data() + 4, body_len);
  return hello_ ? State::kDone : State::kMalformed;
}

} // namespace sink::tls
