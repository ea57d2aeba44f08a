#include "RecordCodec.h"

#include <cstring>

namespace sink {
namespace {

void put_u64(std::string &out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 8);
}
void put_u32(std::string &out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i)
    b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 4);
}
void put_bytes(std::string &out, const void *p, size_t n) {
  put_u32(out, static_cast<uint32_t>(n));
  out.append(static_cast<const char *>(p), n);
}
void put_str(std::string &out, const std::string &s) { put_bytes(out, s.data(), s.size()); }

class Cursor {
public:
  Cursor(const uint8_t *p, size_t n) : p_(p), end_(p + n) {}
  bool ok() const { return ok_; }
  bool done() const { return p_ == end_; }
  uint64_t u64() {
    if (!need(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= uint64_t(p_[i]) << (8 * i);
    p_ += 8;
    return v;
  }
  uint32_t u32() {
    if (!need(4)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v |= uint32_t(p_[i]) << (8 * i);
    p_ += 4;
    return v;
  }
  std::string_view bytes() {
    const uint32_t n = u32();
    if (!need(n)) return {};
    std::string_view v(reinterpret_cast<const char *>(p_), n);
    p_ += n;
    return v;
  }

private:
  bool need(size_t n) {
    if (!ok_ || size_t(end_ - p_) < n) ok_ = false;
    return ok_;
  }
  const uint8_t *p_, *end_;
  bool ok_ = true;
};

} // namespace

void encode_record(const Record &r, std::string &out) {
  put_u64(out, static_cast<uint64_t>(r.accept_unix_ns));
  put_u64(out, static_cast<uint64_t>(r.duration_ns));
  put_str(out, r.group ? *r.group : std::string());
  put_bytes(out, r.transport, r.transport ? std::strlen(r.transport) : 0);
  put_bytes(out, r.sensor, r.sensor ? std::strlen(r.sensor) : 0);
  put_str(out, r.local.ip);
  put_u32(out, r.local.port | (r.local.v6 ? 0x10000u : 0));
  put_str(out, r.remote.ip);
  put_u32(out, r.remote.port | (r.remote.v6 ? 0x10000u : 0));
  put_u32(out, r.listen_port);
  put_bytes(out, r.id.data(), 36);
  put_bytes(out, r.payload.data(), r.payload.size());
  put_u64(out, r.total_bytes);
  put_u64(out, r.first_read_len);
  put_bytes(out, r.wire.data(), r.wire.size());
  put_u32(out, static_cast<uint32_t>(r.close_reason));
  put_str(out, r.close_detail);
  put_u32(out, static_cast<uint32_t>(r.extras.size()));
  for (const auto &e : r.extras) {
    put_str(out, e.key);
    put_u32(out, static_cast<uint32_t>(e.type));
    put_str(out, e.bytes);
    put_u64(out, static_cast<uint64_t>(e.integer));
    uint64_t bits;
    std::memcpy(&bits, &e.number, sizeof bits);
    put_u64(out, bits);
    // The ABI 1.0 text form is derived from the typed value on decode.
  }
}

bool decode_record(const uint8_t *p, size_t n, Record &r, StringInterner &strings) {
  Cursor c(p, n);
  r = Record{};
  r.accept_unix_ns = static_cast<int64_t>(c.u64());
  r.duration_ns = static_cast<int64_t>(c.u64());
  r.group = &strings.intern(c.bytes());
  r.transport = strings.intern(c.bytes()).c_str();
  r.sensor = strings.intern(c.bytes()).c_str();
  r.local.ip = c.bytes();
  uint32_t port = c.u32();
  r.local.port = static_cast<uint16_t>(port);
  r.local.v6 = port & 0x10000u;
  r.remote.ip = c.bytes();
  port = c.u32();
  r.remote.port = static_cast<uint16_t>(port);
  r.remote.v6 = port & 0x10000u;
  r.listen_port = static_cast<uint16_t>(c.u32());
  const auto id = c.bytes();
  if (id.size() != 36) return false;
  std::memcpy(r.id.data(), id.data(), 36);
  r.id[36] = '\0';
  const auto payload = c.bytes();
  r.payload.assign(payload.begin(), payload.end());
  r.total_bytes = c.u64();
  r.first_read_len = c.u64();
  const auto wire = c.bytes();
  r.wire.assign(wire.begin(), wire.end());
  const uint32_t reason = c.u32();
  if (reason > SINK_CLOSE_ERROR) return false;
  r.close_reason = static_cast<sink_close_reason>(reason);
  r.close_detail = c.bytes();
  const uint32_t extras = c.u32();
  if (!c.ok() || extras > n) return false;
  r.extras.reserve(extras);
  ExtraCollector collector(r, false);
  for (uint32_t i = 0; i < extras && c.ok(); ++i) {
    const std::string key(c.bytes());
    const uint32_t type = c.u32();
    if (type < SINK_VALUE_STRING || type > SINK_VALUE_BYTES) return false;
    const auto bytes = c.bytes();
    const int64_t integer = static_cast<int64_t>(c.u64());
    const uint64_t bits = c.u64();
    double number;
    std::memcpy(&number, &bits, sizeof number);
    const size_t before = r.extras.size();
    // Through the collector, so the text form is what it was when added.
    switch (static_cast<sink_value_type>(type)) {
    case SINK_VALUE_STRING:
    case SINK_VALUE_BYTES:
      collector.add_typed(key.c_str(), static_cast<sink_value_type>(type), bytes.data(), bytes.size());
      break;
    case SINK_VALUE_BOOL: {
      const uint8_t b = integer ? 1 : 0;
      collector.add_typed(key.c_str(), SINK_VALUE_BOOL, &b, 1);
      break;
    }
    case SINK_VALUE_INT: collector.add_typed(key.c_str(), SINK_VALUE_INT, &integer, sizeof integer); break;
    case SINK_VALUE_FLOAT: collector.add_typed(key.c_str(), SINK_VALUE_FLOAT, &number, sizeof number); break;
    }
    if (r.extras.size() != before + 1) return false; // a value the host would not have kept
  }
  return c.ok() && c.done();
}

} // namespace sink
