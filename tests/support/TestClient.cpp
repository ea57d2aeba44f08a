#include "TestClient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace sinktest {

TestClient::TestClient(const std::string &ip, uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len;
  auto *in4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *in6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    len = sizeof *in4;
  } else if (inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    len = sizeof *in6;
  } else {
    throw std::runtime_error("bad address " + ip);
  }
  fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr *>(&ss), len) != 0)
    throw std::runtime_error("connect " + ip + ":" + std::to_string(port) + ": " + std::strerror(errno));
  sockaddr_storage local{};
  socklen_t llen = sizeof local;
  getsockname(fd_, reinterpret_cast<sockaddr *>(&local), &llen);
  local_port_ = ntohs(local.ss_family == AF_INET ? reinterpret_cast<sockaddr_in *>(&local)->sin_port
                                                 : reinterpret_cast<sockaddr_in6 *>(&local)->sin6_port);
}

TestClient::~TestClient() {
  if (fd_ >= 0) ::close(fd_);
}

void TestClient::send(const std::string &bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
}

void TestClient::close() {
  ::close(fd_);
  fd_ = -1;
}

void TestClient::reset() {
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close();
}

void TestClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

uint64_t TestClient::flood(uint64_t limit) {
  static const std::string chunk(1 << 20, '\x5a');
  uint64_t sent = 0;
  while (sent < limit) {
    ssize_t n = ::send(fd_, chunk.data(), std::min<uint64_t>(chunk.size(), limit - sent), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    sent += static_cast<uint64_t>(n);
  }
  return sent;
}

std::string TestClient::read_until_closed(double seconds, bool *closed) {
  std::string got;
  *closed = false;
  auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd_, POLLIN, 0};
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

uint16_t send_and_close(const std::string &ip, uint16_t port, const std::string &bytes) {
  TestClient c(ip, port);
  c.send(bytes);
  c.close();
  return c.local_port();
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string http_get(uint16_t port, const std::string &path) {
  TestClient c("127.0.0.1", port);
  c.send("GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n");
  bool closed = false;
  return c.read_until_closed(5, &closed);
}

} // namespace sinktest
