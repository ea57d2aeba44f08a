// Bad flags, configs, plugins and peers: a clear error, or a record, never a crash.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

// A config with one group on an ephemeral loopback port and one CSV output,
// with `extra` spliced into the group.
std::string config_with(const std::string &group_extra,
                        const std::string &outputs = "  - plugin: csv\n    path: out.csv\n") {
  return "plugin_path: [\"" + bundled_plugin_dir() +
         "\"]\ngroups:\n  - name: g\n    listen: 127.0.0.1\n    ports: 0\n" + group_extra + "outputs:\n" +
         outputs;
}

} // namespace

TEST(BadInput, HelpPrintsUsageAndExitsZero) {
  TempDir dir;
  auto r = run_sink(dir, {"-h"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("Usage:"), std::string::npos);
  EXPECT_NE(r.out.find("-tlsKey string"), std::string::npos);
}

TEST(BadInput, BadFlagsExitTwoNamingTheFlagAndTouchNothing) {
  TempDir dir;
  write_file(dir.file("out.csv"), "precious\n");
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  } cases[] = {
      {{"-nope"}, "flag provided but not defined: -nope"},
      {{"-p", "70000"}, "70000"},
      {{"-p", "5-3"}, "5-3"},
      {{"-p", "abc"}, "abc"},
      {{"-timeout", "soon"}, "-timeout"},
      {{"-buffSize", "-1"}, "-buffSize"},
      {{"-flush", "false"}, "-flush=false"},
  };
  for (auto &c : cases) {
    auto args = c.args;
    args.insert(args.begin(), {"-ip", "127.0.0.1", "-out", "out.csv"});
    auto r = run_sink(dir, args);
    EXPECT_EQ(r.code, 2) << c.mentions;
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << r.err;
    EXPECT_EQ(read_file(dir.file("out.csv")), "precious\n");
  }
  // Unknown flags also get the usage text, like Go's flag package.
  EXPECT_NE(run_sink(dir, {"-nope"}).err.find("Usage:"), std::string::npos);
}

TEST(BadInput, BadConfigsExitTwoNamingKeyAndLine) {
  TempDir dir;
  write_file(dir.file("out.csv"), "precious\n");
  struct Case {
    std::string yaml, mentions;
  } cases[] = {
      {config_with("    timeout: forever\n"), "c.yaml:6: groups[0].timeout: invalid duration \"forever\""},
      {config_with("    colour: blue\n"), "c.yaml:6: groups[0].colour: unknown key"},
      {config_with("", "  - plugin: nosuch\n"), "unknown plugin \"nosuch\""},
      {config_with("", "  - plugin: csv\n    path: out.csv\n    hedaer: true\n"),
       "c.yaml:7: outputs[0] (csv): unknown option \"hedaer\""},
      {config_with("", "  - plugin: tcp\n"), "not an output plugin"},
      {config_with("    transport: csv\n"), "not a transport plugin"},
      {"groups: [unclosed\n", "c.yaml:2: invalid YAML"},
      {"plugin_path: [x]\ngroups:\n  - name: a\n    listen: 127.0.0.1\n    ports: 9\n  - name: b\n    "
       "listen: "
       "127.0.0.1\n    ports: 9\noutputs: [{plugin: csv}]\n",
       "c.yaml:6: groups[1].ports: port 9 on 127.0.0.1 is already taken by group \"a\""},
  };
  for (auto &c : cases) {
    write_file(dir.file("c.yaml"), c.yaml);
    auto r = run_sink(dir, {"-config", "c.yaml"});
    EXPECT_EQ(r.code, 2) << c.yaml << r.err;
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << "wanted: " << c.mentions << "\ngot: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_EQ(read_file(dir.file("out.csv")), "precious\n");
  }
  auto missing = run_sink(dir, {"-config", "missing.yaml"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("missing.yaml"), std::string::npos);
}

TEST(BadInput, NonPluginFilesAreRefusedByName) {
  TempDir dir;
  write_file(dir.file("fake.so"), "this is not an ELF file\n");
  write_file(dir.file("c.yaml"), config_with("", "  - plugin: ./fake.so\n"));
  auto r = run_sink(dir, {"-config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("fake.so: not a loadable plugin"), std::string::npos) << r.err;
}

TEST(BadInput, PortInUseExitsOne) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  const std::string port = std::to_string(ntohs(a.sin_port));
  TempDir dir;
  auto r = run_sink(dir, {"-ip", "127.0.0.1", "-p", "0," + port, "-out", "out.csv"});
  close(fd);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("port " + port), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Address already in use"), std::string::npos) << r.err;
}

TEST(BadInput, PrintConfigMigratesLegacyFlags) {
  TempDir dir;
  auto printed = run_sink(
      dir, {"-ip", "127.0.0.1", "-p", "0", "-timeout", "2s", "-header", "-out", "out.csv", "--print-config"});
  ASSERT_EQ(printed.code, 0) << printed.err;
  EXPECT_NE(printed.out.find("timeout: 2s"), std::string::npos) << printed.out;
  write_file(dir.file("migrated.yaml"), printed.out);
  SinkProcess sink(dir, {"--config", "migrated.yaml"});
  const uint16_t port = sink.wait_listening(1)[0];
  {
    TestClient c("127.0.0.1", port);
    c.send("same");
    c.close();
  }
  auto lines = wait_for_lines(dir.file("out.csv"), 2);
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("ts,localIP", 0), 0u);
  EXPECT_NE(lines[1].find(",73616d65,4,"), std::string::npos);
}

TEST(BadInput, FloodSilentAndResettingPeersAreAllRecorded) {
  TempDir dir;
  write_file(dir.file("c.yaml"), config_with("    timeout: 20s\n    capture_bytes: 64\n",
                                             "  - plugin: jsonl\n    path: out.jsonl\n"));
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1)[0];

  const size_t flood_bytes = 64u << 20;
  uint16_t flood_port = 0;
  std::thread flood([&] {
    TestClient c("127.0.0.1", port);
    flood_port = c.local_port();
    std::string chunk(1 << 20, '\xAA');
    for (size_t sent = 0; sent < flood_bytes; sent += chunk.size())
      c.send(chunk);
    c.close();
  });
  // While the flood runs, small connections still get through promptly.
  std::vector<uint16_t> small;
  for (int i = 0; i < 20; ++i) {
    TestClient c("127.0.0.1", port);
    small.push_back(c.local_port());
    if (i % 3 == 0) {
      c.reset();
    } else if (i % 3 == 1) {
      c.send("ping" + std::to_string(i));
      c.close();
    } else {
      c.close();
    }
  }
  flood.join();
  auto json = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 21));
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(json.size(), 21u);
  EXPECT_EQ(json[flood_port]["payload_len"], flood_bytes);
  EXPECT_EQ(json[flood_port]["captured_len"], 64);
  EXPECT_EQ(json[flood_port]["payload_hex"], std::string(128, 'a'));
  EXPECT_EQ(json[flood_port]["close_reason"], "client_fin");
  for (int i = 0; i < 20; ++i) {
    const auto &j = json[small[static_cast<size_t>(i)]];
    if (i % 3 == 1) {
      EXPECT_EQ(j["payload_hex"], hex("ping" + std::to_string(i)));
      EXPECT_EQ(j["close_reason"], "client_fin");
    } else {
      EXPECT_EQ(j["payload_len"], 0);
      // A reset before any data may surface as a reset or as a plain close.
      EXPECT_TRUE(j["close_reason"] == "client_fin" || j["close_reason"] == "client_rst") << j;
    }
  }
}

TEST(BadInput, ARefusedStartLeavesNoFileBehind) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\ngroups: [{name: g, transport: nosuch, ports: 0}]\n"
                                 "outputs: [{plugin: csv, path: out.csv, header: true}]\n");
  auto r = run_sink(dir, {"--config", "c.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown plugin \"nosuch\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.csv")))
      << "no CSV (with its header) from a refused start";
  EXPECT_FALSE(std::filesystem::exists(dir.file("sink.log")));
  // A bind failure after outputs were created removes what it created too,
  // and never touches a file that was there before.
  write_file(dir.file("old.jsonl"), "{\"kept\":true}\n");
  const int blocker = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(blocker, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(blocker, 1), 0);
  getsockname(blocker, reinterpret_cast<sockaddr *>(&a), &len);
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\ngroups: [{name: g, listen: 127.0.0.1, ports: " +
                                     std::to_string(ntohs(a.sin_port)) +
                                     "}]\noutputs:\n  - {plugin: csv, path: new.csv, header: true}\n"
                                     "  - {plugin: jsonl, path: old.jsonl}\n");
  auto bind = run_sink(dir, {"--config", "c.yaml"});
  ::close(blocker);
  EXPECT_EQ(bind.code, 1) << bind.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("new.csv")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("sink.log")));
  EXPECT_EQ(read_file(dir.file("old.jsonl")), "{\"kept\":true}\n");
}

TEST(BadInput, RelativePathsInAConfigFileAreRelativeToIt) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("conf/plugins"));
  std::filesystem::copy_file(bundled_plugin_dir() + "/jsonl.so", dir.file("conf/plugins/extra_jsonl.so"));
  write_file(dir.file("conf/c.yaml"), "log: {path: sink.log}\nplugin_path: [plugins]\n"
                                      "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\n"
                                      "outputs:\n  - {plugin: csv, path: out.csv}\n"
                                      "  - {plugin: extra_jsonl, path: out.jsonl}\n");
  // Started from elsewhere: everything still lands next to the config.
  SinkProcess sink(dir, {"--config", dir.file("conf/c.yaml")});
  const uint16_t port = sink.wait_listening(1, dir.file("conf/sink.log"))[0];
  send_and_close("127.0.0.1", port, "relative");
  EXPECT_EQ(wait_for_lines(dir.file("conf/out.csv"), 1).size(), 1u);
  EXPECT_EQ(wait_for_lines(dir.file("conf/out.jsonl"), 1).size(), 1u);
  EXPECT_EQ(sink.stop().code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.csv")));
  // The configured (relative) plugin_path is searched, and the bundled
  // plugins stay known beside it.
  const std::string log = read_file(dir.file("conf/sink.log"));
  EXPECT_NE(log.find("from " + dir.file("conf/plugins/extra_jsonl.so")), std::string::npos) << log;
  EXPECT_NE(log.find("plugin csv"), std::string::npos) << log;
}
