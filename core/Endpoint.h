#pragma once
// A socket address as records and log lines show it.
#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "LineBuffer.h"

namespace sink {

struct Endpoint {
  std::string ip; // IPv4-mapped IPv6 shown as plain IPv4; IPv6 without brackets
  uint16_t port = 0;
  bool v6 = false;

  static Endpoint from_sockaddr(const sockaddr *sa);
  // "127.0.0.1:80" or "[::1]:80", as Go prints a net.Addr.
  std::string to_string() const;
  // The same, appended without a temporary (log lines).
  void append_to(LineBuffer &out) const;
};

// The local address of a connected or listening socket.
Endpoint local_endpoint(int fd);

// The address the client dialed. For a connection a firewall redirected
// (REDIRECT / DNAT) that is conntrack's original destination
// (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST); for a transparent (TPROXY)
// listener, and whenever conntrack knows nothing, the socket's own address.
Endpoint dialed_endpoint(int fd, const Endpoint &local);

} // namespace sink
