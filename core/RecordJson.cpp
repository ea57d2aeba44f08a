#include "RecordJson.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <set>

#include "TextEncoding.h"

namespace sink {
namespace {

bool from_hex(const std::string &hex, std::vector<uint8_t> &out) {
  if (hex.size() % 2) return false;
  out.clear();
  out.reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return true;
}

bool reason_from_name(const std::string &name, sink_close_reason *reason) {
  for (int r = SINK_CLOSE_CLIENT_FIN; r <= SINK_CLOSE_ERROR; ++r)
    if (name == sink_close_reason_name(static_cast<sink_close_reason>(r))) {
      *reason = static_cast<sink_close_reason>(r);
      return true;
    }
  return false;
}

} // namespace

bool record_from_jsonl(std::string_view text, Record &r, StringInterner &strings, std::string *why) {
  // Ordered: extras keep the order they were added in.
  const auto j = nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *why = "not a JSON object";
    return false;
  }
  try {
    if (j.value("schema_version", 0) != 2) {
      *why = "schema_version is not 2";
      return false;
    }
    r = Record{};
    r.accept_unix_ns =
        j.contains("ts_ns") ? j.at("ts_ns").get<int64_t>() : j.at("ts_ms").get<int64_t>() * 1000000;
    r.duration_ns = j.contains("duration_ns") ? j.at("duration_ns").get<int64_t>()
                                              : static_cast<int64_t>(j.at("duration").get<double>() * 1e9);
    const std::string id = j.at("id").get<std::string>();
    if (id.size() != 36) {
      *why = "id is not a 36-character UUID";
      return false;
    }
    std::memcpy(r.id.data(), id.data(), 36);
    r.id[36] = '\0';
    r.sensor = strings.intern(j.at("sensor").get<std::string>()).c_str();
    r.group = &strings.intern(j.at("group").get<std::string>());
    r.transport = strings.intern(j.at("transport").get<std::string>()).c_str();
    r.local.ip = j.at("local_ip").get<std::string>();
    r.local.port = j.at("local_port").get<uint16_t>();
    r.local.v6 = r.local.ip.find(':') != std::string::npos;
    r.listen_port = j.value("listen_port", r.local.port);
    r.remote.ip = j.at("remote_ip").get<std::string>();
    r.remote.port = j.at("remote_port").get<uint16_t>();
    r.remote.v6 = r.remote.ip.find(':') != std::string::npos;
    if (!from_hex(j.at("payload_hex").get<std::string>(), r.payload)) {
      *why = "payload_hex is not hex";
      return false;
    }
    r.total_bytes = j.at("payload_len").get<uint64_t>();
    r.first_read_len = j.value("first_read_len", uint64_t{0});
    if (j.contains("wire_hex") && !from_hex(j.at("wire_hex").get<std::string>(), r.wire)) {
      *why = "wire_hex is not hex";
      return false;
    }
    if (!reason_from_name(j.at("close_reason").get<std::string>(), &r.close_reason)) {
      *why = "unknown close_reason";
      return false;
    }
    r.close_detail = j.value("close_detail", "");
    std::set<std::string> bytes_keys;
    if (j.contains("extra_bytes"))
      for (const auto &k : j.at("extra_bytes"))
        bytes_keys.insert(k.get<std::string>());
    ExtraCollector extras(r, false);
    for (const auto &[key, v] : j.at("extra").items()) {
      if (v.is_boolean()) {
        sink_add_bool(extras.writer(), key.c_str(), v.get<bool>());
      } else if (v.is_number_integer()) {
        sink_add_int(extras.writer(), key.c_str(), v.get<int64_t>());
      } else if (v.is_number()) {
        sink_add_float(extras.writer(), key.c_str(), v.get<double>());
      } else if (v.is_string()) {
        const std::string s = v.get<std::string>();
        if (bytes_keys.count(key)) {
          std::string raw;
          if (!text::base64_decode(s, &raw)) {
            *why = "extra " + key + " is not base64";
            return false;
          }
          sink_add_bytes(extras.writer(), key.c_str(), raw.data(), raw.size());
        } else {
          sink_add_string(extras.writer(), key.c_str(), s.data(), s.size());
        }
      }
    }
    return true;
  } catch (const std::exception &e) {
    *why = std::string("a field is missing or of the wrong type (") + e.what() + ")";
    return false;
  }
}

} // namespace sink
