#pragma once
// One finished connection, owned. It outlives the connection and crosses to
// the record and output threads; plugins see it through a RecordView.
#include <sink/plugin.h>

#include <array>
#include <string>
#include <vector>

#include "Endpoint.h"

namespace sink {

// One extra with the type its writer declared, and its ABI 1.0 text form.
struct ExtraValue {
  std::string key;
  sink_value_type type = SINK_VALUE_STRING;
  std::string bytes; // STRING, BYTES
  int64_t integer = 0;
  double number = 0;
  std::string text; // what 1.0 plugins see
};

struct Record {
  int64_t accept_unix_ns = 0;
  int64_t duration_ns = 0;
  const std::string *group = nullptr; // owned by the config, which outlives records
  const char *transport = nullptr;    // the plugin's name: plugins are never unloaded
  const char *sensor = "";
  Endpoint local;
  Endpoint remote;
  uint16_t listen_port = 0;
  std::array<char, 37> id{};    // UUIDv7 text and NUL
  std::vector<uint8_t> payload; // the first capture_bytes of the stream
  uint64_t total_bytes = 0;
  size_t first_read_len = 0;
  std::vector<uint8_t> wire; // transports that transform bytes: what arrived
  sink_close_reason close_reason = SINK_CLOSE_ERROR;
  std::string close_detail;
  std::vector<ExtraValue> extras;
};

// The borrowed sink_record of a Record, with both extras arrays. Valid while
// the record lives unchanged; rebuild it after extras were added.
class RecordView {
public:
  RecordView() = default;
  explicit RecordView(const Record &r) { build(r); }
  void build(const Record &r);
  const sink_record &get() const { return view_; }

private:
  std::vector<sink_extra> legacy_;
  std::vector<sink_value_extra> values_;
  sink_record view_{};
};

// Collects what a transport's conn_finish or an analyzer adds to a record,
// through the sink_extra_writer it hands out.
class ExtraCollector {
public:
  // allow_wire: transports may set the wire bytes, analyzers may not.
  ExtraCollector(Record &record, bool allow_wire);
  const sink_extra_writer *writer() const { return &writer_; }
  void add_text(const char *key, const char *value);
  void add_typed(const char *key, sink_value_type type, const void *value, size_t len);

private:
  Record &record_;
  sink_extra_writer writer_;
};

} // namespace sink
