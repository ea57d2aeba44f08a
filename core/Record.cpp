#include "Record.h"

#include <cmath>
#include <cstring>

#include "TextEncoding.h"

namespace sink {

void RecordView::build(const Record &r) {
  legacy_.clear();
  values_.clear();
  legacy_.reserve(r.extras.size());
  values_.reserve(r.extras.size());
  for (const auto &e : r.extras) {
    legacy_.push_back({e.key.c_str(), e.text.c_str()});
    sink_value_extra v{};
    v.struct_size = sizeof v;
    v.key = e.key.c_str();
    v.type = e.type;
    v.bytes = reinterpret_cast<const uint8_t *>(e.bytes.c_str());
    v.len = e.bytes.size();
    v.integer = e.integer;
    v.number = e.number;
    values_.push_back(v);
  }
  sink_record &v = view_;
  v = sink_record{};
  v.struct_size = sizeof v;
  v.accept_unix_ns = r.accept_unix_ns;
  v.duration_ns = r.duration_ns;
  v.group = r.group->c_str();
  v.transport = r.transport;
  v.local_ip = r.local.ip.c_str();
  v.local_port = r.local.port;
  v.remote_ip = r.remote.ip.c_str();
  v.remote_port = r.remote.port;
  v.payload = r.payload.data();
  v.captured_len = r.payload.size();
  v.total_bytes = r.total_bytes;
  v.close_reason = r.close_reason;
  v.close_detail = r.close_detail.c_str();
  v.extras = legacy_.data();
  v.extras_count = legacy_.size();
  v.listen_port = r.listen_port;
  v.sensor = r.sensor;
  v.id = r.id.data();
  v.first_read_len = r.first_read_len;
  v.wire = r.wire.empty() ? nullptr : r.wire.data();
  v.wire_len = r.wire.size();
  v.values = values_.data();
  v.values_count = values_.size();
  v.value_size = sizeof(sink_value_extra);
}

namespace {

ExtraCollector *self(void *ctx) { return static_cast<ExtraCollector *>(ctx); }

} // namespace

ExtraCollector::ExtraCollector(Record &record, bool allow_wire) : record_(record), writer_{} {
  writer_.ctx = this;
  writer_.add = [](void *ctx, const char *k, const char *v) noexcept { self(ctx)->add_text(k, v); };
  writer_.struct_size = sizeof writer_;
  writer_.add_typed = [](void *ctx, const char *k, sink_value_type t, const void *v, size_t n) noexcept {
    self(ctx)->add_typed(k, t, v, n);
  };
  writer_.set_wire = nullptr;
  if (allow_wire)
    writer_.set_wire = [](void *ctx, const uint8_t *wire, size_t len, size_t first_read_len) noexcept {
      Record &r = self(ctx)->record_;
      r.wire.assign(wire, wire + (wire ? len : 0));
      r.first_read_len = first_read_len;
    };
}

void ExtraCollector::add_text(const char *key, const char *value) {
  if (key && value) add_typed(key, SINK_VALUE_STRING, value, std::strlen(value));
}

void ExtraCollector::add_typed(const char *key, sink_value_type type, const void *value, size_t len) {
  if (!key || (!value && len)) return;
  try {
    // Extras are never replaced: the first writer of a key (the transport,
    // then analyzers in order) keeps it; a later add of that key is ignored.
    for (const auto &existing : record_.extras)
      if (existing.key == key) return;
    ExtraValue e;
    e.key = key;
    e.type = type;
    switch (type) {
    case SINK_VALUE_STRING:
    case SINK_VALUE_BYTES:
      e.bytes.assign(static_cast<const char *>(value), len);
      // Text that is not UTF-8 cannot be a JSON string without loss.
      if (type == SINK_VALUE_STRING && !text::valid_utf8(e.bytes)) e.type = SINK_VALUE_BYTES;
      e.text = text::escape_bytes(e.bytes);
      break;
    case SINK_VALUE_BOOL:
      if (len != 1) return;
      e.integer = *static_cast<const uint8_t *>(value) ? 1 : 0;
      e.text = e.integer ? "true" : "false";
      break;
    case SINK_VALUE_INT:
      if (len != sizeof(int64_t)) return;
      std::memcpy(&e.integer, value, sizeof e.integer);
      e.text = std::to_string(e.integer);
      break;
    case SINK_VALUE_FLOAT:
      if (len != sizeof(double)) return;
      std::memcpy(&e.number, value, sizeof e.number);
      if (!std::isfinite(e.number)) return; // JSON has no NaN or infinity
      e.text = text::plain_decimal(e.number);
      break;
    default: return;
    }
    record_.extras.push_back(std::move(e));
  } catch (...) {
    // Out of memory: the record goes on without this extra.
  }
}

} // namespace sink
