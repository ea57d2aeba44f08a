#pragma once
// Parsed output rows, keyed by the client's port, for field-by-field checks.
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace sinktest {

struct CsvRecord {
  std::string line;
  int64_t ts = 0;
  std::string local_ip, remote_ip, payload_hex, duration;
  uint16_t local_port = 0, remote_port = 0;
  uint64_t len = 0;
};

inline std::vector<std::string> split(const std::string &s, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep))
    out.push_back(part);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

// Rows of an original-format CSV (no header), by remote port.
inline std::map<uint16_t, CsvRecord> csv_by_remote_port(const std::vector<std::string> &lines) {
  std::map<uint16_t, CsvRecord> out;
  for (const auto &line : lines) {
    auto f = split(line, ',');
    EXPECT_EQ(f.size(), 8u) << line;
    if (f.size() != 8) continue;
    CsvRecord r{line,
                std::stoll(f[0]),
                f[1],
                f[3],
                f[5],
                f[7],
                static_cast<uint16_t>(std::stoi(f[2])),
                static_cast<uint16_t>(std::stoi(f[4])),
                std::stoull(f[6])};
    out[r.remote_port] = r;
  }
  return out;
}

inline std::map<uint16_t, nlohmann::json> jsonl_by_remote_port(const std::vector<std::string> &lines) {
  std::map<uint16_t, nlohmann::json> out;
  for (const auto &line : lines) {
    auto j = nlohmann::json::parse(line);
    out[j["remote_port"].get<uint16_t>()] = j;
  }
  return out;
}

inline std::string hex(const std::string &bytes) {
  static const char *d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace sinktest
