// The original's command line against the real binary: same CSV, same log.
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i)
    s += static_cast<char>(i);
  return s;
}

// Checks the fields every row shares.
void expect_row(const CsvRecord &r, uint16_t sink_port, const std::string &payload, uint64_t len,
                int64_t before_ms, int64_t after_ms) {
  EXPECT_GE(r.ts, before_ms) << r.line;
  EXPECT_LE(r.ts, after_ms) << r.line;
  EXPECT_EQ(r.local_ip, "127.0.0.1") << r.line;
  EXPECT_EQ(r.local_port, sink_port) << r.line;
  EXPECT_EQ(r.remote_ip, "127.0.0.1") << r.line;
  EXPECT_EQ(r.payload_hex, hex(payload)) << r.line;
  EXPECT_EQ(r.len, len) << r.line;
  EXPECT_TRUE(std::regex_match(r.duration, std::regex(R"(\d+\.\d{3})"))) << r.line;
}

} // namespace

TEST(Legacy, RecordsEveryKindOfConnectionLikeTheOriginal) {
  TempDir dir;
  SinkProcess sink(dir, {"-ip", "127.0.0.1", "-p", "0", "-timeout", "1s", "-buffSize", "300", "-header",
                         "-out", "out.csv", "-log", "sink.log"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  const int64_t before = now_ms();

  const std::string text = "hello\nworld, \"x\"";
  const std::string big(1000, 'B');
  std::map<std::string, uint16_t> client;
  client["text"] = send_and_close("127.0.0.1", port, text);
  client["bytes"] = send_and_close("127.0.0.1", port, all_bytes());
  client["empty"] = send_and_close("127.0.0.1", port, "");
  client["big"] = send_and_close("127.0.0.1", port, big.substr(0, 100) + "END" + big);
  {
    TestClient c("127.0.0.1", port);
    client["split"] = c.local_port();
    for (const char *part : {"abc", "def", "ghi"}) {
      c.send(part);
      std::this_thread::sleep_for(60ms);
    }
    c.close();
  }
  {
    TestClient c("127.0.0.1", port);
    client["reset"] = c.local_port();
    c.send("rst");
    std::this_thread::sleep_for(100ms);
    c.reset();
  }
  std::string received;
  bool closed = false;
  {
    TestClient c("127.0.0.1", port);
    client["held"] = c.local_port();
    c.send("xyz");
    received = c.read_until_closed(5, &closed);
  }
  EXPECT_TRUE(closed) << "the server must close at its deadline";
  EXPECT_EQ(received, "") << "the server must never send a byte";

  auto lines = wait_for_lines(dir.file("out.csv"), 8);
  const int64_t after = now_ms();
  auto exit = sink.stop();
  EXPECT_EQ(exit.code, 0) << exit.err;
  ASSERT_EQ(lines.size(), 8u);
  EXPECT_EQ(lines[0], "ts,localIP,localPort,remoteIP,remotePort,truncatedPayload,len,duration");
  auto rows = csv_by_remote_port({lines.begin() + 1, lines.end()});
  ASSERT_EQ(rows.size(), 7u);

  expect_row(rows[client["text"]], port, text, 16, before, after);
  expect_row(rows[client["bytes"]], port, all_bytes(), 256, before, after);
  expect_row(rows[client["empty"]], port, "", 0, before, after);
  // Only the first -buffSize bytes are kept, across reads; len counts all.
  expect_row(rows[client["big"]], port, (big.substr(0, 100) + "END" + big).substr(0, 300), 1103, before,
             after);
  expect_row(rows[client["split"]], port, "abcdefghi", 9, before, after);
  expect_row(rows[client["reset"]], port, "rst", 3, before, after);
  expect_row(rows[client["held"]], port, "xyz", 3, before, after);
  double held = std::stod(rows[client["held"]].duration);
  EXPECT_GE(held, 1.0);
  EXPECT_LT(held, 1.5);
  EXPECT_LT(std::stod(rows[client["text"]].duration), 0.5);
}

TEST(Legacy, LogLinesKeepTheOriginalShape) {
  TempDir dir;
  SinkProcess sink(dir,
                   {"-ip", "127.0.0.1", "-p", "0", "-timeout", "1s", "-out", "out.csv", "-log", "sink.log"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  uint16_t fin_port, held_port;
  fin_port = send_and_close("127.0.0.1", port, "hello\nworld, \"x\"");
  {
    TestClient c("127.0.0.1", port);
    held_port = c.local_port();
    c.send("sleepy");
    bool closed;
    c.read_until_closed(5, &closed);
  }
  wait_for_lines(dir.file("out.csv"), 2);
  sink.stop();
  std::string log = read_file(dir.file("sink.log"));
  const std::string L = "127\\.0\\.0\\.1:" + std::to_string(port);
  const std::string F = "127\\.0\\.0\\.1:" + std::to_string(fin_port);
  const std::string H = "127\\.0\\.0\\.1:" + std::to_string(held_port);
  const std::string stamp = R"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )";
  for (const std::string &pattern : {
           stamp + "TCP server is listening on " + L + ", timeout value: 1s\n",
           stamp + "Open:  " + L + " <-- " + F + "\n",
           stamp + "Recv:  " + L + " <-- " + F +
               R"(: "hello\\nworld, \\"x\\"" \(68656c6c6f0a776f726c642c20227822\), 16 bytes)" + "\n",
           stamp + "Close: " + L + " <-- " + F +
               R"(, by client after [0-9.e-]+ seconds\. Received 16 bytes in total)" + "\n",
           stamp + "Close: " + L + " --> " + H + R"(, by server after 1\.\d+ seconds, due to read tcp )" + L +
               "->" + H + R"(: i/o timeout\. Received 6 bytes in total)" + "\n",
       }) {
    EXPECT_TRUE(std::regex_search(log, std::regex(pattern))) << "missing /" << pattern << "/ in\n" << log;
  }
}

TEST(Legacy, DualStackListenerRecordsIPv4AsPlainIPv4) {
  TempDir dir;
  // No -ip: one dual-stack socket on all addresses (clients use loopback only).
  SinkProcess sink(dir, {"-p", "0", "-timeout", "5s", "-out", "out.csv"});
  const uint16_t port = sink.wait_listening(1)[0];
  uint16_t v4, v6;
  v4 = send_and_close("127.0.0.1", port, "four");
  v6 = send_and_close("::1", port, "six");
  auto rows = csv_by_remote_port(wait_for_lines(dir.file("out.csv"), 2));
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[v4].local_ip, "127.0.0.1");
  EXPECT_EQ(rows[v4].remote_ip, "127.0.0.1");
  EXPECT_EQ(rows[v4].payload_hex, hex("four"));
  EXPECT_EQ(rows[v6].local_ip, "::1");
  EXPECT_EQ(rows[v6].remote_ip, "::1");
  EXPECT_EQ(rows[v6].payload_hex, hex("six"));
  EXPECT_EQ(rows[v6].local_port, port);
}

TEST(Legacy, CsvToStdoutByDefault) {
  TempDir dir;
  SinkProcess sink(dir, {"-ip", "127.0.0.1", "-p", "0"});
  const uint16_t port = sink.wait_listening(1)[0];
  uint16_t cp;
  cp = send_and_close("127.0.0.1", port, "to stdout");
  auto lines = wait_for_lines(sink.stdout_path(), 1);
  auto exit = sink.stop();
  EXPECT_EQ(exit.code, 0);
  ASSERT_EQ(lines.size(), 1u) << "no header unless -header";
  auto rows = csv_by_remote_port(lines);
  EXPECT_EQ(rows[cp].payload_hex, hex("to stdout"));
}

TEST(Legacy, TheLogHoldsOnlyTheOriginalsLinesPlusWarnings) {
  TempDir dir;
  SinkProcess sink(dir, {"-ip", "127.0.0.1", "-p", "0", "-log", "sink.log", "-out", "out.csv"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  send_and_close("127.0.0.1", port, "hello");
  wait_for_lines(dir.file("out.csv"), 1);
  EXPECT_EQ(sink.stop().code, 0);
  const std::regex original(
      "^\\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d (TCP server is listening on |Open: |Recv: |Close: |"
      "warning: |error: )");
  for (const auto &line : read_lines(dir.file("sink.log")))
    EXPECT_TRUE(std::regex_search(line, original)) << "not a line the original writes: " << line;
}
