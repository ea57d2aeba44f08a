#include "RecordJson.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>

#include "Config.h"
#include "TextEncoding.h"

namespace sink {
namespace {

using Json = nlohmann::ordered_json;

// A field that breaks the schema; what() names it and what was expected.
struct SchemaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The names a schema_version 2 line may hold (support/RecordFormat).
const std::set<std::string, std::less<>> kKnownFields = {
    "schema_version", "ts",           "ts_ms",        "ts_ns",          "id",          "sensor",
    "group",          "transport",    "local_ip",     "local_port",     "listen_port", "remote_ip",
    "remote_port",    "payload_hex",  "payload_len",  "captured_len",   "truncated",   "duration",
    "duration_ns",    "close_reason", "close_detail", "first_read_len", "wire_hex",    "extra",
    "extra_bytes"};

const Json &required(const Json &j, const char *key) {
  const auto it = j.find(key);
  if (it == j.end()) throw SchemaError(std::string(key) + " is missing");
  return *it;
}

int64_t integer_in(const Json &v, const char *key, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) throw SchemaError(std::string(key) + " is not a whole number");
  const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi);
  if (too_big || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    throw SchemaError(std::string(key) + " is " + v.dump() + ", outside " + std::to_string(lo) + ".." +
                      std::to_string(hi));
  return v.get<int64_t>();
}

uint64_t unsigned_field(const Json &v, const char *key) {
  if (!v.is_number_unsigned()) throw SchemaError(std::string(key) + " is not a whole number >= 0");
  return v.get<uint64_t>();
}

// A count no sensor exceeds; the stores keep it in a signed column, which
// would clamp a larger one silently.
uint64_t count_up_to(const Json &v, const char *key, uint64_t max) {
  const uint64_t n = unsigned_field(v, key);
  if (n > max)
    throw SchemaError(std::string(key) + " is " + std::to_string(n) + ", more than " + std::to_string(max));
  return n;
}

uint16_t port_field(const Json &v, const char *key) {
  return static_cast<uint16_t>(integer_in(v, key, 0, 65535));
}

// Text a plugin sees as a C string: no NUL (it would cut it), bounded.
std::string text_field(const Json &v, const char *key, size_t max_bytes) {
  if (!v.is_string()) throw SchemaError(std::string(key) + " is not a string");
  std::string s = v.get<std::string>();
  if (s.size() > max_bytes)
    throw SchemaError(std::string(key) + " has " + std::to_string(s.size()) + " bytes, more than " +
                      std::to_string(max_bytes));
  if (s.find('\0') != std::string::npos) throw SchemaError(std::string(key) + " holds a NUL byte");
  return s;
}

std::string ip_field(const Json &v, const char *key) {
  std::string ip = text_field(v, key, 64);
  const std::string addr = ip.substr(0, ip.find('%')); // a zone may follow a link-local address
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) != 1 && inet_pton(AF_INET6, addr.c_str(), buf) != 1)
    throw SchemaError(std::string(key) + " is not an IP address");
  return ip;
}

std::vector<uint8_t> hex_field(const Json &v, const char *key) {
  const std::string hex = text_field(v, key, 2 * kMaxCaptureBytes);
  if (hex.size() % 2) throw SchemaError(std::string(key) + " is not hex");
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) throw SchemaError(std::string(key) + " is not hex");
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

void id_field(const Json &v, Record &r) {
  const std::string id = text_field(v, "id", 36);
  bool ok = id.size() == 36;
  for (size_t i = 0; ok && i < id.size(); ++i)
    ok = (i == 8 || i == 13 || i == 18 || i == 23) ? id[i] == '-'
                                                   : std::isxdigit(static_cast<unsigned char>(id[i]));
  if (!ok) throw SchemaError("id is not a 36-character UUID");
  std::memcpy(r.id.data(), id.data(), 36);
  r.id[36] = '\0';
}

sink_close_reason reason_field(const Json &v) {
  const std::string name = text_field(v, "close_reason", 32);
  for (int r = SINK_CLOSE_CLIENT_FIN; r <= SINK_CLOSE_ERROR; ++r)
    if (name == sink_close_reason_name(static_cast<sink_close_reason>(r)))
      return static_cast<sink_close_reason>(r);
  throw SchemaError("close_reason \"" + name + "\" is not a known reason");
}

void times(const Json &j, Record &r) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (j.contains("ts_ns"))
    r.accept_unix_ns = integer_in(j["ts_ns"], "ts_ns", std::numeric_limits<int64_t>::min(), kMax);
  else
    r.accept_unix_ns = integer_in(required(j, "ts_ms"), "ts_ms", -(kMax / 1000000), kMax / 1000000) * 1000000;
  if (j.contains("ts") && !j["ts"].is_string()) throw SchemaError("ts is not a string");
  if (j.contains("duration_ns")) {
    r.duration_ns = integer_in(j["duration_ns"], "duration_ns", 0, kMax);
  } else {
    const Json &d = required(j, "duration");
    if (!d.is_number() || !(d.get<double>() >= 0) || d.get<double>() > 9.2e9)
      throw SchemaError("duration is not a number of seconds from 0 to 9.2e9");
    r.duration_ns = static_cast<int64_t>(d.get<double>() * 1e9);
  }
  if (j.contains("duration") && !j["duration"].is_number()) throw SchemaError("duration is not a number");
}

void payload(const Json &j, Record &r) {
  r.payload = hex_field(required(j, "payload_hex"), "payload_hex");
  r.total_bytes = count_up_to(required(j, "payload_len"), "payload_len", INT64_MAX);
  if (r.total_bytes < r.payload.size())
    throw SchemaError("payload_len is less than the bytes in payload_hex");
  if (j.contains("captured_len") && unsigned_field(j["captured_len"], "captured_len") != r.payload.size())
    throw SchemaError("captured_len is not the number of bytes in payload_hex");
  if (j.contains("truncated") &&
      (!j["truncated"].is_boolean() || j["truncated"].get<bool>() != (r.total_bytes > r.payload.size())))
    throw SchemaError("truncated is not a boolean saying payload_len > captured_len");
  // One read(2) returns less than 2 GiB.
  if (j.contains("first_read_len"))
    r.first_read_len = count_up_to(j["first_read_len"], "first_read_len", INT32_MAX);
  if (j.contains("wire_hex")) r.wire = hex_field(j["wire_hex"], "wire_hex");
}

void extras(const Json &j, Record &r) {
  const Json &extra = required(j, "extra");
  if (!extra.is_object()) throw SchemaError("extra is not an object");
  std::set<std::string> bytes_keys;
  if (j.contains("extra_bytes")) {
    if (!j["extra_bytes"].is_array()) throw SchemaError("extra_bytes is not an array");
    for (const auto &k : j["extra_bytes"]) {
      const std::string key = text_field(k, "extra_bytes[]", kMaxJsonlExtraKeyBytes);
      if (!extra.contains(key) || !extra[key].is_string())
        throw SchemaError("extra_bytes names \"" + key + "\", which is not a string in extra");
      bytes_keys.insert(key);
    }
  }
  ExtraCollector out(r, false);
  for (const auto &[key, v] : extra.items()) {
    if (key.empty() || key.size() > kMaxJsonlExtraKeyBytes || key.find('\0') != std::string::npos)
      throw SchemaError("extra has a key that is empty, holds a NUL byte or has more than " +
                        std::to_string(kMaxJsonlExtraKeyBytes) + " bytes");
    if (v.is_boolean()) {
      sink_add_bool(out.writer(), key.c_str(), v.get<bool>());
    } else if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX)) {
      sink_add_int(out.writer(), key.c_str(), v.get<int64_t>());
    } else if (v.is_number_float()) {
      sink_add_float(out.writer(), key.c_str(), v.get<double>());
    } else if (v.is_string() && bytes_keys.count(key)) {
      std::string raw;
      if (!text::base64_decode(v.get<std::string>(), &raw))
        throw SchemaError("extra " + key + " is not base64");
      sink_add_bytes(out.writer(), key.c_str(), raw.data(), raw.size());
    } else if (v.is_string()) {
      const std::string s = v.get<std::string>();
      sink_add_string(out.writer(), key.c_str(), s.data(), s.size());
    } else {
      // An array, object, null or an integer beyond int64: no typed extra
      // holds it, so it is carried as a string holding its JSON text.
      const std::string s = v.dump();
      sink_add_string(out.writer(), key.c_str(), s.data(), s.size());
    }
  }
}

struct Names {
  std::string sensor, group, transport;
};

// Everything but the three names, which the caller stores.
void decode(std::string_view text, Record &r, Names &names) {
  // Ordered: extras keep the order they were added in.
  const auto j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw SchemaError("not a JSON object");
  if (!j.contains("schema_version") || !j["schema_version"].is_number_integer() || j["schema_version"] != 2)
    throw SchemaError("schema_version is not 2");
  for (const auto &[key, v] : j.items())
    if (!kKnownFields.count(key)) throw SchemaError("unknown field \"" + text::escape_bytes(key) + "\"");
  r = Record{};
  times(j, r);
  id_field(required(j, "id"), r);
  names.sensor = text_field(required(j, "sensor"), "sensor", kMaxJsonlSensorBytes);
  names.group = text_field(required(j, "group"), "group", kMaxJsonlNameBytes);
  names.transport = text_field(required(j, "transport"), "transport", kMaxJsonlNameBytes);
  r.local.ip = ip_field(required(j, "local_ip"), "local_ip");
  r.local.port = port_field(required(j, "local_port"), "local_port");
  r.local.v6 = r.local.ip.find(':') != std::string::npos;
  r.listen_port = j.contains("listen_port") ? port_field(j["listen_port"], "listen_port") : r.local.port;
  r.remote.ip = ip_field(required(j, "remote_ip"), "remote_ip");
  r.remote.port = port_field(required(j, "remote_port"), "remote_port");
  r.remote.v6 = r.remote.ip.find(':') != std::string::npos;
  payload(j, r);
  r.close_reason = reason_field(required(j, "close_reason"));
  if (j.contains("close_detail"))
    r.close_detail = text_field(j["close_detail"], "close_detail", kMaxJsonlDetailBytes);
  extras(j, r);
}

} // namespace

bool record_from_jsonl(std::string_view text, OwnedTextRecord &r, std::string *why) {
  Names names;
  try {
    decode(text, r, names);
  } catch (const std::exception &e) { // SchemaError, or nlohmann's on a type it did not expect
    *why = e.what();
    return false;
  }
  r.sensor_text = std::move(names.sensor);
  r.group_text = std::move(names.group);
  r.transport_text = std::move(names.transport);
  r.sensor = r.sensor_text.c_str();
  r.group = &r.group_text;
  r.transport = r.transport_text.c_str();
  return true;
}

bool record_from_jsonl(std::string_view text, Record &r, StringInterner &strings, std::string *why) {
  Names names;
  try {
    decode(text, r, names);
  } catch (const std::exception &e) {
    *why = e.what();
    return false;
  }
  r.sensor = strings.intern(names.sensor).c_str();
  r.group = &strings.intern(names.group);
  r.transport = strings.intern(names.transport).c_str();
  return true;
}

} // namespace sink
