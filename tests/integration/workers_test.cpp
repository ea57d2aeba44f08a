// Several network threads (workers: N): every record exactly once, counters
// summed, connections spread over the workers' SO_REUSEPORT sockets, a second
// sink on the same port still refused, shutdown still records everything.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

std::string config(uint16_t port, const std::string &extra = "", const std::string &timeout = "1m") {
  return "log: {path: sink.log}\nworkers: 2\njournal: {dir: journal}\n" + extra +
         "groups: [{name: w, listen: 127.0.0.1, ports: " + std::to_string(port) + ", timeout: " + timeout +
         "}]\noutputs: [{plugin: jsonl, path: out.jsonl}]\n";
}

uint64_t metric(const std::string &text, const std::string &name_and_labels) {
  const auto at = text.find("\n" + name_and_labels + " ");
  if (at == std::string::npos) return UINT64_MAX;
  return std::stoull(text.substr(at + name_and_labels.size() + 2));
}

} // namespace

TEST(Workers, EveryRecordOnceAcrossWorkersWithCountersSummed) {
  TempDir dir;
  const uint16_t mport = free_port();
  write_file(dir.file("c.yaml"), config(0, "metrics: {listen: 127.0.0.1:" + std::to_string(mport) + "}\n"));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  constexpr int kConnections = 400;
  std::set<std::string> sent;
  for (int i = 0; i < kConnections; ++i) {
    sent.insert("w" + std::to_string(i));
    send_and_close("127.0.0.1", port, "w" + std::to_string(i));
  }
  const auto lines = wait_for_lines(dir.file("out.jsonl"), kConnections);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kConnections));
  std::set<std::string> payloads, ids;
  for (const auto &l : lines) {
    const auto j = nlohmann::json::parse(l);
    std::string text;
    const std::string hex = j["payload_hex"];
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    payloads.insert(text);
    ids.insert(j["id"].get<std::string>());
    EXPECT_EQ(j["close_reason"], "client_fin");
  }
  EXPECT_EQ(payloads, sent) << "every connection once";
  EXPECT_EQ(ids.size(), static_cast<size_t>(kConnections));
  // The kernel spread the connections over both workers' sockets, and the
  // per-group counters are their sums.
  const std::string m = http_get(mport, "/metrics");
  const uint64_t w0 = metric(m, "sink_worker_connections_accepted_total{worker=\"0\"}");
  const uint64_t w1 = metric(m, "sink_worker_connections_accepted_total{worker=\"1\"}");
  EXPECT_GT(w0, 0u) << m;
  EXPECT_GT(w1, 0u) << m;
  EXPECT_NE(w0, UINT64_MAX);
  EXPECT_NE(w1, UINT64_MAX);
  EXPECT_EQ(w0 + w1, static_cast<uint64_t>(kConnections)) << m;
  EXPECT_EQ(metric(m, "sink_connections_accepted_total{group=\"w\"}"), static_cast<uint64_t>(kConnections))
      << m;
  EXPECT_EQ(sink.stop().code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("final stats: open=0 accepted=400 closed=400 (client_fin=400 "), std::string::npos)
      << log;
  EXPECT_NE(log.find("2 network threads"), std::string::npos) << log;
}

TEST(Workers, ASecondSinkOnTheSamePortExitsOne) {
  TempDir first, second;
  const uint16_t port = free_port();
  write_file(first.file("c.yaml"), config(port));
  SinkProcess sink(first, {"--config", "c.yaml"});
  sink.wait_listening(1, first.file("sink.log"));
  // SO_REUSEPORT would let a second process of the same user join the port
  // and take half the connections: it must fail as without workers.
  write_file(second.file("c.yaml"), config(port));
  const auto r = run_sink(second, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 1);
  const std::string said = r.err + read_file(second.file("sink.log"));
  EXPECT_NE(said.find("cannot listen on 127.0.0.1 port " + std::to_string(port)), std::string::npos) << said;
  EXPECT_NE(said.find("Address already in use"), std::string::npos) << said;
  // The first sink still gets every connection.
  for (int i = 0; i < 20; ++i)
    send_and_close("127.0.0.1", port, "first");
  EXPECT_EQ(wait_for_lines(first.file("out.jsonl"), 20).size(), 20u);
  EXPECT_EQ(sink.stop().code, 0);
}

TEST(Workers, ShutdownRecordsEveryOpenAndQueuedConnectionOnEveryWorker) {
  TempDir dir;
  write_file(dir.file("c.yaml"), config(0, "max_connections: 10\n"));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  std::vector<std::unique_ptr<TestClient>> clients;
  std::set<uint16_t> ports;
  for (int i = 0; i < 60; ++i) {
    clients.push_back(std::make_unique<TestClient>("127.0.0.1", port));
    clients.back()->send("held " + std::to_string(i));
    ports.insert(clients.back()->local_port());
  }
  std::this_thread::sleep_for(300ms); // 10 open (the cap holds across workers), 50 queued
  EXPECT_EQ(sink.stop().code, 0);
  const auto json = jsonl_by_remote_port(read_lines(dir.file("out.jsonl")));
  ASSERT_EQ(json.size(), 60u) << "every connection that reached the sink has a record";
  for (const auto &[p, j] : json) {
    EXPECT_TRUE(ports.count(p));
    EXPECT_EQ(j["close_reason"], "shutdown");
  }
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("recorded 50 connections still queued in the kernel"), std::string::npos) << log;
}

TEST(Workers, ABadWorkerCountIsRefusedWithItsLine) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\nworkers: 0\n"
                                 "groups: [{name: w, listen: 127.0.0.1, ports: 0}]\n"
                                 "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  const auto r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("c.yaml:2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("workers"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("from 1 to 1024"), std::string::npos) << r.err;
}

// The default is one network thread per CPU the process may run on: a sink
// confined to one CPU (cpuset, taskset, CPUAffinity=) runs one, not one per
// CPU of the host.
TEST(Workers, TheDefaultCountsTheCpusTheProcessMayRunOn) {
  cpu_set_t all;
  ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c)
    if (CPU_ISSET(c, &all)) first = c;
  ASSERT_GE(first, 0);
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: false\n"
                                 "groups: [{name: w, listen: 127.0.0.1, ports: 0}]\n"
                                 "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  // The child inherits this thread's mask at fork.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  std::optional<SinkProcess> sink;
  sink.emplace(dir, std::vector<std::string>{"--config", "c.yaml"});
  ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
  sink->wait_listening(1, dir.file("sink.log"));
  EXPECT_EQ(sink->stop().code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("at once on 1 network thread\n"), std::string::npos) << log;
}
