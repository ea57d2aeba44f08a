// The bundled analyzers against the real binary: fet's extras on each side
// of every threshold, from plain TCP and from a TLS ClientHello; replay
// across source addresses and across a restart; bad options and state files.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

std::string U(size_t n) { return std::string(n, 'U'); }    // printable, 4 set bits
std::string N(size_t n) { return std::string(n, '\x0f'); } // not printable, 4 set bits

// Connects from `source` (any 127/8 address) to 127.0.0.1:port, sends
// `bytes` in one write, closes; returns the client's port.
uint16_t send_from(const std::string &source, uint16_t port, const std::string &bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket");
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, source.c_str(), &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr *>(&dst), sizeof dst) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("connect from " + source + ": " + why);
  }
  socklen_t len = sizeof src;
  getsockname(fd, reinterpret_cast<sockaddr *>(&src), &len);
  if (!bytes.empty() &&
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    ::close(fd);
    throw std::runtime_error("send");
  }
  ::close(fd);
  return ntohs(src.sin_port);
}

// The extras an analyzer added, by prefix ("fet." / "replay.").
nlohmann::json extras_with(const nlohmann::json &record, const std::string &prefix) {
  nlohmann::json out = nlohmann::json::object();
  for (auto it = record["extra"].begin(); it != record["extra"].end(); ++it)
    if (it.key().rfind(prefix, 0) == 0) out[it.key()] = it.value();
  return out;
}

nlohmann::json fet(int prefix, int run, double popcount, double fraction, const std::string &protocol,
                   bool exempt, const std::string &by) {
  return {{"fet.ascii_prefix", prefix}, {"fet.longest_ascii_run", run},
          {"fet.popcount", popcount},   {"fet.ascii_fraction", fraction},
          {"fet.protocol", protocol},   {"fet.exempt", exempt},
          {"fet.exempt_by", by}};
}

const std::string kHeader = "log: {path: sink.log}\nplugin_path: [\"" + bundled_plugin_dir() + "\"]\n";

} // namespace

TEST(Analyzers, FetExtrasOnEachSideOfEveryThreshold) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             kHeader + "groups:\n"
                       "  - {name: tcp, listen: 127.0.0.1, ports: 0, timeout: 5s, capture_bytes: 4096}\n"
                       "  - {name: small, listen: 127.0.0.1, ports: 0, timeout: 5s, capture_bytes: 8}\n"
                       "analyzers: [{plugin: fet}, {plugin: replay}]\n"
                       "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const auto ports = sink.wait_listening(2, dir.file("sink.log"));
  struct Case {
    std::string name, bytes;
    nlohmann::json want;
  };
  // Every expectation counted by hand: 'U' and 0x0f have 4 set bits each.
  const std::vector<Case> cases = {
      {"prefix 5", U(5) + N(7), fet(5, 5, 4.0, 0.4167, "", false, "")},
      {"prefix 6", U(6) + N(7), fet(6, 6, 4.0, 0.4615, "", true, "ascii_prefix")},
      {"fraction 1/2", N(1) + U(10) + N(9), fet(0, 10, 4.0, 0.5, "", false, "")},
      {"fraction 10/19", N(1) + U(10) + N(8), fet(0, 10, 4.0, 0.5263, "", true, "ascii_fraction")},
      {"run 20", N(1) + U(20) + N(21), fet(0, 20, 4.0, 0.4762, "", false, "")},
      {"run 21", N(1) + U(21) + N(22), fet(0, 21, 4.0, 0.4773, "", true, "longest_ascii_run")},
      {"popcount 3.4", std::string("\x0f\x0f\x0f\x0f\x01", 5), fet(0, 0, 3.4, 0.0, "", true, "popcount")},
      {"popcount 3.5", N(5) + std::string(5, '\x07'), fet(0, 0, 3.5, 0.0, "", false, "")},
      {"popcount 4.6", std::string("\x8f\x8f\x8f\x0f\x0f", 5), fet(0, 0, 4.6, 0.0, "", true, "popcount")},
      {"popcount 4.5", std::string(5, '\x8f') + N(5), fet(0, 0, 4.5, 0.0, "", false, "")},
      // 0x16 0x03 0x01 (3+2+1 bits) + 7 x 0x0f + 2 x 0x8f = 44 bits / 12
      {"tls header", std::string("\x16\x03\x01", 3) + N(7) + "\x8f\x8f",
       fet(0, 0, 3.6667, 0.0, "tls", true, "protocol")},
      {"tls near miss", std::string("\x16\x03\x0a", 3) + N(7) + "\x8f\x8f",
       fet(0, 0, 3.75, 0.0, "", false, "")},
      {"http", "GET / HTTP/1.1\r\n\r\n",
       fet(14, 14, 2.8889, 0.7778, "http", true, "popcount,ascii_prefix,ascii_fraction,protocol")},
      // "GET/" is printable but no HTTP fingerprint: 4 printable of 14.
      {"http near miss", "GET/" + N(10), fet(4, 4, 3.9286, 0.2857, "", false, "")},
  };
  std::map<uint16_t, const Case *> by_port;
  for (const auto &c : cases)
    by_port[send_from("127.0.0.1", ports[0], c.bytes)] = &c;
  const uint16_t empty_port = send_from("127.0.0.1", ports[0], "");
  // 20 bytes into an 8-byte capture: features over the 8 kept, and partial.
  const uint16_t partial_port = send_from("127.0.0.1", ports[1], U(20));
  auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), cases.size() + 2));
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(all.size(), cases.size() + 2);
  for (const auto &[port, c] : by_port) {
    SCOPED_TRACE(c->name + ": " + all[port].dump());
    ASSERT_EQ(all[port]["first_read_len"], c->bytes.size()) << "the test needs one read per payload";
    EXPECT_EQ(extras_with(all[port], "fet."), c->want);
    EXPECT_EQ(all[port]["extra"]["replay.seen"], 0);
  }
  EXPECT_EQ(extras_with(all[empty_port], "fet."), nlohmann::json::object()) << all[empty_port].dump();
  EXPECT_EQ(extras_with(all[empty_port], "replay."), nlohmann::json::object()) << all[empty_port].dump();
  auto partial = fet(8, 8, 4.0, 1.0, "", true, "ascii_prefix,ascii_fraction");
  partial["fet.partial"] = true;
  EXPECT_EQ(extras_with(all[partial_port], "fet."), partial) << all[partial_port].dump();
}

TEST(Analyzers, FetJudgesTheTlsClientHelloNotTheDecryptedData) {
  TempDir dir;
  write_file(
      dir.file("c.yaml"),
      kHeader +
          "groups:\n"
          "  - {name: tls, transport: tls, listen: 127.0.0.1, ports: 0, timeout: 3s, capture_bytes: 4096}\n"
          "analyzers: [{plugin: fet}]\n"
          "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  // Decrypted, this would be HTTP with a long printable run.
  auto r = run_program(
      dir, {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-quiet", "-no_ign_eof"},
      "GET / HTTP/1.1 with a long printable line of text\n");
  auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 1));
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(all.size(), 1u);
  const auto &j = all.begin()->second;
  SCOPED_TRACE(j.dump());
  ASSERT_EQ(j["extra"]["tls.handshake"], "ok");
  EXPECT_NE(j["payload_hex"], ""); // the decrypted request is there ...
  // ... but the features come from the first raw read of the wire bytes.
  const std::string wire_hex = j["wire_hex"];
  const size_t first = j["first_read_len"];
  ASSERT_GE(wire_hex.size() / 2, first);
  ASSERT_GT(first, 5u);
  uint64_t bits = 0, printable = 0;
  for (size_t i = 0; i < first; ++i) {
    const auto b = static_cast<unsigned>(std::stoul(wire_hex.substr(2 * i, 2), nullptr, 16));
    bits += static_cast<unsigned>(__builtin_popcount(b));
    printable += b >= 0x20 && b <= 0x7e;
  }
  const auto &x = j["extra"];
  EXPECT_EQ(wire_hex.substr(0, 4), "1603");
  EXPECT_EQ(x["fet.protocol"], "tls");
  EXPECT_EQ(x["fet.ascii_prefix"], 0);
  EXPECT_EQ(x["fet.exempt"], true);
  EXPECT_NE(x["fet.exempt_by"].get<std::string>().find("protocol"), std::string::npos);
  EXPECT_NEAR(x["fet.popcount"].get<double>(), static_cast<double>(bits) / static_cast<double>(first),
              0.00005);
  EXPECT_NEAR(x["fet.ascii_fraction"].get<double>(),
              static_cast<double>(printable) / static_cast<double>(first), 0.00005);
  EXPECT_FALSE(x.contains("fet.partial"));
}

TEST(Analyzers, ReplayCountsAcrossSourcesAndARestart) {
  TempDir dir;
  const std::string config = kHeader + "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 5s}]\n"
                                       "analyzers:\n  - plugin: fet\n  - plugin: replay\n"
                                       "    state_path: state/replay.state\n    prefix_bytes: 16\n"
                                       "outputs: [{plugin: jsonl, path: out.jsonl}]\n";
  std::filesystem::create_directory(dir.file("state"));
  write_file(dir.file("c.yaml"), config);
  const std::string payload = std::string("\x9a\x01replayed probe payload ", 24) + std::string(40, '\xee');
  std::vector<nlohmann::json> seen;
  uint16_t first_client = 0, first_local = 0;
  {
    SinkProcess sink(dir, {"--config", "c.yaml"});
    first_local = sink.wait_listening(1, dir.file("sink.log"))[0];
    size_t lines = 0;
    for (const char *src : {"127.0.0.2", "127.0.0.3", "127.0.0.4"}) {
      const uint16_t p = send_from(src, first_local, payload);
      if (!first_client) first_client = p;
      auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), ++lines));
      seen.push_back(all[p]);
    }
    // Same 16-byte prefix, other length: another key.
    const uint16_t other = send_from("127.0.0.2", first_local, payload.substr(0, 30));
    auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), ++lines));
    EXPECT_EQ(all[other]["extra"]["replay.seen"], 0);
    EXPECT_EQ(sink.stop().code, 0);
  }
  ASSERT_EQ(seen.size(), 3u);
  const std::string first_remote = "127.0.0.2:" + std::to_string(first_client);
  EXPECT_EQ(extras_with(seen[0], "replay."), nlohmann::json({{"replay.seen", 0}})) << seen[0].dump();
  for (int i = 1; i < 3; ++i) {
    const auto x = extras_with(seen[i], "replay.");
    SCOPED_TRACE(seen[i].dump());
    EXPECT_EQ(x["replay.seen"], i);
    EXPECT_EQ(x["replay.first_remote"], first_remote);
    EXPECT_EQ(x["replay.first_local_port"], first_local);
    EXPECT_EQ(x["replay.first_ts"], seen[0]["ts"]);
    EXPECT_EQ(x["replay.delay_ms"],
              (seen[i]["ts_ns"].get<int64_t>() - seen[0]["ts_ns"].get<int64_t>()) / 1000000);
    EXPECT_EQ(x.size(), 5u);
    EXPECT_EQ(seen[i]["remote_ip"], std::string("127.0.0.") + std::to_string(i + 2));
  }
  ASSERT_TRUE(std::filesystem::exists(dir.file("state/replay.state")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("state/replay.state.tmp")));

  // A restart with the same state file remembers.
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(2, dir.file("sink.log"))[1]; // the log is appended to
  const uint16_t p = send_from("127.0.0.5", port, payload);
  auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 5));
  EXPECT_EQ(sink.stop().code, 0);
  const auto x = extras_with(all[p], "replay.");
  EXPECT_EQ(x["replay.seen"], 3) << all[p].dump();
  EXPECT_EQ(x["replay.first_remote"], first_remote);
  EXPECT_EQ(x["replay.first_local_port"], first_local);
  EXPECT_EQ(x["replay.first_ts"], seen[0]["ts"]);
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(log.find("loaded 2 entries from " + dir.file("state/replay.state")), std::string::npos) << log;
}

TEST(Analyzers, BadAnalyzerConfigsExitTwoNamingTheKeyAndListenNowhere) {
  TempDir dir;
  struct Case {
    std::string analyzers, mentions;
  } cases[] = {
      {"[{plugin: nosuch}]", "unknown plugin \"nosuch\""},
      {"[{plugin: replay, prefix_bytes: 0}]", "analyzers[0] (replay): option \"prefix_bytes\""},
      {"[{plugin: replay, prefix_bytes: -4}]", "option \"prefix_bytes\""},
      {"[{plugin: replay, prefix_bytes: many}]", "option \"prefix_bytes\""},
      {"[{plugin: fet}, {plugin: replay, window: -1s}]", "analyzers[1] (replay): option \"window\""},
      {"[{plugin: replay, window: soon}]", "option \"window\": invalid duration \"soon\""},
      {"[{plugin: replay, save_interval: 0s}]", "option \"save_interval\""},
      {"[{plugin: replay, max_entries: 0}]", "option \"max_entries\""},
      {"[{plugin: replay, colour: blue}]", "unknown option \"colour\""},
      {"[{plugin: fet, threshold: 3}]",
       "analyzers[0] (fet): unknown option \"threshold\" (fet takes no options)"},
      {"[{plugin: replay, state_path: no/such/dir/replay.state}]", "option \"state_path\": cannot write"},
  };
  for (const auto &c : cases) {
    write_file(dir.file("c.yaml"), "plugin_path: [\"" + bundled_plugin_dir() +
                                       "\"]\ngroups: [{name: g, listen: 127.0.0.1, ports: 0}]\n"
                                       "analyzers: " +
                                       c.analyzers + "\noutputs: [{plugin: jsonl, path: out.jsonl}]\n");
    auto r = run_sink(dir, {"--config", "c.yaml"});
    EXPECT_EQ(r.code, 2) << c.analyzers << "\n" << r.err;
    EXPECT_NE(r.err.find(c.mentions), std::string::npos) << "wanted: " << c.mentions << "\ngot: " << r.err;
    EXPECT_EQ(r.err.find("listening"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.jsonl"))) << c.analyzers;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("no")));
}

TEST(Analyzers, CorruptStateFileWarnsAndStartsEmpty) {
  TempDir dir;
  write_file(dir.file("replay.state"), std::string("\x00\xff\x13garbage, not a state file\xfe\n", 30));
  write_file(dir.file("c.yaml"), kHeader + "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 5s}]\n"
                                           "analyzers: [{plugin: replay, state_path: replay.state}]\n"
                                           "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  {
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    const uint16_t p = send_from("127.0.0.1", port, "after corruption");
    auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 1));
    EXPECT_EQ(all[p]["extra"]["replay.seen"], 0);
    EXPECT_EQ(sink.stop().code, 0);
  }
  const std::string log = read_file(dir.file("sink.log"));
  EXPECT_NE(
      log.find("warning: [analyzer replay] state file " + dir.file("replay.state") +
               " is corrupt or unusable (not a replay state file (bad magic)); starting with an empty table"),
      std::string::npos)
      << log;
  // The table was saved over the garbage and loads next time.
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(2, dir.file("sink.log"))[1];
  const uint16_t p = send_from("127.0.0.1", port, "after corruption");
  auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 2));
  EXPECT_EQ(all[p]["extra"]["replay.seen"], 1);
  EXPECT_EQ(sink.stop().code, 0);
}

TEST(Analyzers, ReplaySavesPeriodicallySoAKillLosesLittle) {
  TempDir dir;
  write_file(dir.file("c.yaml"),
             kHeader + "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 5s}]\n"
                       "analyzers: [{plugin: replay, state_path: r.state, save_interval: 200ms}]\n"
                       "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  uint16_t first_client = 0;
  {
    SinkProcess sink(dir, {"--config", "c.yaml"});
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    first_client = send_from("127.0.0.2", port, "periodic A");
    wait_for_lines(dir.file("out.jsonl"), 1);
    EXPECT_FALSE(std::filesystem::exists(dir.file("r.state"))) << "saved before the interval passed";
    std::this_thread::sleep_for(300ms);
    send_from("127.0.0.2", port, "periodic B"); // the first record after the interval saves
    wait_for_lines(dir.file("out.jsonl"), 2);
    for (int i = 0; i < 100 && !std::filesystem::exists(dir.file("r.state")); ++i)
      std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(std::filesystem::exists(dir.file("r.state")));
    sink.signal(SIGKILL); // no destroy, no final save
    EXPECT_EQ(sink.wait_exit(5s).code, 128 + SIGKILL);
  }
  EXPECT_EQ(read_file(dir.file("sink.log")).find("saved "), std::string::npos);
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const uint16_t port = sink.wait_listening(2, dir.file("sink.log"))[1];
  const size_t before = read_lines(dir.file("out.jsonl")).size();
  const uint16_t a = send_from("127.0.0.3", port, "periodic A");
  const uint16_t b = send_from("127.0.0.3", port, "periodic B");
  auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), before + 2));
  EXPECT_EQ(sink.stop().code, 0);
  EXPECT_EQ(all[a]["extra"]["replay.seen"], 1) << all[a].dump();
  EXPECT_EQ(all[a]["extra"]["replay.first_remote"], "127.0.0.2:" + std::to_string(first_client));
  EXPECT_EQ(all[b]["extra"]["replay.seen"], 1) << all[b].dump();
}

// Log lines and the state hold client addresses, and the state the salt
// that keeps the table's keys unguessable: neither is for every local user,
// whatever the umask, and a temporary file a crash left cannot pass its
// mode on.
TEST(Analyzers, StateFileAndLogAreNotReadableByOthers) {
  TempDir dir;
  write_file(dir.file("c.yaml"), kHeader + "groups: [{name: g, listen: 127.0.0.1, ports: 0, timeout: 5s}]\n"
                                           "analyzers: [{plugin: replay, state_path: r.state}]\n"
                                           "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  write_file(dir.file("r.state.tmp"), "left by a crash mid-save");
  std::filesystem::permissions(dir.file("r.state.tmp"), std::filesystem::perms(0666));
  const mode_t umask_before = ::umask(0); // the widest: only the modes sink asks for count
  {
    SinkProcess sink(dir, {"--config", "c.yaml"});
    ::umask(umask_before);
    const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
    send_from("127.0.0.1", port, "private");
    wait_for_lines(dir.file("out.jsonl"), 1);
    EXPECT_EQ(sink.stop().code, 0);
  }
  auto mode = [](const std::string &path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(dir.file("sink.log")), 0640u);
  EXPECT_EQ(mode(dir.file("r.state")), 0600u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("r.state.tmp")));
}
