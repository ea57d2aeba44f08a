// The client's SYN and TCP_INFO as the real binary records them, compared
// with what the test's own socket set (TTL / hop limit, MSS, window clamp).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "Records.h"
#include "SinkProcess.h"

using namespace sinktest;

namespace {

// Connects from a socket with the given TTL, MSS and window clamp, sends
// "syn", closes; returns the client port.
uint16_t connect_with(bool v6, uint16_t port, int ttl, int mss, int clamp) {
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  if (v6)
    EXPECT_EQ(setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof ttl), 0);
  else
    EXPECT_EQ(setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl), 0);
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss), 0);
  EXPECT_EQ(setsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP, &clamp, sizeof clamp), 0);
  sockaddr_storage ss{};
  socklen_t len;
  if (v6) {
    auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    auto *a = reinterpret_cast<sockaddr_in *>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr *>(&ss), len), 0);
  EXPECT_EQ(::send(fd, "syn", 3, 0), 3);
  sockaddr_storage me{};
  socklen_t me_len = sizeof me;
  getsockname(fd, reinterpret_cast<sockaddr *>(&me), &me_len);
  ::close(fd);
  return ntohs(v6 ? reinterpret_cast<sockaddr_in6 *>(&me)->sin6_port
                  : reinterpret_cast<sockaddr_in *>(&me)->sin_port);
}

} // namespace

TEST(KernelFacts, TheSynAsTheClientSentItAndTcpInfoAtClose) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: false\n"
                                 "groups:\n  - {name: v4, listen: 127.0.0.1, ports: 0}\n"
                                 "  - {name: v6, listen: \"::1\", ports: 0}\n"
                                 "  - {name: off, listen: 127.0.0.1, ports: 0, kernel_facts: false}\n"
                                 "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const auto ports = sink.wait_listening(3, dir.file("sink.log"));
  const uint16_t c4 = connect_with(false, ports[0], 33, 1000, 5000);
  const uint16_t c6 = connect_with(true, ports[1], 44, 1200, 6000);
  const uint16_t coff = connect_with(false, ports[2], 55, 900, 4000);
  auto lines = wait_for_lines(dir.file("out.jsonl"), 3);
  EXPECT_EQ(sink.stop().code, 0);
  auto recs = jsonl_by_remote_port(lines);
  ASSERT_EQ(recs.size(), 3u);
  const auto &v4 = recs[c4]["extra"];
  EXPECT_EQ(v4["tcp.syn_saved"], true);
  EXPECT_EQ(v4["tcp.syn_ttl"], 33);
  EXPECT_EQ(v4["tcp.syn_mss"], 1000);
  EXPECT_EQ(v4["tcp.syn_window"], 5000);
  EXPECT_EQ(v4["tcp.syn_df"], true);
  EXPECT_TRUE(v4["tcp.syn_ipid"].is_number_integer());
  EXPECT_EQ(v4["tcp.syn_options"], "mss,sok,ts,nop,ws");
  EXPECT_TRUE(v4["tcp.syn_wscale"].is_number_integer());
  EXPECT_TRUE(v4["tcp.rtt_us"].is_number_integer());
  EXPECT_EQ(v4["tcp.retrans"], 0);
  EXPECT_GE(v4["tcp.segs_in"].get<int>(), 3) << "SYN, ACK, data at least";
  const auto &v6 = recs[c6]["extra"];
  EXPECT_EQ(v6["tcp.syn_ttl"], 44) << "the hop limit";
  EXPECT_EQ(v6["tcp.syn_mss"], 1200);
  EXPECT_EQ(v6["tcp.syn_window"], 6000) << "the clamp (Linux rounds it to whole segments)";
  EXPECT_FALSE(v6.contains("tcp.syn_ipid")) << "IPv6 has no IP ID";
  EXPECT_FALSE(v6.contains("tcp.syn_df"));
  for (auto it = recs[coff]["extra"].begin(); it != recs[coff]["extra"].end(); ++it)
    EXPECT_NE(it.key().rfind("tcp.", 0), 0u) << "kernel_facts: false adds none: " << it.key();
}

// With kernel facts on, a short read after the peer's FIN is checked against
// TCP_INFO's byte count instead of reading again. A read stops short at an
// urgent byte (which the kernel keeps out of band and so never delivers), so
// the count must disagree there and the bytes after it still be read.
TEST(KernelFacts, BytesAfterAnUrgentByteAreStillReadBeforeTheFin) {
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: false\n"
                                 "groups: [{name: g, listen: 127.0.0.1, ports: 0}]\n"
                                 "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const auto ports = sink.wait_listening(1, dir.file("sink.log"));
  uint16_t plain_port = 0, urgent_port = 0;
  for (bool urgent : {false, true}) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(ports[0]);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    ASSERT_EQ(::send(fd, "before", 6, 0), 6);
    if (urgent) {
      ASSERT_EQ(::send(fd, "U", 1, MSG_OOB), 1);
    }
    ASSERT_EQ(::send(fd, "after", 5, 0), 5);
    sockaddr_in me{};
    socklen_t me_len = sizeof me;
    getsockname(fd, reinterpret_cast<sockaddr *>(&me), &me_len);
    (urgent ? urgent_port : plain_port) = ntohs(me.sin_port);
    ::close(fd);
  }
  auto recs = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 2));
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[plain_port]["payload_hex"], hex("beforeafter"));
  EXPECT_EQ(recs[plain_port]["payload_len"], 11);
  EXPECT_EQ(recs[urgent_port]["payload_hex"], hex("beforeafter")) << "nothing after the urgent byte is lost";
  EXPECT_EQ(recs[urgent_port]["payload_len"], 11);
  for (auto *r : {&recs[plain_port], &recs[urgent_port]}) {
    EXPECT_EQ((*r)["close_reason"], "client_fin");
    EXPECT_EQ((*r)["extra"]["unread_at_close"], false);
    EXPECT_TRUE((*r)["extra"]["tcp.segs_in"].is_number_integer());
  }
}

namespace {

// Moves this test process (ctest runs each test in a process of its own)
// into a network namespace of its own whose kernel answers every SYN with a
// cookie (tcp_syncookies=2). Needs root.
bool enter_namespace_with_syn_cookies(std::string *why) {
  if (::unshare(CLONE_NEWNET) != 0) {
    *why = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    return false;
  }
  if (std::system("ip link set lo up") != 0) {
    *why = "ip link set lo up failed";
    return false;
  }
  std::ofstream cookies("/proc/sys/net/ipv4/tcp_syncookies");
  cookies << "2\n";
  cookies.close();
  if (!cookies) *why = "cannot set net.ipv4.tcp_syncookies=2 in the namespace";
  return static_cast<bool>(cookies);
}

} // namespace

TEST(KernelFacts, AConnectionThroughASynCookieHasNoRtt) {
  if (::geteuid() != 0) {
    if (const char *ci = std::getenv("CI"); ci && std::string(ci) == "true")
      FAIL() << "needs root (a network namespace with tcp_syncookies=2), and CI=true";
    GTEST_SKIP() << "needs root: runs the sink in a network namespace with tcp_syncookies=2";
  }
  std::string why;
  ASSERT_TRUE(enter_namespace_with_syn_cookies(&why)) << why;
  TempDir dir;
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\njournal: false\n"
                                 "groups:\n  - {name: v4, listen: 127.0.0.1, ports: 0}\n"
                                 "outputs: [{plugin: jsonl, path: out.jsonl}]\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const auto ports = sink.wait_listening(1, dir.file("sink.log"));
  const uint16_t c = connect_with(false, ports[0], 33, 1000, 5000);
  auto lines = wait_for_lines(dir.file("out.jsonl"), 1);
  EXPECT_EQ(sink.stop().code, 0);
  auto recs = jsonl_by_remote_port(lines);
  ASSERT_EQ(recs.count(c), 1u);
  const auto &extra = recs[c]["extra"];
  EXPECT_EQ(extra["tcp.syn_saved"], false) << "the SYN came through a cookie: " << extra.dump();
  EXPECT_FALSE(extra.contains("tcp.rtt_us")) << "no SYN-ACK was timed: " << extra.dump();
  EXPECT_EQ(extra["tcp.retrans"], 0);
  EXPECT_TRUE(extra["tcp.segs_in"].is_number_integer());
  EXPECT_EQ(recs[c]["payload_hex"], "73796e");
}
