// The crash-safe journal with the real binary: what an output had not
// confirmed survives a stop, a kill -9 and a plugin crash; a poison record is
// skipped after three crashes; a full journal pauses accepting or, when
// another output keeps up, costs only the laggard; metrics and /healthz.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

std::string test_plugin(const std::string &name) {
  return std::string(SINK_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

// "log + one group + outputs" with the journal in the test's directory.
std::string config(const std::string &outputs, const std::string &extra = "") {
  return "log: {path: sink.log}\nsensor: test\njournal: {dir: journal}\n" + extra +
         "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\noutputs:\n" + outputs;
}

std::string test_output(const std::string &name, const std::string &path, const std::string &options = "") {
  return "  - plugin: " + test_plugin("test_output") + "\n    name: " + name + "\n    path: " + path + "\n" +
         options;
}

const std::string kJsonl = "  - plugin: jsonl\n    path: out.jsonl\n";

// Payloads by record id from test_output's lines ("ID PAYLOAD").
std::multimap<std::string, std::string> test_output_lines(const std::string &path) {
  std::multimap<std::string, std::string> out;
  for (const auto &line : read_lines(path)) {
    const auto space = line.find(' ');
    out.emplace(line.substr(0, space), space == std::string::npos ? "" : line.substr(space + 1));
  }
  return out;
}

std::set<std::string> jsonl_ids(const std::string &path) {
  std::set<std::string> ids;
  for (const auto &line : read_lines(path))
    ids.insert(nlohmann::json::parse(line)["id"].get<std::string>());
  return ids;
}

std::set<std::string> keys(const std::multimap<std::string, std::string> &m) {
  std::set<std::string> s;
  for (const auto &[k, v] : m)
    s.insert(k);
  return s;
}

// Waits until `path` has n lines (test_output writes whole lines on flush).
size_t wait_lines(const std::string &path, size_t n, std::chrono::seconds limit = 20s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (read_lines(path).size() >= n) break;
    std::this_thread::sleep_for(50ms);
  }
  return read_lines(path).size();
}

// Each start logs to a fresh sink.log (so waiting for "listening" sees this
// start's line); the earlier ones are kept as sink.log.N.
void start_new_log(const TempDir &dir) {
  for (int n = 1;; ++n)
    if (!std::filesystem::exists(dir.file("sink.log." + std::to_string(n)))) {
      if (std::filesystem::exists(dir.file("sink.log")))
        std::filesystem::rename(dir.file("sink.log"), dir.file("sink.log." + std::to_string(n)));
      return;
    }
}

// Every start's log, oldest first.
std::string all_logs(const TempDir &dir) {
  std::string all;
  for (int n = 1; std::filesystem::exists(dir.file("sink.log." + std::to_string(n))); ++n)
    all += read_file(dir.file("sink.log." + std::to_string(n)));
  return all + read_file(dir.file("sink.log"));
}

// Under AddressSanitizer the sink's own SIGSEGV handler (the crash line)
// must be allowed to replace the sanitizer's for the crash tests.
void allow_own_segv_handler() {
  const char *now = std::getenv("ASAN_OPTIONS");
  std::string opts = now ? now : "";
  if (opts.find("allow_user_segv_handler") == std::string::npos)
    ::setenv("ASAN_OPTIONS", (opts + (opts.empty() ? "" : ":") + "allow_user_segv_handler=1").c_str(), 1);
}

} // namespace

TEST(Journal, WhatAnOutputHadNotConfirmedIsDeliveredAfterARestartAndNothingTwice) {
  TempDir dir;
  write_file(dir.file("down"), "");
  write_file(dir.file("c.yaml"),
             config(test_output("main", "a.txt", "    fail_while_exists: down\n") + kJsonl));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    for (int i = 0; i < 50; ++i)
      send_and_close("127.0.0.1", port, "r" + std::to_string(i));
    ASSERT_EQ(wait_for_lines(dir.file("out.jsonl"), 50).size(), 50u);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const std::string log = all_logs(dir);
  EXPECT_NE(log.find("output main: 50 records wait in the journal for this output; they are delivered at the "
                     "next start"),
            std::string::npos)
      << log;
  EXPECT_EQ(read_lines(dir.file("a.txt")).size(), 0u);
  std::filesystem::remove(dir.file("down"));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    sink.wait_listening(1, dir.file("sink.log"));
    EXPECT_EQ(wait_lines(dir.file("a.txt"), 50), 50u);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const auto got = test_output_lines(dir.file("a.txt"));
  EXPECT_EQ(got.size(), 50u) << "each record once";
  EXPECT_EQ(keys(got), jsonl_ids(dir.file("out.jsonl")));
  EXPECT_EQ(read_lines(dir.file("out.jsonl")).size(), 50u) << "the healthy output got nothing twice";
  // In the journal's order, which is the order the healthy output got them
  // (with several network threads that need not be the order of accepting).
  std::vector<std::string> payloads, healthy;
  for (const auto &line : read_lines(dir.file("a.txt")))
    payloads.push_back(line.substr(line.find(' ') + 1));
  for (const auto &line : read_lines(dir.file("out.jsonl"))) {
    const std::string hex = nlohmann::json::parse(line)["payload_hex"];
    std::string text;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      text += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    healthy.push_back(text);
  }
  EXPECT_EQ(payloads, healthy);
  EXPECT_EQ(std::set<std::string>(payloads.begin(), payloads.end()).size(), 50u);
  EXPECT_NE(all_logs(dir).find("output main: 50 records from the journal to deliver first"),
            std::string::npos);
}

TEST(Journal, KillNineLosesNothingThatReachedTheJournal) {
  TempDir dir;
  write_file(dir.file("down"), "");
  write_file(dir.file("c.yaml"),
             config(test_output("main", "a.txt", "    fail_while_exists: down\n") + kJsonl));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    for (int i = 0; i < 300; ++i)
      send_and_close("127.0.0.1", port, "k" + std::to_string(i));
    ASSERT_EQ(wait_for_lines(dir.file("out.jsonl"), 300).size(), 300u);
    std::this_thread::sleep_for(300ms); // the jsonl output's position is stored after its flush
    sink.signal(SIGKILL);
    EXPECT_EQ(sink.wait_exit(5s).code, 128 + SIGKILL);
  }
  std::filesystem::remove(dir.file("down"));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    sink.wait_listening(1, dir.file("sink.log"));
    EXPECT_EQ(wait_lines(dir.file("a.txt"), 300), 300u);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const auto got = test_output_lines(dir.file("a.txt"));
  EXPECT_EQ(got.size(), 300u);
  EXPECT_EQ(keys(got).size(), 300u) << "none twice";
  EXPECT_EQ(keys(got), jsonl_ids(dir.file("out.jsonl")));
  EXPECT_EQ(read_lines(dir.file("out.jsonl")).size(), 300u);
}

TEST(Journal, APluginCrashIsLoggedAndEveryOutputGetsEveryRecordAfterARestart) {
  allow_own_segv_handler();
  TempDir dir;
  write_file(dir.file("c.yaml"), config(test_output("crashy", "a.txt", "    crash_at: 100\n") + kJsonl));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    for (int i = 0; i < 100; ++i)
      send_and_close("127.0.0.1", port, "c" + std::to_string(i));
    EXPECT_EQ(sink.wait_exit(10s).code, 128 + SIGSEGV);
  }
  const std::string log = all_logs(dir);
  std::regex crash_line("error: output crashy crashed with SIGSEGV on record [0-9a-f-]{36}; sink stops");
  EXPECT_TRUE(std::regex_search(log, crash_line)) << log;
  // The fixed plugin (no crash_at) under the same name.
  write_file(dir.file("c.yaml"), config(test_output("crashy", "a.txt") + kJsonl));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    sink.wait_listening(1, dir.file("sink.log"));
    wait_lines(dir.file("a.txt"), 100);
    wait_for_lines(dir.file("out.jsonl"), 100);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const auto got = test_output_lines(dir.file("a.txt"));
  std::set<std::string> payloads;
  for (const auto &[id, p] : got)
    payloads.insert(p);
  EXPECT_EQ(payloads.size(), 100u) << "the 100th record, on which it crashed, too";
  EXPECT_EQ(keys(got), jsonl_ids(dir.file("out.jsonl")));
  EXPECT_EQ(jsonl_ids(dir.file("out.jsonl")).size(), 100u);
}

TEST(Journal, ARecordThatCrashesAnOutputOnThreeStartsInARowIsSkippedForIt) {
  allow_own_segv_handler();
  TempDir dir;
  write_file(dir.file("c.yaml"),
             config(test_output("fragile", "a.txt", "    crash_on_payload: POISON\n") + kJsonl));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    send_and_close("127.0.0.1", port, "before");
    ASSERT_EQ(wait_lines(dir.file("a.txt"), 1), 1u);
    send_and_close("127.0.0.1", port, "POISON");
    EXPECT_EQ(sink.wait_exit(10s).code, 128 + SIGSEGV);
  }
  for (int start = 2; start <= 3; ++start) { // it crashes again on the way up
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    EXPECT_EQ(sink.wait_exit(10s).code, 128 + SIGSEGV) << "start " << start;
  }
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    send_and_close("127.0.0.1", port, "after");
    EXPECT_EQ(wait_lines(dir.file("a.txt"), 2), 2u);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const std::string log = all_logs(dir);
  EXPECT_NE(log.find("output fragile: skipping record "), std::string::npos) << log;
  EXPECT_NE(log.find(": it crashed this output 3 times in a row (counted lost for this output)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("output fragile written=1 failed=0 pending=0 lost=1"), std::string::npos) << log;
  std::vector<std::string> lines = read_lines(dir.file("a.txt"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find(" before"), std::string::npos);
  EXPECT_NE(lines[1].find(" after"), std::string::npos);
  std::set<std::string> all;
  for (const auto &line : read_lines(dir.file("out.jsonl")))
    all.insert(nlohmann::json::parse(line)["payload_hex"].get<std::string>());
  EXPECT_EQ(all.size(), 3u) << "the other output got the poison record too";
}

TEST(Journal, AFullJournalPausesAcceptingWhenNoOutputKeepsUpAndLosesNothing) {
  TempDir dir;
  write_file(dir.file("down"), "");
  write_file(
      dir.file("c.yaml"),
      "log: {path: sink.log}\nstats_interval: 1s\njournal: {dir: journal, max_bytes: 1MiB}\n"
      // Small records (no kernel facts): about 3,300 fit in 1 MiB, and
      // what waits in the kernel stays well inside its 4,096 queue.
      "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m, kernel_facts: false}]\noutputs:\n" +
          test_output("main", "a.txt", "    fail_while_exists: down\n"));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  const std::string payload(200, 'x');
  constexpr int kRecords = 4500; // about 1.4 MiB of journal
  for (int i = 0; i < 4000; ++i)
    send_and_close("127.0.0.1", port, payload + std::to_string(i));
  std::string log;
  for (int i = 0; i < 200 && log.find("journal: full (") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
    log = all_logs(dir);
  }
  ASSERT_NE(log.find("journal: full ("), std::string::npos) << log;
  for (int i = 4000; i < kRecords; ++i) // these wait in the kernel's queue
    send_and_close("127.0.0.1", port, payload + std::to_string(i));
  std::this_thread::sleep_for(1500ms);
  log = all_logs(dir);
  EXPECT_NE(log.find("accepting paused: no output can take more records"), std::string::npos) << log;
  std::smatch m;
  std::string last = log.substr(log.rfind("stats: open="));
  ASSERT_TRUE(std::regex_search(last, m, std::regex("accepted=(\\d+)")));
  EXPECT_LT(std::stoi(m[1]), kRecords) << "the rest wait in the kernel's listen queue";
  std::filesystem::remove(dir.file("down"));
  ASSERT_EQ(wait_lines(dir.file("a.txt"), kRecords, 30s), static_cast<size_t>(kRecords)) << all_logs(dir);
  EXPECT_EQ(sink.stop().code, 0);
  log = all_logs(dir);
  EXPECT_NE(log.find("journal: records go in again; accepting resumes"), std::string::npos) << log;
  EXPECT_EQ(log.find("warning: journal: records go in again"), std::string::npos)
      << "a recovery is not a warning";
  EXPECT_NE(log.find("output main written=" + std::to_string(kRecords) + " failed="), std::string::npos)
      << log;
  EXPECT_NE(log.find("pending=0 lost=0"), std::string::npos) << log;
  EXPECT_EQ(keys(test_output_lines(dir.file("a.txt"))).size(), static_cast<size_t>(kRecords));
}

TEST(Journal, WhenOneOutputAloneHoldsTheJournalFullItSkipsAheadAndTheOthersLoseNothing) {
  TempDir dir;
  write_file(dir.file("down"), "");
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: {dir: journal, max_bytes: 1MiB}\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\noutputs:\n" +
                                     test_output("lagging", "a.txt", "    fail_while_exists: down\n") +
                                     kJsonl);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  const std::string payload(200, 'y');
  constexpr int kRecords = 6000;
  for (int i = 0; i < kRecords; ++i)
    send_and_close("127.0.0.1", port, payload + std::to_string(i));
  ASSERT_EQ(wait_for_lines(dir.file("out.jsonl"), kRecords, 30s).size(), static_cast<size_t>(kRecords));
  std::filesystem::remove(dir.file("down"));
  std::this_thread::sleep_for(6s); // its back-off, then it catches up with what is left
  EXPECT_EQ(sink.stop().code, 0);
  const std::string log = all_logs(dir);
  EXPECT_NE(log.find("output jsonl written=6000 failed=0 pending=0 lost=0"), std::string::npos) << log;
  EXPECT_NE(log.find("records left the full journal before this output took them"), std::string::npos) << log;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex("output lagging written=(\\d+) failed=\\d+ pending=(\\d+) lost=(\\d+)")))
      << log;
  const int written = std::stoi(m[1]), pending = std::stoi(m[2]), lost = std::stoi(m[3]);
  EXPECT_GT(lost, 0);
  EXPECT_GT(written, 0);
  EXPECT_EQ(pending, 0);
  EXPECT_EQ(written + lost, kRecords) << "every record is written or counted lost for it";
  EXPECT_EQ(read_lines(dir.file("a.txt")).size(), static_cast<size_t>(written));
  EXPECT_NE(log.find("output lagging: " + std::to_string(lost) + " records were lost for this output"),
            std::string::npos)
      << log;
}

TEST(Journal, ATornTailLeftByACrashIsCutAndTheRecordsBeforeItAreKept) {
  TempDir dir;
  write_file(dir.file("down"), "");
  write_file(dir.file("c.yaml"), config(test_output("main", "a.txt", "    fail_while_exists: down\n")));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    for (int i = 0; i < 10; ++i)
      send_and_close("127.0.0.1", port, "t" + std::to_string(i));
    std::this_thread::sleep_for(500ms);
    sink.signal(SIGKILL);
    sink.wait_exit(5s);
  }
  // Half an entry at the end of the newest segment, as a crash mid-write leaves.
  std::string newest;
  for (const auto &e : std::filesystem::directory_iterator(dir.file("journal")))
    if (e.path().extension() == ".journal" && e.path().string() > newest) newest = e.path().string();
  ASSERT_FALSE(newest.empty());
  {
    std::ofstream f(newest, std::ios::app | std::ios::binary);
    f.write("\x40\x00\x00\x00garbage", 11);
  }
  std::filesystem::remove(dir.file("down"));
  start_new_log(dir);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  sink.wait_listening(1, dir.file("sink.log"));
  EXPECT_EQ(wait_lines(dir.file("a.txt"), 10), 10u);
  EXPECT_EQ(sink.stop().code, 0);
  EXPECT_NE(all_logs(dir).find("journal: cut 11 bytes at the end of"), std::string::npos);
  EXPECT_EQ(test_output_lines(dir.file("a.txt")).size(), 10u);
}

TEST(Journal, OneDamagedEntryCostsExactlyOneRecordAndTheRestAreDelivered) {
  TempDir dir;
  write_file(dir.file("down"), "");
  write_file(dir.file("c.yaml"), config(test_output("main", "a.txt", "    fail_while_exists: down\n")));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    for (int i = 0; i < 50; ++i)
      send_and_close("127.0.0.1", port, "r" + std::to_string(i));
    EXPECT_EQ(sink.stop().code, 0);
  }
  ASSERT_NE(all_logs(dir).find("output main: 50 records wait in the journal"), std::string::npos)
      << all_logs(dir);
  // One flipped byte in the body of the 20th entry (entries: 24-byte header
  // with the body length at byte 4, then the body).
  std::string segment;
  for (const auto &e : std::filesystem::directory_iterator(dir.file("journal")))
    if (e.path().extension() == ".journal" && std::filesystem::file_size(e.path()) > 24)
      segment = e.path().string();
  ASSERT_FALSE(segment.empty());
  std::string bytes = read_file(segment);
  size_t at = 24;
  for (int i = 0; i < 19; ++i) {
    ASSERT_LT(at + 24, bytes.size());
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + at + 4, 4); // little-endian, as the build host
    at += 24 + len;
  }
  bytes[at + 24 + 10] = static_cast<char>(bytes[at + 24 + 10] ^ 0x5a);
  write_file(segment, bytes);
  std::filesystem::remove(dir.file("down"));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    sink.wait_listening(1, dir.file("sink.log"));
    EXPECT_EQ(wait_lines(dir.file("a.txt"), 49), 49u);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("output main written=49 failed=0 pending=0 lost=1"), std::string::npos) << log;
  EXPECT_NE(log.find("1 record (20 to 20) cannot be read"), std::string::npos) << log;
  EXPECT_EQ(read_lines(dir.file("a.txt")).size(), 49u);
}

// Output files are appended to and never cut where sink did not write:
// a file that ends without a newline keeps every byte.
TEST(OutputFiles, AFileEndingWithoutANewlineIsKeptWholeAndContinuedOnANewLine) {
  TempDir dir;
  std::string notes;
  for (int i = 0; i < 99614; ++i)
    notes.push_back(static_cast<char>('a' + i % 26)); // no newline anywhere
  write_file(dir.file("notes.bin"), notes);
  write_file(dir.file("rows.csv"), "kept,row,1\nkept,row,2 without its newline");
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: false\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\noutputs:\n"
                                 "  - {plugin: jsonl, path: notes.bin}\n  - {plugin: csv, path: rows.csv}\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  send_and_close("127.0.0.1", port, "hello");
  wait_for_lines(dir.file("rows.csv"), 3);
  wait_for_lines(dir.file("notes.bin"), 2);
  EXPECT_EQ(sink.stop().code, 0);
  const std::string bin = read_file(dir.file("notes.bin"));
  ASSERT_GT(bin.size(), notes.size() + 1);
  EXPECT_EQ(bin.substr(0, notes.size()), notes) << "every byte that was there is kept";
  EXPECT_EQ(bin[notes.size()], '\n');
  EXPECT_NE(bin.find("\"payload_hex\":\"68656c6c6f\""), std::string::npos);
  const auto rows = read_lines(dir.file("rows.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], "kept,row,1");
  EXPECT_EQ(rows[1], "kept,row,2 without its newline");
  EXPECT_NE(rows[2].find("68656c6c6f"), std::string::npos);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_EQ(log.find("half a record"), std::string::npos) << log;
  EXPECT_NE(log.find("does not end with a newline and sink did not write its last line"), std::string::npos)
      << log;
  EXPECT_FALSE(std::filesystem::exists(dir.file(".notes.bin.sink-tail")))
      << "a clean stop leaves no side file";
}

TEST(Journal, AnOutputNoLongerConfiguredHasItsPositionReleased) {
  TempDir dir;
  write_file(dir.file("c.yaml"), config(test_output("old", "a.txt") + kJsonl));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    sink.wait_listening(1, dir.file("sink.log"));
    EXPECT_EQ(sink.stop().code, 0);
  }
  EXPECT_TRUE(std::filesystem::exists(dir.file("journal/cursors/old.cursor")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("journal/cursors/jsonl#1.cursor")));
  write_file(dir.file("c.yaml"), config(kJsonl + test_output("new", "b.txt")));
  {
    start_new_log(dir);
    SinkProcess sink(dir, {"--config", "c.yaml"});
    sink.wait_listening(1, dir.file("sink.log"));
    EXPECT_EQ(sink.stop().code, 0);
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("journal/cursors/old.cursor")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("journal/cursors/jsonl#0.cursor")));
  const std::string log = all_logs(dir);
  EXPECT_NE(log.find("journal: released the position of output \"old\", which is no longer configured"),
            std::string::npos)
      << log;
}

TEST(Journal, BadJournalSettingsStopTheStartBeforeAnythingListens) {
  TempDir dir;
  write_file(dir.file("not-a-dir"), "");
  write_file(dir.file("c.yaml"),
             "journal: {dir: not-a-dir/j}\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  auto r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("c.yaml:1: journal.dir: cannot create"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("listening"), std::string::npos);

  write_file(dir.file("c.yaml"),
             "journal: {dir: j, max_bytes: 10}\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("c.yaml:1: journal.max_bytes: must be at least 1MiB"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("j")));

  write_file(dir.file("c.yaml"),
             "journal: {dir: j, max_bytes: 1GB}\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("journal.max_bytes: expected a size in bytes such as 1073741824 or 1GiB"),
            std::string::npos)
      << r.err;

  write_file(dir.file("c.yaml"),
             "journal: {dir: j, size: 1}\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("c.yaml:1: journal.size: unknown key"), std::string::npos) << r.err;

  write_file(dir.file("c.yaml"), "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\n"
                                 "outputs: [{plugin: csv, name: a}, {plugin: jsonl, name: a}]\n");
  r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("outputs[1].name: \"a\" is already the name of outputs[0]"), std::string::npos)
      << r.err;
}

TEST(Journal, TwoSinksCannotShareAJournal) {
  TempDir dir;
  write_file(dir.file("c.yaml"), config(kJsonl));
  SinkProcess first(dir, {"--config", "c.yaml"});
  first.wait_listening(1, dir.file("sink.log"));
  write_file(dir.file("d.yaml"),
             "journal: {dir: journal}\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  auto r = run_sink(dir, {"--config", "d.yaml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("journal.dir: \"" + dir.file("journal") + "\" is in use by another sink"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(first.stop().code, 0);
}

TEST(Journal, TheLegacyCommandLineHasNoJournal) {
  TempDir dir;
  SinkProcess sink(dir, {"-ip", "127.0.0.1", "-p", "0", "-out", "out.csv", "-log", "sink.log"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  send_and_close("127.0.0.1", port, "x");
  wait_for_lines(dir.file("out.csv"), 1);
  EXPECT_EQ(sink.stop().code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir.file("sink-journal")));
}

TEST(Metrics, CountersMatchTheRecordsAndHealthzFollowsAnOutputOutage) {
  TempDir dir;
  const uint16_t mport = free_port();
  write_file(dir.file("c.yaml"),
             config(test_output("main", "a.txt", "    fail_while_exists: down\n") + kJsonl,
                    "metrics: {listen: 127.0.0.1:" + std::to_string(mport) + "}\n"));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  for (int i = 0; i < 40; ++i)
    send_and_close("127.0.0.1", port, "m" + std::to_string(i));
  ASSERT_EQ(wait_lines(dir.file("a.txt"), 40), 40u);
  wait_for_lines(dir.file("out.jsonl"), 40);
  std::this_thread::sleep_for(200ms);
  std::string metrics = http_get(mport, "/metrics");
  EXPECT_NE(metrics.find("HTTP/1.0 200 OK"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_connections_accepted_total{group=\"g\"} 40\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_connections_closed_total{group=\"g\",reason=\"client_fin\"} 40\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("sink_output_written_total{output=\"main\"} 40\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_output_written_total{output=\"jsonl\"} 40\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_output_behind_records{output=\"main\"} 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_journal_records "), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_info{sensor=\"test\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_kernel_listen_overflows_total "), std::string::npos) << metrics;
  std::string health = http_get(mport, "/healthz");
  EXPECT_NE(health.find("HTTP/1.0 200 OK"), std::string::npos) << health;

  write_file(dir.file("down"), "");
  send_and_close("127.0.0.1", port, "while down");
  std::this_thread::sleep_for(500ms);
  health = http_get(mport, "/healthz");
  EXPECT_NE(health.find("HTTP/1.0 503 Service Unavailable"), std::string::npos) << health;
  EXPECT_NE(health.find("output main: its last write or flush failed"), std::string::npos) << health;
  metrics = http_get(mport, "/metrics");
  EXPECT_NE(metrics.find("sink_output_behind_records{output=\"main\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("sink_output_failing{output=\"main\"} 1\n"), std::string::npos) << metrics;

  std::filesystem::remove(dir.file("down"));
  ASSERT_EQ(wait_lines(dir.file("a.txt"), 41), 41u);
  std::this_thread::sleep_for(200ms);
  health = http_get(mport, "/healthz");
  EXPECT_NE(health.find("HTTP/1.0 200 OK"), std::string::npos) << health;
  metrics = http_get(mport, "/metrics");
  EXPECT_NE(metrics.find("sink_output_written_total{output=\"main\"} 41\n"), std::string::npos) << metrics;
  EXPECT_EQ(sink.stop().code, 0);
}

TEST(Metrics, ABadOrTakenMetricsAddressStopsTheStart) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             "metrics: {listen: localhost:9464}\n"
             "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  auto r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("c.yaml:1: metrics.listen: expected ADDRESS:PORT"), std::string::npos) << r.err;

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  write_file(dir.file("c.yaml"),
             "journal: false\nmetrics: {listen: 127.0.0.1:" + std::to_string(ntohs(a.sin_port)) +
                 "}\ngroups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs: [{plugin: csv}]\n");
  r = run_sink(dir, {"--config", "c.yaml"});
  ::close(fd);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("metrics.listen: cannot listen on 127.0.0.1:"), std::string::npos) << r.err;
}

TEST(DeadLetter, WithoutAJournalARefusedRecordGoesBesideTheServiceStateAndTheOutputGoesOn) {
  // The packaged service runs as user sink in "/", which it cannot write:
  // without a journal the dead-letter file must go to its state directory
  // (STATE_DIRECTORY), or one refused record blocks the output for good.
  TempDir dir;
  std::filesystem::create_directory(dir.file("state"));
  std::filesystem::create_directory(dir.file("sink-dead-letter.jsonl")); // the working directory's: unusable
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\nsensor: test\njournal: false\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 1m}]\noutputs:\n" +
                                     test_output("main", "a.txt", "    refuse_payload: bad\n"));
  ::setenv("STATE_DIRECTORY", dir.file("state").c_str(), 1);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  ::unsetenv("STATE_DIRECTORY");
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  send_and_close("127.0.0.1", port, "bad");
  ASSERT_EQ(wait_for_lines(dir.file("state/sink-dead-letter.jsonl"), 1).size(), 1u)
      << read_file(dir.file("sink.log"));
  for (int i = 0; i < 5; ++i)
    send_and_close("127.0.0.1", port, "good" + std::to_string(i));
  EXPECT_EQ(wait_lines(dir.file("a.txt"), 5), 5u) << read_file(dir.file("sink.log"));
  EXPECT_EQ(sink.stop().code, 0);
  const auto aside = nlohmann::json::parse(read_lines(dir.file("state/sink-dead-letter.jsonl")).at(0));
  EXPECT_EQ(aside["payload_hex"], "626164");
  EXPECT_EQ(aside["set_aside"]["output"], "main");
}
