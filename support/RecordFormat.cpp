#include "RecordFormat.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <cstddef>
#include <cstring>
#include <ctime>

namespace sink::format {

namespace {

// nul_as_base64: a string holding a NUL byte becomes base64, like bytes.
nlohmann::ordered_json value_json(const sink_value_extra &v, bool nul_as_base64 = false) {
  switch (v.type) {
  case SINK_VALUE_STRING:
    if (nul_as_base64 && std::memchr(v.bytes, 0, v.len)) return text::base64(v.bytes, v.len);
    return std::string(reinterpret_cast<const char *>(v.bytes), v.len);
  case SINK_VALUE_BOOL: return v.integer != 0;
  case SINK_VALUE_INT: return v.integer;
  case SINK_VALUE_FLOAT: return v.number;
  case SINK_VALUE_BYTES: return text::base64(v.bytes, v.len);
  }
  return nullptr;
}

// Nanoseconds as plain decimal seconds, exact: "0.000055533", "1.5", "0".
std::string duration_seconds(int64_t ns) {
  const bool negative = ns < 0;
  const uint64_t v = negative ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  std::string frac = std::to_string(v % 1000000000ULL);
  frac.insert(0, 9 - frac.size(), '0');
  while (!frac.empty() && frac.back() == '0')
    frac.pop_back();
  return (negative ? "-" : "") + std::to_string(v / 1000000000ULL) + (frac.empty() ? "" : "." + frac);
}

nlohmann::ordered_json extras_json(const sink_record &r, bool nul_as_base64 = false) {
  auto extra = nlohmann::ordered_json::object();
  const bool typed = r.struct_size >= offsetof(sink_record, value_size) + sizeof r.value_size && r.value_size;
  if (typed) {
    for (size_t i = 0; i < r.values_count; ++i) {
      const sink_value_extra &v = *sink_record_value(&r, i);
      extra[v.key] = value_json(v, nul_as_base64);
    }
  } else {
    for (size_t i = 0; i < r.extras_count; ++i)
      extra[r.extras[i].key] = r.extras[i].value;
  }
  return extra;
}

} // namespace

std::string rfc3339_utc_ms(int64_t unix_ns) {
  int64_t ms = unix_ns >= 0 ? unix_ns / 1000000 : -((-unix_ns + 999999) / 1000000);
  time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
  int frac = static_cast<int>(ms - static_cast<int64_t>(secs) * 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::string csv_field(const std::string &f) {
  bool quote = f == "\\.";
  if (!f.empty() &&
      (f[0] == ' ' || f[0] == '\t' || f[0] == '\n' || f[0] == '\r' || f[0] == '\v' || f[0] == '\f'))
    quote = true;
  if (f.find_first_of(",\"\r\n") != std::string::npos) quote = true;
  if (!quote) return f;
  std::string out = "\"";
  for (char c : f) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

const std::string &csv_header() {
  static const std::string h = "ts,localIP,localPort,remoteIP,remotePort,truncatedPayload,len,duration\n";
  return h;
}

std::string csv_row(const sink_record &r) {
  std::string line;
  csv_row_to(line, r);
  return line;
}

void csv_row_to(std::string &line, const sink_record &r) {
  // Appended in place: this runs once per record per CSV output.
  line.reserve(line.size() + 96 + 2 * r.captured_len);
  char num[32];
  auto number = [&](auto v) {
    line.append(num, static_cast<size_t>(std::to_chars(num, num + sizeof num, v).ptr - num));
    line += ',';
  };
  auto address = [&](const char *s) { // an address: quoted only if it ever needs it
    const std::string_view v(s);
    if (v.find_first_of(",\"\r\n \t") == std::string_view::npos && v != "\\.")
      line.append(v);
    else
      line += csv_field(std::string(v));
    line += ',';
  };
  number(r.accept_unix_ns / 1000000);
  address(r.local_ip);
  number(r.local_port);
  address(r.remote_ip);
  number(r.remote_port);
  text::append_hex(line, r.payload, r.captured_len);
  line += ',';
  number(r.total_bytes);
  const int n = std::snprintf(num, sizeof num, "%.3f", static_cast<double>(r.duration_ns) / 1e9);
  line.append(num, static_cast<size_t>(n));
  line += '\n';
}

namespace {

// 2: typed extras, listen_port, close_detail, id, sensor (1 was the
// original 15 keys).
constexpr int kJsonlSchemaVersion = 2;

const char *const kCsvFields[] = {
    "ts",          "localIP",      "localPort",      "remoteIP",  "remotePort",   "truncatedPayload",
    "len",         "duration",     "group",          "transport", "close_reason", "close_detail",
    "listen_port", "captured_len", "first_read_len", "id",        "sensor"};

bool has_v11(const sink_record &r) {
  return r.struct_size >= offsetof(sink_record, value_size) + sizeof r.value_size;
}

// An extra's value as CSV text: like JSONL, bytes as base64.
std::string extra_text(const sink_record &r, const std::string &key) {
  if (has_v11(r) && r.value_size) {
    for (size_t i = 0; i < r.values_count; ++i) {
      const sink_value_extra &v = *sink_record_value(&r, i);
      if (key != v.key) continue;
      switch (v.type) {
      case SINK_VALUE_STRING: return std::string(reinterpret_cast<const char *>(v.bytes), v.len);
      case SINK_VALUE_BYTES: return text::base64(v.bytes, v.len);
      case SINK_VALUE_BOOL: return v.integer ? "true" : "false";
      case SINK_VALUE_INT: return std::to_string(v.integer);
      case SINK_VALUE_FLOAT: return text::plain_decimal(v.number);
      }
      return "";
    }
    return "";
  }
  for (size_t i = 0; i < r.extras_count; ++i)
    if (key == r.extras[i].key) return r.extras[i].value;
  return "";
}

std::string csv_value(const sink_record &r, const std::string &name) {
  if (name.rfind("extra:", 0) == 0) return extra_text(r, name.substr(6));
  char dur[32];
  if (name == "ts") return std::to_string(r.accept_unix_ns / 1000000);
  if (name == "localIP") return r.local_ip;
  if (name == "localPort") return std::to_string(r.local_port);
  if (name == "remoteIP") return r.remote_ip;
  if (name == "remotePort") return std::to_string(r.remote_port);
  if (name == "truncatedPayload") return text::hex(r.payload, r.captured_len);
  if (name == "len") return std::to_string(r.total_bytes);
  if (name == "duration") {
    std::snprintf(dur, sizeof dur, "%.3f", static_cast<double>(r.duration_ns) / 1e9);
    return dur;
  }
  if (name == "group") return r.group;
  if (name == "transport") return r.transport;
  if (name == "close_reason") return sink_close_reason_name(r.close_reason);
  if (name == "close_detail") return r.close_detail ? r.close_detail : "";
  if (name == "captured_len") return std::to_string(r.captured_len);
  if (!has_v11(r)) return "";
  if (name == "listen_port") return std::to_string(r.listen_port);
  if (name == "first_read_len") return std::to_string(r.first_read_len);
  if (name == "id") return r.id ? r.id : "";
  if (name == "sensor") return r.sensor ? r.sensor : "";
  return "";
}

} // namespace

bool valid_csv_column(const std::string &name, std::string *why) {
  if (name.rfind("extra:", 0) == 0 && name.size() > 6) return true;
  for (const char *f : kCsvFields)
    if (name == f) return true;
  std::string list;
  for (const char *f : kCsvFields)
    list += std::string(list.empty() ? "" : ", ") + f;
  *why = "unknown column \"" + name + "\" (expected one of " + list + ", or extra:KEY)";
  return false;
}

std::string csv_header(const std::vector<CsvColumn> &columns) {
  std::string line;
  for (const auto &c : columns)
    line += (line.empty() ? "" : ",") + csv_field(c.name);
  return line + "\n";
}

std::string csv_row(const sink_record &r, const std::vector<CsvColumn> &columns) {
  std::string line;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) line += ',';
    line += csv_field(csv_value(r, columns[i].name));
  }
  return line + "\n";
}

std::string jsonl_line(const sink_record &r) {
  nlohmann::ordered_json j;
  const bool v11 = has_v11(r);
  j["schema_version"] = kJsonlSchemaVersion;
  j["ts"] = rfc3339_utc_ms(r.accept_unix_ns);
  j["ts_ms"] = r.accept_unix_ns / 1000000;
  j["ts_ns"] = r.accept_unix_ns; // full precision: a collector rebuilds the record from this line
  // Identity: any consumer can deduplicate at-least-once deliveries on id.
  j["id"] = v11 && r.id ? r.id : "";
  j["sensor"] = v11 && r.sensor ? r.sensor : "";
  j["group"] = r.group;
  j["transport"] = r.transport;
  j["local_ip"] = r.local_ip;
  j["local_port"] = r.local_port; // the port the client dialed
  // The port the socket was accepted on (differs when a firewall redirected).
  j["listen_port"] = r.struct_size >= offsetof(sink_record, listen_port) + sizeof r.listen_port
                         ? r.listen_port
                         : r.local_port;
  j["remote_ip"] = r.remote_ip;
  j["remote_port"] = r.remote_port;
  j["payload_hex"] = text::hex(r.payload, r.captured_len);
  j["payload_len"] = r.total_bytes;
  j["captured_len"] = r.captured_len;
  j["truncated"] = r.total_bytes > r.captured_len;
  // Written below as plain decimal seconds (nlohmann would print 5.5533e-05).
  j["duration"] = nullptr;
  j["duration_ns"] = r.duration_ns;
  j["close_reason"] = sink_close_reason_name(r.close_reason);
  j["close_detail"] = r.close_detail ? r.close_detail : "";
  if (v11) {
    j["first_read_len"] = r.first_read_len;
    if (r.wire_len) j["wire_hex"] = text::hex(r.wire, r.wire_len);
  }
  j["extra"] = extras_json(r);
  // Which extras are raw bytes (their values are base64): without this a
  // reader could not tell them from text.
  if (r.struct_size >= offsetof(sink_record, value_size) + sizeof r.value_size && r.value_size) {
    auto bytes_keys = nlohmann::ordered_json::array();
    for (size_t i = 0; i < r.values_count; ++i)
      if (sink_record_value(&r, i)->type == SINK_VALUE_BYTES)
        bytes_keys.push_back(sink_record_value(&r, i)->key);
    if (!bytes_keys.empty()) j["extra_bytes"] = bytes_keys;
  }
  // Peer-controlled text (e.g. a TLS SNI) may be invalid UTF-8: replace, never throw.
  std::string line = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  // Keys before "duration" are ours (no peer text), so the first match is it.
  static const std::string kKey = "\"duration\":null";
  if (const auto at = line.find(kKey); at != std::string::npos)
    line.replace(at + 11, 4, duration_seconds(r.duration_ns));
  return line + "\n";
}

std::string extras_jsonb(const sink_record &r) {
  return extras_json(r, true).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

} // namespace sink::format
