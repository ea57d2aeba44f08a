// The host refuses plugins it cannot trust, naming the file and the reason,
// and survives an output that fails.
#include <gtest/gtest.h>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;

namespace {

std::string test_plugin(const std::string &name) {
  return std::string(SINK_TEST_PLUGIN_DIR) + "/" + name + ".so";
}

std::string config_with_output(const std::string &plugin) {
  return "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\noutputs:\n  - plugin: jsonl\n    path: "
         "out.jsonl\n"
         "  - plugin: " +
         plugin + "\n";
}

ExitResult run_with_output(TempDir &dir, const std::string &plugin) {
  write_file(dir.file("c.yaml"), config_with_output(plugin));
  return run_sink(dir, {"--config", "c.yaml"});
}

} // namespace

TEST(PluginAbi, WrongAbiVersionIsRefused) {
  TempDir dir;
  auto r = run_with_output(dir, test_plugin("bad_wrong_abi"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad_wrong_abi.so: built for plugin ABI 2.0, this sink supports ABI 1.1"),
            std::string::npos)
      << r.err;
}

TEST(PluginAbi, MissingEntrySymbolIsRefused) {
  TempDir dir;
  auto r = run_with_output(dir, test_plugin("bad_no_entry"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad_no_entry.so: not a sink plugin: it does not export sink_plugin_entry"),
            std::string::npos)
      << r.err;
}

TEST(PluginAbi, FailingCreateIsReportedWithItsMessage) {
  TempDir dir;
  auto r = run_with_output(dir, test_plugin("bad_create_fails"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("c.yaml:5: outputs[1]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the test plugin refuses to start"), std::string::npos) << r.err;
}

TEST(PluginAbi, NonElfFileIsRefused) {
  TempDir dir;
  write_file(dir.file("notes.so"), "#!/bin/sh\necho not a plugin\n");
  auto r = run_with_output(dir, "./notes.so");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("notes.so: not a loadable plugin"), std::string::npos) << r.err;
  auto dir_as_plugin = run_with_output(dir, dir.path());
  EXPECT_EQ(dir_as_plugin.code, 2);
}

TEST(PluginAbi, ProductionPluginsExportExactlyOneSymbol) {
  TempDir dir;
  const std::string plugins = bundled_plugin_dir() + "/";
  for (const char *p : {"tcp", "tls", "csv", "jsonl"}) {
    auto r = run_program(dir, {"nm", "-D", "--defined-only", plugins + p + ".so"}, "");
    ASSERT_EQ(r.code, 0) << r.err;
    auto lines = split(r.out, '\n');
    ASSERT_EQ(lines.size(), 2u) << p << ":\n" << r.out; // one symbol + trailing empty
    EXPECT_NE(lines[0].find(" T sink_plugin_entry"), std::string::npos) << r.out;
  }
}

TEST(PluginAbi, AFailingOutputDoesNotTakeTheOthersDown) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             "log: {path: sink.log}\n" + config_with_output(test_plugin("bad_write_fails")));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  for (int i = 0; i < 5; ++i) {
    TestClient c("127.0.0.1", port);
    c.send("record " + std::to_string(i));
    c.close();
  }
  auto lines = wait_for_lines(dir.file("out.jsonl"), 5);
  EXPECT_EQ(sink.stop().code, 0);
  EXPECT_EQ(lines.size(), 5u) << "the healthy output got every record";
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("output bad_write_fails: write failed"), std::string::npos) << log;
  EXPECT_NE(
      log.find("output bad_write_fails: 5 records wait in the journal for this output; they are delivered "
               "at the next start"),
      std::string::npos)
      << log;
}

TEST(PluginAbi, AnOutputThatRecoversGetsItsPendingRecordsInOrder) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             "log: {path: sink.log}\n" + config_with_output(test_plugin("bad_fails_then_recovers")));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  for (int i = 0; i < 5; ++i) {
    send_and_close("127.0.0.1", port, "r" + std::to_string(i));
    wait_for_lines(dir.file("out.jsonl"), static_cast<size_t>(i) + 1); // one record at a time, in order
  }
  EXPECT_EQ(sink.stop().code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  std::string taken;
  for (const auto &line : split(log, '\n'))
    if (auto at = line.find("[output bad_fails_then_recovers] took "); at != std::string::npos)
      taken += line.substr(at + 38) + " ";
  EXPECT_EQ(taken, "r0 r1 r2 r3 r4 ") << log;
  const auto recovered = log.find("write works again after");
  ASSERT_NE(recovered, std::string::npos) << log;
  // A recovery is news, not a warning.
  const size_t line_start = log.rfind('\n', recovered) + 1; // npos + 1 = 0: the first line
  const std::string recovered_line = log.substr(line_start, log.find('\n', recovered) - line_start);
  EXPECT_EQ(recovered_line.find("warning:"), std::string::npos) << recovered_line;
  EXPECT_EQ(log.find("could not be written"), std::string::npos) << log;
}
