#pragma once
// A socket address as records and log lines show it.
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace sink {

struct Endpoint {
  std::string ip; // IPv4-mapped IPv6 shown as plain IPv4; IPv6 without brackets
  uint16_t port = 0;
  bool v6 = false;

  static Endpoint from_sockaddr(const sockaddr *sa);
  // "127.0.0.1:80" or "[::1]:80", as Go prints a net.Addr.
  std::string to_string() const;
};

// The local address of a connected or listening socket.
Endpoint local_endpoint(int fd);

} // namespace sink
