// A two-group YAML config writing CSV and JSON Lines at once.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

const char *kConfig = R"(# two groups, two outputs
log:
  path: sink.log
  level: info
plugin_path: [PLUGINS]
groups:
  - name: alpha
    transport: tcp
    listen: 127.0.0.1
    ports: "0"
    timeout: 1s
    capture_bytes: 8
  - name: beta
    listen: ["::1"]
    ports: [0]
    timeout: 30s
    idle_timeout: 700ms
    capture_bytes: 4096
outputs:
  - plugin: csv
    path: records.csv
    header: true
  - plugin: jsonl
    path: records.jsonl
)";

std::string config_text() {
  std::string s = kConfig;
  s.replace(s.find("PLUGINS"), 7, bundled_plugin_dir());
  return s;
}

void expect_json(const nlohmann::json &j, const std::string &group, const std::string &ip, uint16_t port,
                 const std::string &payload, uint64_t len, const std::string &reason) {
  SCOPED_TRACE(j.dump());
  EXPECT_EQ(j.size(), 23u);
  EXPECT_EQ(j["schema_version"], 2);
  EXPECT_EQ(j["id"].get<std::string>().size(), 36u);
  EXPECT_FALSE(j["sensor"].get<std::string>().empty()) << "defaults to the host name";
  EXPECT_EQ(j["group"], group);
  EXPECT_EQ(j["transport"], "tcp");
  EXPECT_EQ(j["local_ip"], ip);
  EXPECT_EQ(j["local_port"], port);
  EXPECT_EQ(j["listen_port"], port); // nothing redirected
  EXPECT_EQ(j["remote_ip"], ip);
  EXPECT_EQ(j["payload_hex"], hex(payload));
  EXPECT_EQ(j["payload_len"], len);
  EXPECT_EQ(j["captured_len"], payload.size());
  EXPECT_EQ(j["truncated"], len > payload.size());
  EXPECT_EQ(j["close_reason"], reason);
  EXPECT_TRUE(j["extra"].is_object());
  EXPECT_TRUE(j["duration"].is_number_float() || j["duration"].is_number());
  // ts and ts_ms are the same instant.
  const int64_t ms = j["ts_ms"];
  const std::string ts = j["ts"];
  EXPECT_EQ(ts.size(), 24u);
  EXPECT_EQ(ts.back(), 'Z');
  EXPECT_EQ(std::stoi(ts.substr(20, 3)), ms % 1000);
}

} // namespace

TEST(YamlGroups, TwoGroupsTwoOutputsFieldByField) {
  TempDir dir;
  write_file(dir.file("sink.yaml"), config_text());
  SinkProcess sink(dir, {"--config", "sink.yaml"});
  auto ports = sink.wait_listening(2, dir.file("sink.log"));
  const uint16_t alpha = ports[0], beta = ports[1];
  const int64_t before = now_ms();

  uint16_t a_text, a_held, b_text, b_idle, b_reset;
  a_text = send_and_close("127.0.0.1", alpha, "a,b\"c\nd and more");
  b_text = send_and_close("::1", beta, "beta says hi");
  {
    TestClient c("::1", beta);
    b_reset = c.local_port();
    c.send("bye");
    std::this_thread::sleep_for(100ms);
    c.reset();
  }
  bool a_closed = false, b_closed = false;
  std::string a_got, b_got;
  std::thread held([&] {
    TestClient c("127.0.0.1", alpha);
    a_held = c.local_port();
    c.send("held");
    a_got = c.read_until_closed(5, &a_closed);
  });
  {
    TestClient c("::1", beta);
    b_idle = c.local_port();
    c.send("idle");
    b_got = c.read_until_closed(5, &b_closed);
  }
  held.join();
  EXPECT_TRUE(a_closed);
  EXPECT_TRUE(b_closed);
  EXPECT_EQ(a_got + b_got, "");

  auto csv_lines = wait_for_lines(dir.file("records.csv"), 6);
  auto json_lines = wait_for_lines(dir.file("records.jsonl"), 5);
  const int64_t after = now_ms();
  EXPECT_EQ(sink.stop().code, 0);

  ASSERT_EQ(csv_lines.size(), 6u);
  EXPECT_EQ(csv_lines[0], "ts,localIP,localPort,remoteIP,remotePort,truncatedPayload,len,duration");
  auto csv = csv_by_remote_port({csv_lines.begin() + 1, csv_lines.end()});
  ASSERT_EQ(json_lines.size(), 5u);
  auto json = jsonl_by_remote_port(json_lines);

  expect_json(json[a_text], "alpha", "127.0.0.1", alpha, "a,b\"c\nd ", 16, "client_fin");
  expect_json(json[a_held], "alpha", "127.0.0.1", alpha, "held", 4, "timeout");
  expect_json(json[b_text], "beta", "::1", beta, "beta says hi", 12, "client_fin");
  expect_json(json[b_reset], "beta", "::1", beta, "bye", 3, "client_rst");
  expect_json(json[b_idle], "beta", "::1", beta, "idle", 4, "idle_timeout");
  EXPECT_GE(json[a_held]["duration"].get<double>(), 1.0);
  EXPECT_LT(json[a_held]["duration"].get<double>(), 1.5);
  // Idle time runs from the last read as libevent measures it (its cached loop time).
  EXPECT_GE(json[b_idle]["duration"].get<double>(), 0.65);
  EXPECT_LT(json[b_idle]["duration"].get<double>(), 1.5);

  // The CSV row of each connection says the same as its JSON record.
  for (auto &[port, j] : json) {
    SCOPED_TRACE(j.dump());
    ASSERT_TRUE(csv.count(port));
    const auto &r = csv[port];
    EXPECT_EQ(r.ts, j["ts_ms"].get<int64_t>());
    EXPECT_GE(r.ts, before);
    EXPECT_LE(r.ts, after);
    EXPECT_EQ(r.local_ip, j["local_ip"]);
    EXPECT_EQ(r.local_port, j["local_port"]);
    EXPECT_EQ(r.remote_ip, j["remote_ip"]);
    EXPECT_EQ(r.payload_hex, j["payload_hex"]);
    EXPECT_EQ(r.len, j["payload_len"]);
    char dur[32];
    std::snprintf(dur, sizeof dur, "%.3f", j["duration"].get<double>());
    EXPECT_EQ(r.duration, dur);
  }
}

TEST(YamlGroups, OpenConnectionsAreRecordedAtShutdown) {
  TempDir dir;
  write_file(dir.file("sink.yaml"), config_text());
  SinkProcess sink(dir, {"-config", "sink.yaml"});
  auto ports = sink.wait_listening(2, dir.file("sink.log"));
  TestClient c("127.0.0.1", ports[0]);
  c.send("pending");
  std::this_thread::sleep_for(200ms);
  auto exit = sink.stop();
  EXPECT_EQ(exit.code, 0);
  auto json = jsonl_by_remote_port(read_lines(dir.file("records.jsonl")));
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[c.local_port()]["close_reason"], "shutdown");
  EXPECT_EQ(json[c.local_port()]["payload_hex"], hex("pending"));
}

TEST(YamlGroups, AppendsAndNeverRepeatsTheHeader) {
  TempDir dir;
  write_file(dir.file("sink.yaml"), config_text());
  for (int run = 0; run < 2; ++run) {
    SinkProcess sink(dir, {"--config", "sink.yaml"});
    auto ports = sink.wait_listening(2, dir.file("sink.log"));
    {
      TestClient c("127.0.0.1", ports[0]);
      c.send("run" + std::to_string(run));
      c.close();
    }
    wait_for_lines(dir.file("records.csv"), static_cast<size_t>(run) + 2);
    sink.stop();
    // Each run appends two "listening" lines; the next run must see its own.
    write_file(dir.file("sink.log"), "");
  }
  auto lines = read_lines(dir.file("records.csv"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].rfind("ts,", 0), 0u);
  EXPECT_NE(lines[1].find(hex("run0")), std::string::npos);
  EXPECT_NE(lines[2].find(hex("run1")), std::string::npos);
}

TEST(YamlGroups, CsvColumnsAndTheHeaderAfterRotation) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             "log: {path: sink.log}\ngroups: [{name: alpha, listen: 127.0.0.1, ports: 0}]\n"
             "outputs:\n  - plugin: csv\n    path: out.csv\n    header: true\n"
             "    columns: [group, remotePort, close_reason, \"extra:unread_at_close\", len]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  const uint16_t first = send_and_close("127.0.0.1", port, "one");
  wait_for_lines(dir.file("out.csv"), 2);
  std::filesystem::rename(dir.file("out.csv"), dir.file("out.csv.1"));
  sink.signal(SIGHUP);
  std::this_thread::sleep_for(300ms);
  const uint16_t second = send_and_close("127.0.0.1", port, "two!");
  auto rotated = wait_for_lines(dir.file("out.csv"), 2);
  EXPECT_EQ(sink.stop().code, 0);
  const std::string header = "group,remotePort,close_reason,extra:unread_at_close,len";
  EXPECT_EQ(read_lines(dir.file("out.csv.1")),
            (std::vector<std::string>{header, "alpha," + std::to_string(first) + ",client_fin,false,3"}));
  EXPECT_EQ(rotated,
            (std::vector<std::string>{header, "alpha," + std::to_string(second) + ",client_fin,false,4"}))
      << "a file started after rotation gets the header too";
}

// The idle timeout counts from the last read, not from accept: a client that
// sends a byte every 300 ms outlives several idle periods of 600 ms, and is
// closed one idle period after it falls silent.
TEST(YamlGroups, EachReadPushesTheIdleTimeoutBack) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: false\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 20s, "
                                 "idle_timeout: 600ms}]\n"
                                 "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const auto ports = sink.wait_listening(1, dir.file("sink.log"));
  bool closed = false;
  std::string got;
  uint16_t client_port = 0;
  {
    TestClient c("127.0.0.1", ports[0]);
    client_port = c.local_port();
    for (int i = 0; i < 6; ++i) { // the last byte at 1.5 s
      if (i) std::this_thread::sleep_for(300ms);
      c.send("x");
    }
    got = c.read_until_closed(5, &closed);
  }
  EXPECT_TRUE(closed);
  auto json = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 1));
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(json.count(client_port), 1u);
  const auto &r = json[client_port];
  EXPECT_EQ(r["close_reason"], "idle_timeout");
  EXPECT_EQ(r["payload_len"], 6);
  EXPECT_GE(r["duration"].get<double>(), 2.05) << "1.5 s of bytes, then 0.6 s of silence";
  EXPECT_LT(r["duration"].get<double>(), 3.5);
}
