// Every connection that reached the sink ends as exactly one record, under
// signals, descriptor exhaustion, floods and hostile peers.
#include <gtest/gtest.h>

#include <fstream>

#include <csignal>
#include <filesystem>
#include <regex>
#include <set>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

// One TCP group on an ephemeral loopback port, CSV and JSONL outputs.
std::string config(const std::string &group_extra, const std::string &top_extra = "") {
  return "log: {path: sink.log}\nplugin_path: [\"" + bundled_plugin_dir() + "\"]\n" + top_extra +
         "groups:\n  - name: r\n    listen: 127.0.0.1\n    ports: 0\n" + group_extra +
         "outputs:\n  - plugin: csv\n    path: out.csv\n  - plugin: jsonl\n    path: out.jsonl\n";
}

struct Sink {
  TempDir dir;
  std::unique_ptr<SinkProcess> proc;
  uint16_t port = 0;
  explicit Sink(const std::string &yaml, unsigned max_open_files = 0) {
    write_file(dir.file("c.yaml"), yaml);
    proc = std::make_unique<SinkProcess>(dir, std::vector<std::string>{"--config", "c.yaml"}, max_open_files);
    port = proc->wait_listening(1, dir.file("sink.log"))[0];
  }
  std::string log() const { return read_file(dir.file("sink.log")); }
};

size_t count_matches(const std::string &text, const std::string &pattern) {
  std::regex re(pattern);
  return static_cast<size_t>(
      std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

} // namespace

TEST(Reliability, SigtermWithAThousandOpenConnectionsRecordsEachOnce) {
  Sink s(config("    timeout: 5m\n", "stats_interval: 1s\n"));
  std::vector<std::unique_ptr<TestClient>> clients;
  std::set<uint16_t> ports;
  for (int i = 0; i < 1000; ++i) {
    clients.push_back(std::make_unique<TestClient>("127.0.0.1", s.port));
    clients.back()->send("open " + std::to_string(i));
    ports.insert(clients.back()->local_port());
  }
  // Wait until the sink holds them all (its stats line says so).
  for (int i = 0; i < 100 && s.log().find("stats: open=1000 ") == std::string::npos; ++i)
    std::this_thread::sleep_for(100ms);
  auto exit = s.proc->stop();
  EXPECT_EQ(exit.code, 0);
  auto json = jsonl_by_remote_port(read_lines(s.dir.file("out.jsonl")));
  auto csv = read_lines(s.dir.file("out.csv"));
  EXPECT_EQ(json.size(), 1000u);
  EXPECT_EQ(csv.size(), 1000u);
  for (auto &[port, j] : json) {
    EXPECT_TRUE(ports.count(port));
    EXPECT_EQ(j["close_reason"], "shutdown");
  }
  EXPECT_NE(s.log().find("final stats: open=0 accepted=1000 closed=1000"), std::string::npos) << s.log();
}

TEST(Reliability, SighupDuringLoadWithFilesRenamedLosesAndDuplicatesNothing) {
  Sink s(config("    timeout: 5s\n"));
  std::atomic<int> made{0};
  std::thread load([&] {
    for (int i = 0; i < 1500; ++i) {
      TestClient c("127.0.0.1", s.port);
      c.send("n" + std::to_string(i));
      c.close();
      ++made;
    }
  });
  while (made < 500)
    std::this_thread::sleep_for(5ms);
  // Rotate once both outputs have written some records (each has its own
  // thread and may trail the network side under load).
  wait_for_lines(s.dir.file("out.csv"), 100);
  wait_for_lines(s.dir.file("out.jsonl"), 100);
  std::filesystem::rename(s.dir.file("out.csv"), s.dir.file("out.csv.1"));
  std::filesystem::rename(s.dir.file("out.jsonl"), s.dir.file("out.jsonl.1"));
  s.proc->signal(SIGHUP);
  load.join();
  // Records that arrive after the outputs reopened go to the new files.
  std::this_thread::sleep_for(300ms);
  for (int i = 1500; i < 1550; ++i)
    send_and_close("127.0.0.1", s.port, "n" + std::to_string(i));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(s.proc->stop().code, 0);
  auto old_json = read_lines(s.dir.file("out.jsonl.1"));
  auto new_json = read_lines(s.dir.file("out.jsonl"));
  auto old_csv = read_lines(s.dir.file("out.csv.1"));
  auto new_csv = read_lines(s.dir.file("out.csv"));
  EXPECT_GT(old_json.size(), 0u);
  EXPECT_GT(new_json.size(), 0u) << "records after SIGHUP go to the new file";
  EXPECT_EQ(old_json.size() + new_json.size(), 1550u);
  EXPECT_EQ(old_csv.size() + new_csv.size(), 1550u);
  std::set<std::string> payloads;
  for (const auto *lines : {&old_json, &new_json})
    for (const auto &l : *lines)
      payloads.insert(nlohmann::json::parse(l)["payload_hex"].get<std::string>());
  EXPECT_EQ(payloads.size(), 1550u) << "each connection exactly once";
}

TEST(Reliability, FloodPastTheDescriptorLimitPausesAndRecoversEverything) {
  // 100 descriptors: the sink keeps ~64 in reserve and caps connections below.
  Sink s(config("    timeout: 10s\n"), 100);
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 150; ++i) {
    clients.push_back(std::make_unique<TestClient>("127.0.0.1", s.port)); // the kernel queues the rest
    clients.back()->send("fd" + std::to_string(i));
  }
  std::this_thread::sleep_for(500ms);
  // Now close them all: the sink resumes accepting as descriptors free up.
  clients.clear();
  auto lines = wait_for_lines(s.dir.file("out.jsonl"), 150, 20s);
  EXPECT_EQ(lines.size(), 150u);
  std::set<std::string> payloads;
  for (const auto &l : lines)
    payloads.insert(nlohmann::json::parse(l)["payload_hex"].get<std::string>());
  EXPECT_EQ(payloads.size(), 150u);
  const std::string log = s.log();
  EXPECT_EQ(count_matches(log, "accepting paused"), 1u) << "one warning, not a flood:\n" << log;
  EXPECT_NE(log.find("leaves room for only"), std::string::npos)
      << "a low limit is said at start, with the fix";
  EXPECT_NE(log.find("raise it (ulimit -n"), std::string::npos) << log;
  EXPECT_EQ(s.proc->stop().code, 0);
  const std::string final_log = s.log();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(final_log, m, std::regex(R"(final stats: .* accept_pauses=(\d+))")))
      << final_log;
  EXPECT_GE(std::stoi(m[1]), 1);
}

TEST(Reliability, SlowlorisDoesNotStarveOthers) {
  Sink s(config("    timeout: 2s\n    close_grace: 0s\n"));
  std::vector<std::unique_ptr<TestClient>> slow;
  for (int i = 0; i < 2000; ++i)
    slow.push_back(std::make_unique<TestClient>("127.0.0.1", s.port));
  for (int round = 0; round < 3; ++round)
    for (auto &c : slow)
      c->send("s");
  // A normal client is served while 2000 dribble.
  auto t0 = std::chrono::steady_clock::now();
  uint16_t normal;
  {
    TestClient c("127.0.0.1", s.port);
    normal = c.local_port();
    c.send("quick");
    c.close();
  }
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() - t0 < 2s) {
    for (const auto &l : read_lines(s.dir.file("out.jsonl")))
      if (nlohmann::json::parse(l)["remote_port"] == normal) seen = true;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(seen) << "the normal connection was recorded before the slow ones timed out";
  auto lines = wait_for_lines(s.dir.file("out.jsonl"), 2001, 20s);
  EXPECT_EQ(lines.size(), 2001u);
  size_t timeouts = 0;
  for (const auto &l : lines) {
    auto j = nlohmann::json::parse(l);
    if (j["close_reason"] == "timeout") {
      ++timeouts;
      EXPECT_EQ(j["payload_hex"], hex("sss"));
    }
  }
  EXPECT_EQ(timeouts, 2000u);
  EXPECT_EQ(s.proc->stop().code, 0);
}

TEST(Reliability, GracePeriodAvoidsResetsAndKeepsTheDeadlineDuration) {
  Sink s(config("    timeout: 1s\n    close_grace: 1s\n"));
  TestClient c("127.0.0.1", s.port);
  c.send("before");
  bool closed = false;
  // At the deadline the sink stops sending (FIN) but still reads.
  std::string got = c.read_until_closed(3, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got, "");
  c.send("after");
  c.close();
  auto json = jsonl_by_remote_port(wait_for_lines(s.dir.file("out.jsonl"), 1));
  ASSERT_EQ(json.size(), 1u);
  const auto &j = json.begin()->second;
  EXPECT_EQ(j["payload_hex"], hex("beforeafter"));
  EXPECT_EQ(j["close_reason"], "timeout");
  EXPECT_GE(j["duration"].get<double>(), 1.0);
  EXPECT_LT(j["duration"].get<double>(), 1.2) << "accept to deadline, not to the end of the grace period";
  EXPECT_EQ(j["extra"]["unread_at_close"], false); // a JSON boolean (ABI 1.1 typed extra)
  EXPECT_EQ(s.proc->stop().code, 0);
}

TEST(Reliability, FloodAtTheDeadlineIsCountedAndFlagged) {
  Sink s(config("    timeout: 1s\n    close_grace: 500ms\n"));
  uint64_t sent = 0;
  uint16_t flooder;
  {
    TestClient c("127.0.0.1", s.port);
    flooder = c.local_port();
    // More than loopback carries in the 1 s before the deadline (the sink
    // drains several GiB/s), so the client is still sending when it closes.
    sent = c.flood(1ull << 40); // 1 TiB, or until the sink closes on us
  }
  uint16_t after;
  {
    TestClient c("127.0.0.1", s.port);
    after = c.local_port();
    c.send("still here");
    c.close();
  }
  auto json = jsonl_by_remote_port(wait_for_lines(s.dir.file("out.jsonl"), 2));
  ASSERT_EQ(json.size(), 2u);
  const auto &j = json[flooder];
  EXPECT_EQ(j["close_reason"], "timeout");
  EXPECT_GT(j["payload_len"].get<uint64_t>(), 0u);
  EXPECT_LE(j["payload_len"].get<uint64_t>(), sent);
  EXPECT_EQ(j["captured_len"], 2048);
  // The client was still sending when the sink closed: bytes were queued or
  // arrived during the final drain, so the close was (likely) a RST.
  EXPECT_EQ(j["extra"]["unread_at_close"], true) << j.dump();
  EXPECT_EQ(json[after]["payload_hex"], hex("still here"));
  EXPECT_EQ(s.proc->stop().code, 0);
}

TEST(Reliability, HalfOpenAndMidStreamResetPeers) {
  Sink s(config("    timeout: 10s\n"));
  uint16_t half, reset;
  TestClient h("127.0.0.1", s.port);
  half = h.local_port();
  h.send("half");
  h.shutdown_write();
  bool closed = false;
  h.read_until_closed(3, &closed);
  EXPECT_TRUE(closed) << "the sink closes once the client has finished sending";
  {
    TestClient r("127.0.0.1", s.port);
    reset = r.local_port();
    r.flood(8 << 20);
    r.reset();
  }
  auto json = jsonl_by_remote_port(wait_for_lines(s.dir.file("out.jsonl"), 2));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[half]["close_reason"], "client_fin");
  EXPECT_EQ(json[half]["payload_hex"], hex("half"));
  EXPECT_EQ(json[reset]["close_reason"], "client_rst");
  EXPECT_LE(json[reset]["payload_len"].get<uint64_t>(), 8u << 20);
  EXPECT_EQ(s.proc->stop().code, 0);
}

TEST(Reliability, StatsLineEveryInterval) {
  Sink s(config("    timeout: 5s\n", "stats_interval: 1s\n"));
  {
    TestClient c("127.0.0.1", s.port);
    c.send("count me");
    c.close();
  }
  wait_for_lines(s.dir.file("out.jsonl"), 1);
  std::this_thread::sleep_for(1300ms);
  const std::string log = s.log();
  EXPECT_GE(count_matches(log, "stats: open=0 accepted=1 closed=1 \\(client_fin=1 "), 1u) << log;
  EXPECT_NE(log.find("output csv written=1 failed=0 pending=0 lost=0"), std::string::npos) << log;
  EXPECT_EQ(s.proc->stop().code, 0);
}

TEST(Reliability, SecondSignalCutsTheFinalDrainShort) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             "log: {path: sink.log}\ngroups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 5m}]\n"
             "outputs:\n  - plugin: " +
                 std::string(SINK_TEST_PLUGIN_DIR) + "/bad_write_slowly.so\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  std::vector<std::unique_ptr<TestClient>> open;
  for (int i = 0; i < 200; ++i)
    open.push_back(std::make_unique<TestClient>("127.0.0.1", port));
  std::this_thread::sleep_for(300ms);
  // 200 shutdown records at 100 ms each would take 20 s to write.
  sink.signal(SIGTERM);
  std::this_thread::sleep_for(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto exit = sink.stop(); // the second SIGTERM
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_EQ(exit.code, 0);
  EXPECT_NE(
      read_file(dir.file("sink.log"))
          .find("second signal: exiting now; 0 records not yet in the journal are lost, the journal keeps "
                "the rest for the next start"),
      std::string::npos);
}

TEST(Reliability, ConfiguredConnectionCapHoldsTheRestInTheKernelQueue) {
  Sink s(config("    timeout: 10s\n", "max_connections: 5\nstats_interval: 1s\n"));
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<TestClient>("127.0.0.1", s.port));
    clients.back()->send("cap" + std::to_string(i));
  }
  std::this_thread::sleep_for(1300ms);
  EXPECT_NE(s.log().find("stats: open=5 accepted=5 "), std::string::npos) << s.log();
  EXPECT_NE(s.log().find("reached the connection limit of 5"), std::string::npos) << s.log();
  clients.clear();
  auto lines = wait_for_lines(s.dir.file("out.jsonl"), 10);
  EXPECT_EQ(lines.size(), 10u);
  EXPECT_EQ(s.proc->stop().code, 0);
}

TEST(Reliability, ConnectionsQueuedInTheKernelAtShutdownGetARecord) {
  Sink s(config("    timeout: 1m\n", "max_connections: 5\n"));
  std::vector<std::unique_ptr<TestClient>> clients;
  std::set<uint16_t> ports;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<TestClient>("127.0.0.1", s.port));
    clients.back()->send("queued " + std::to_string(i));
    ports.insert(clients.back()->local_port());
  }
  std::this_thread::sleep_for(300ms); // 5 accepted, 45 wait in the listen queue
  EXPECT_EQ(s.proc->stop().code, 0);
  auto json = jsonl_by_remote_port(read_lines(s.dir.file("out.jsonl")));
  ASSERT_EQ(json.size(), 50u) << "every connection that reached the sink has a record";
  for (const auto &[port, j] : json) {
    EXPECT_TRUE(ports.count(port));
    EXPECT_EQ(j["close_reason"], "shutdown");
    EXPECT_EQ(j["payload_hex"].get<std::string>().substr(0, 14), hex("queued "));
  }
  EXPECT_NE(s.log().find("recorded 45 connections still queued in the kernel"), std::string::npos) << s.log();
}

namespace {
// Waits until process pid blocks sig (its main thread's SigBlk mask).
void wait_until_blocked(pid_t pid, int sig) {
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("SigBlk:", 0) == 0 && (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1) & 1))
        return;
    std::this_thread::sleep_for(1ms);
  }
  ADD_FAILURE() << "the sink never blocked signal " << sig;
}
} // namespace

TEST(Reliability, SignalsDuringStartUpAreActedOnNotFatal) {
  // A TLS group with a self-signed certificate takes a while to start: the
  // signals land while the sink is still setting up.
  for (int sig : {SIGHUP, SIGTERM}) {
    TempDir dir;
    write_file(dir.file("c.yaml"),
               "log: {path: sink.log}\ngroups: [{name: t, transport: tls, listen: 127.0.0.1, "
               "ports: 0}]\noutputs: [{plugin: jsonl, path: out.jsonl}]\n");
    SinkProcess p(dir, {"--config", "c.yaml"});
    // Signal as soon as main has blocked them (before that the process is
    // still in the loader or a sanitizer's start-up, which no code of ours
    // can protect).
    wait_until_blocked(p.pid(), sig);
    p.signal(sig);
    if (sig == SIGHUP) {
      p.wait_listening(1, dir.file("sink.log")); // still alive, and serving
      EXPECT_EQ(p.stop().code, 0);
      EXPECT_NE(read_file(dir.file("sink.log")).find("SIGHUP: reopening"), std::string::npos);
    } else {
      auto r = p.wait_exit(10s);
      EXPECT_EQ(r.code, 0) << "a SIGTERM during start-up is a clean stop, not death by signal";
      EXPECT_NE(read_file(dir.file("sink.log")).find("received Terminated"), std::string::npos)
          << read_file(dir.file("sink.log"));
    }
  }
}
