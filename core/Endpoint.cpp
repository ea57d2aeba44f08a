#include "Endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>

namespace sink {

Endpoint Endpoint::from_sockaddr(const sockaddr *sa) {
  Endpoint e;
  char buf[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    const auto *in = reinterpret_cast<const sockaddr_in *>(sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    e.port = ntohs(in->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(sa);
    e.port = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
      e.v6 = true;
    }
  }
  e.ip = buf;
  return e;
}

std::string Endpoint::to_string() const { return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port); }

void Endpoint::append_to(LineBuffer &out) const {
  if (v6) out.push_back('[');
  out.append(ip);
  if (v6) out.push_back(']');
  out.push_back(':');
  char *p = out.room(8);
  out.advance(static_cast<size_t>(std::to_chars(p, p + 8, port).ptr - p));
}

Endpoint local_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0) return {};
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss));
}

namespace {
// From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>,
// which clash with glibc's <netinet/in.h>.
constexpr int kSoOriginalDst = 80;
constexpr int kIp6tSoOriginalDst = 80;
} // namespace

Endpoint dialed_endpoint(int fd, const Endpoint &local) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  // IPv4 connections (also on a dual-stack IPv6 socket) are tracked as IPv4.
  const int rc = local.v6 ? getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &ss, &len)
                          : getsockopt(fd, SOL_IP, kSoOriginalDst, &ss, &len);
  if (rc != 0) return local; // not tracked, or no conntrack: nothing was redirected
  Endpoint e = Endpoint::from_sockaddr(reinterpret_cast<sockaddr *>(&ss));
  return e.ip.empty() ? local : e;
}

} // namespace sink
