#include <algorithm>
// Plugin ABI 1.1 end to end: a frozen 1.0 plugin beside 1.1 plugins, typed
// extras through JSONL and through the 1.0 text array, the new record
// fields, the version rule, and one output per thread.
#include <gtest/gtest.h>

#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <regex>
#include <set>
#include <thread>

#include "ClientHelloBuilder.h"
#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

std::string test_plugin(const std::string &name) {
  return std::string(SINK_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

std::string unhex(const std::string &h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

// A frozen-plugin line: fixed 1.0 fields, then key=hex(value) extras.
struct FrozenLine {
  std::vector<std::string> fields;
  std::vector<std::pair<std::string, std::string>> extras; // key, text
};

FrozenLine parse_frozen(const std::string &line) {
  FrozenLine f;
  auto parts = split(line, '\t');
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i < 13) {
      f.fields.push_back(parts[i]);
    } else {
      auto eq = parts[i].find('=');
      f.extras.emplace_back(parts[i].substr(0, eq), unhex(parts[i].substr(eq + 1)));
    }
  }
  return f;
}

// kernel_facts off: the analyzers count the extras before theirs.
const std::string kAbiConfig =
    "log: {path: sink.log}\nsensor: probe-sensor\n"
    "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m, kernel_facts: false}]\n"
    "analyzers:\n"
    "  - plugin: " +
    test_plugin("tag_analyzer") +
    "\n"
    "    prefix: a\n"
    "  - plugin: " +
    test_plugin("tag_analyzer") +
    "\n"
    "    prefix: b\n"
    "outputs:\n"
    "  - plugin: jsonl\n"
    "    path: out.jsonl\n"
    "  - plugin: " +
    test_plugin("frozen_v1_0") +
    "\n"
    "    path: frozen.tsv\n"
    "  - plugin: " +
    test_plugin("probe_v1_1_output") +
    "\n"
    "    path: probe.jsonl\n";

} // namespace

TEST(AbiV11, FrozenOnePointZeroPluginGetsEveryRecordUnchanged) {
  TempDir dir;
  write_file(dir.file("c.yaml"), kAbiConfig);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  constexpr int kConnections = 30;
  std::set<uint16_t> clients;
  for (int i = 0; i < kConnections; ++i)
    clients.insert(send_and_close("127.0.0.1", port, "payload \x01 number " + std::to_string(i)));
  auto json_lines = wait_for_lines(dir.file("out.jsonl"), kConnections);
  auto frozen_lines = wait_for_lines(dir.file("frozen.tsv"), kConnections);
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(json_lines.size(), static_cast<size_t>(kConnections));
  ASSERT_EQ(frozen_lines.size(), static_cast<size_t>(kConnections));
  std::map<uint16_t, nlohmann::ordered_json> json; // ordered: extras order matters
  for (const auto &l : json_lines) {
    auto j = nlohmann::ordered_json::parse(l);
    json[j["remote_port"].get<uint16_t>()] = j;
  }

  std::set<uint16_t> seen;
  for (const auto &line : frozen_lines) {
    FrozenLine f = parse_frozen(line);
    ASSERT_EQ(f.fields.size(), 13u) << line;
    const uint16_t remote_port = static_cast<uint16_t>(std::stoi(f.fields[8]));
    ASSERT_TRUE(json.count(remote_port)) << line;
    seen.insert(remote_port);
    const auto &j = json[remote_port];
    // Every ABI 1.0 field as the 1.1 jsonl output saw it.
    EXPECT_EQ(std::stoll(f.fields[1]) / 1000000, j["ts_ms"].get<int64_t>());
    EXPECT_EQ(static_cast<double>(std::stoll(f.fields[2])) / 1e9, j["duration"].get<double>());
    EXPECT_EQ(unhex(f.fields[3]), j["group"]);
    EXPECT_EQ(unhex(f.fields[4]), j["transport"]);
    EXPECT_EQ(f.fields[5], j["local_ip"]);
    EXPECT_EQ(std::stoi(f.fields[6]), j["local_port"].get<int>());
    EXPECT_EQ(f.fields[7], j["remote_ip"]);
    EXPECT_EQ(f.fields[9], j["payload_hex"]);
    EXPECT_EQ(std::stoull(f.fields[10]), j["payload_len"].get<uint64_t>());
    EXPECT_EQ(f.fields[11], j["close_reason"]);
    EXPECT_EQ(unhex(f.fields[12]), "");
    // The 1.0 extras array: same keys in the same order, typed values as text,
    // bytes outside printable ASCII / UTF-8 (and backslash) as \xHH.
    std::vector<std::string> json_keys;
    for (auto it = j["extra"].begin(); it != j["extra"].end(); ++it)
      json_keys.push_back(it.key());
    std::vector<std::string> frozen_keys;
    std::map<std::string, std::string> text;
    for (const auto &[k, v] : f.extras) {
      frozen_keys.push_back(k);
      text[k] = v;
    }
    EXPECT_EQ(frozen_keys, json_keys) << line;
    EXPECT_EQ(text["unread_at_close"], "false");
    for (const std::string p : {"a.", "b."}) {
      EXPECT_EQ(text[p + "nul"], "a\\x00b");
      EXPECT_EQ(text[p + "bytes"], "\\x00\\xffA");
      EXPECT_EQ(text[p + "not_utf8"], "\\xff\\xfe");
      EXPECT_EQ(text[p + "bool"], "true");
      EXPECT_EQ(text[p + "int"], "-42");
      EXPECT_EQ(text[p + "float"], "0.000055533");
      EXPECT_EQ(text[p + "text"], "back\\x5cslash\\x09tab");
    }
    EXPECT_EQ(text["a.seen"], "1"); // the transport's unread_at_close
    EXPECT_EQ(text["b.seen"], "9"); // ... and everything analyzer a added
  }
  EXPECT_EQ(seen, clients);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("plugin frozen_v1_0 1.0.0 (needs ABI 1.0, host ABI 1.1)"), std::string::npos) << log;
  EXPECT_NE(log.find("plugin tag 1.0.0 (needs ABI 1.1, host ABI 1.1)"), std::string::npos) << log;
}

TEST(AbiV11, TypedExtrasRoundTripThroughJsonl) {
  TempDir dir;
  write_file(dir.file("c.yaml"), kAbiConfig);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  send_and_close("127.0.0.1", port, "x");
  auto lines = wait_for_lines(dir.file("out.jsonl"), 1);
  EXPECT_EQ(sink.stop().code, 0);
  auto j = nlohmann::ordered_json::parse(lines.at(0));
  const auto &x = j["extra"];
  // Text keeps its NUL as \u0000; bytes are base64; text that is not UTF-8
  // was kept as bytes; booleans and numbers have their JSON types.
  EXPECT_NE(lines[0].find("\"a.nul\":\"a\\u0000b\""), std::string::npos) << lines[0];
  EXPECT_EQ(x["a.nul"].get<std::string>(), std::string("a\0b", 3));
  EXPECT_EQ(x["a.bytes"], "AP9B");    // 00 ff 41
  EXPECT_EQ(x["a.not_utf8"], "//4="); // ff fe
  EXPECT_EQ(x["a.bool"], true);
  EXPECT_EQ(x["a.int"], -42);
  EXPECT_DOUBLE_EQ(x["a.float"].get<double>(), 0.000055533);
  EXPECT_EQ(x["a.text"], "back\\slash\ttab");
  EXPECT_EQ(x["unread_at_close"], false);
  EXPECT_EQ(x["b.seen"], 9);
}

TEST(AbiV11, NewRecordFieldsReachAOnePointOnePlugin) {
  TempDir dir;
  write_file(dir.file("c.yaml"), kAbiConfig);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  constexpr int kConnections = 40;
  for (int i = 0; i < kConnections; ++i)
    send_and_close("127.0.0.1", port, std::string(static_cast<size_t>(10 + i), 'q'));
  auto lines = wait_for_lines(dir.file("probe.jsonl"), kConnections);
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kConnections));
  // Several network threads may accept and finish out of connect order:
  // put the records in connect order (each sent a different length).
  std::sort(lines.begin(), lines.end(), [](const std::string &a, const std::string &b) {
    return nlohmann::json::parse(a)["first_read_len"].get<int>() <
           nlohmann::json::parse(b)["first_read_len"].get<int>();
  });
  std::set<std::string> ids;
  char real[PATH_MAX];
  ASSERT_NE(realpath(dir.path().c_str(), real), nullptr);
  const std::regex uuid7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  const int64_t before_ms = now_ms();
  for (size_t i = 0; i < lines.size(); ++i) {
    auto j = nlohmann::json::parse(lines[i]);
    EXPECT_EQ(j["listen_port"], port);
    EXPECT_EQ(j["local_port"], port); // nothing redirected
    EXPECT_EQ(j["sensor"], "probe-sensor");
    const std::string id = j["id"];
    EXPECT_TRUE(std::regex_match(id, uuid7)) << id;
    // Unique, and the first 48 bits are the accept time in Unix milliseconds.
    EXPECT_TRUE(ids.insert(id).second) << id;
    const int64_t id_ms = std::stoll(id.substr(0, 8) + id.substr(9, 4), nullptr, 16);
    EXPECT_LE(std::llabs(id_ms - before_ms), 60000);
    EXPECT_EQ(j["first_read_len"], 10 + i);
    EXPECT_EQ(j["wire_is_null"], true); // plain TCP: the payload is the wire
    EXPECT_EQ(j["config_dir"], std::string(real));
    ASSERT_EQ(j["values"].size(), 17u); // unread_at_close + 8 per analyzer
    for (const auto &v : j["values"])
      EXPECT_EQ(v["struct_size"], j["value_size"]);
    auto find = [&](const std::string &key) {
      for (const auto &v : j["values"])
        if (v["key"] == key) return v;
      return nlohmann::json();
    };
    EXPECT_EQ(find("a.nul")["type"], 1);
    EXPECT_EQ(find("a.nul")["hex"], "610062");
    EXPECT_EQ(find("a.bytes")["type"], 5);
    EXPECT_EQ(find("a.bytes")["hex"], "00ff41");
    EXPECT_EQ(find("a.not_utf8")["type"], 5);
    EXPECT_EQ(find("a.bool")["type"], 2);
    EXPECT_EQ(find("a.bool")["integer"], 1);
    EXPECT_EQ(find("a.int")["integer"], -42);
    EXPECT_EQ(find("a.float")["type"], 4);
    EXPECT_DOUBLE_EQ(find("a.float")["number"].get<double>(), 0.000055533);
    EXPECT_EQ(find("unread_at_close")["type"], 2);
  }
}

TEST(AbiV11, TlsRecordsCarryTheBytesAsTheyArrivedOnTheWire) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             "log: {path: sink.log}\n"
             "groups: [{name: t, transport: tls, listen: 127.0.0.1, ports: 0, timeout: 2s,"
             " capture_bytes: 4096}]\n"
             "outputs:\n  - plugin: jsonl\n    path: out.jsonl\n"
             "  - plugin: " +
                 test_plugin("probe_v1_1_output") + "\n    path: probe.jsonl\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  Bytes hello = build_hello(0x0303, {0x1301, 0xc02f}, {sni_ext("wire.example")});
  {
    TestClient c("127.0.0.1", port);
    c.send(std::string(hello.begin(), hello.end()));
    std::this_thread::sleep_for(200ms);
    c.close();
  }
  auto probe = wait_for_lines(dir.file("probe.jsonl"), 1);
  auto json = wait_for_lines(dir.file("out.jsonl"), 1);
  EXPECT_EQ(sink.stop().code, 0);
  auto p = nlohmann::json::parse(probe.at(0));
  auto j = nlohmann::json::parse(json.at(0));
  EXPECT_EQ(p["wire_is_null"], false);
  EXPECT_EQ(p["wire_hex"], hex(std::string(hello.begin(), hello.end())));
  EXPECT_EQ(p["wire_hex"], j["extra"]["tls.raw_hex"]);
  EXPECT_EQ(p["first_read_len"], hello.size()); // the whole hello, not OpenSSL's 5-byte header read
  EXPECT_EQ(p["listen_port"], port);
}

TEST(AbiV11, PluginNeedingANewerMinorIsRefusedNamingBothVersions) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs:\n  - plugin: " +
                                     test_plugin("bad_needs_minor_2") + "\n");
  auto r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad_needs_minor_2.so: needs plugin ABI 1.2 or newer, this sink provides ABI 1.1"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("listening"), std::string::npos) << "refused before binding";
}

TEST(AbiV11, AnOutputIsNotAnAnalyzer) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\n"
                                 "analyzers:\n  - plugin: jsonl\noutputs:\n  - plugin: jsonl\n");
  auto r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("c.yaml:3: analyzers[0] (jsonl)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is an output plugin, not an analyzer plugin"), std::string::npos) << r.err;
}

namespace {
const std::string kStuckConfig = "log: {path: sink.log}\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
                                 "outputs:\n  - plugin: " +
                                 test_plugin("bad_blocks_forever") +
                                 "\n  - plugin: jsonl\n    path: out.jsonl\n";

// Sends n records through a sink whose first output blocks forever in write;
// the healthy output must get every one of them while the sink runs.
void expect_healthy_output_unaffected(const TempDir &dir, uint16_t port, int n) {
  std::set<uint16_t> sent;
  for (int i = 0; i < n; ++i)
    sent.insert(send_and_close("127.0.0.1", port, "r" + std::to_string(i)));
  auto lines = wait_for_lines(dir.file("out.jsonl"), static_cast<size_t>(n));
  ASSERT_EQ(lines.size(), static_cast<size_t>(n));
  std::set<uint16_t> got;
  for (const auto &[p, j] : jsonl_by_remote_port(lines))
    got.insert(p);
  EXPECT_EQ(got, sent);
}
} // namespace

TEST(AbiV11, AnOutputBlockedForeverHoldsUpNoOther) {
  TempDir dir;
  write_file(dir.file("c.yaml"), kStuckConfig);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  expect_healthy_output_unaffected(dir, port, 200);
  sink.signal(SIGTERM);
  std::this_thread::sleep_for(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto exit = sink.stop(); // the second signal exits at once
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(exit.code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("second signal: exiting now"), std::string::npos) << log;
  EXPECT_NE(log.find("output bad_blocks_forever: 200 records wait in the journal"), std::string::npos) << log;
  EXPECT_EQ(log.find("output jsonl: "), std::string::npos) << "the healthy output lost nothing\n" << log;
}

TEST(AbiV11, AStalledOutputIsGivenUpAtShutdownWithoutASecondSignal) {
  TempDir dir;
  write_file(dir.file("c.yaml"), kStuckConfig);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  expect_healthy_output_unaffected(dir, port, 20);
  sink.signal(SIGTERM);
  auto exit = sink.wait_exit(20s);
  EXPECT_EQ(exit.code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("output bad_blocks_forever: no progress for 10 s while stopping; giving up on it"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("output bad_blocks_forever: 20 records wait in the journal"), std::string::npos) << log;
  EXPECT_NE(log.find("output jsonl written=20 failed=0 pending=0 lost=0"), std::string::npos) << log;
}

TEST(AbiV11, AnOutputThatFailsNowAndThenStillGetsEverythingCountedOnce) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
                                 "outputs:\n  - plugin: " +
                                     test_plugin("bad_fails_now_and_then") +
                                     "\n  - plugin: jsonl\n    path: out.jsonl\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  for (int i = 0; i < 300; ++i)
    send_and_close("127.0.0.1", port, "n" + std::to_string(i));
  wait_for_lines(dir.file("out.jsonl"), 300);
  // Scattered failures must not stall the flaky output: it catches up.
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(sink.stop().code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("output bad_fails_now_and_then written=300 "), std::string::npos) << log;
  EXPECT_NE(log.find("pending=0 lost=0 | output jsonl written=300"), std::string::npos) << log;
}

TEST(AbiV11, WhenEveryOutputIsStuckAcceptingPausesAndNothingIsSkipped) {
  TempDir dir;
  // Without a journal (its own tests are in journal_test.cpp): in-memory backlogs.
  write_file(dir.file("c.yaml"),
             "log: {path: sink.log}\nstats_interval: 1s\noutput_backlog: 20\njournal: false\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
             "outputs:\n  - plugin: " +
                 test_plugin("bad_blocks_forever") + "\n  - plugin: " + test_plugin("bad_blocks_forever") +
                 "\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  for (int i = 0; i < 60; ++i)
    send_and_close("127.0.0.1", port, "r" + std::to_string(i));
  std::this_thread::sleep_for(500ms); // every output is now full
  for (int i = 0; i < 20; ++i)
    send_and_close("127.0.0.1", port, "later" + std::to_string(i)); // the kernel completes every handshake
  std::this_thread::sleep_for(1300ms);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("accepting paused: no output can take more records"), std::string::npos) << log;
  EXPECT_EQ(log.find("lost=1"), std::string::npos) << "nothing skipped while no output keeps up\n" << log;
  std::smatch m;
  const std::string last_stats = log.substr(log.rfind("stats: open="));
  ASSERT_TRUE(std::regex_search(last_stats, m, std::regex("accepted=(\\d+)")));
  EXPECT_LE(std::stoi(m[1]), 62) << "the later connections wait in the kernel's queue";
  sink.signal(SIGTERM);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(sink.stop().code, 0);
}

TEST(AbiV11, AStuckOutputBeyondItsBacklogLosesOnlyItsOwnOldestRecords) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\noutput_backlog: 20\njournal: false\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\n"
                                 "outputs:\n  - plugin: " +
                                     test_plugin("bad_blocks_forever") +
                                     "\n  - plugin: jsonl\n    path: out.jsonl\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  expect_healthy_output_unaffected(dir, port, 100);
  sink.signal(SIGTERM);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(sink.stop().code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex("output bad_blocks_forever written=0 failed=0 pending=(\\d+) lost=(\\d+)")))
      << log;
  EXPECT_GT(std::stoi(m[2]), 0) << "the stuck output skipped its oldest";
  EXPECT_EQ(std::stoi(m[1]) + std::stoi(m[2]), 100) << "pending + lost accounts for every record";
  EXPECT_NE(log.find("output jsonl written=100 failed=0 pending=0 lost=0"), std::string::npos) << log;
}
