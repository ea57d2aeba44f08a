#pragma once
// A blocking TCP client for driving the sink from tests.
#include <cstdint>
#include <string>

namespace sinktest {

class TestClient {
public:
  // Connects to ip:port (IPv4 or IPv6 literal); throws on failure.
  TestClient(const std::string &ip, uint16_t port);
  ~TestClient();
  TestClient(const TestClient &) = delete;
  TestClient &operator=(const TestClient &) = delete;

  uint16_t local_port() const { return local_port_; }
  void send(const std::string &bytes);
  // Orderly close (FIN).
  void close();
  // Abortive close (RST): SO_LINGER with a zero timeout.
  void reset();
  // Half close: FIN our side, keep reading.
  void shutdown_write();
  // Sends until `limit` bytes went out or the peer stops taking them;
  // returns how many the kernel accepted.
  uint64_t flood(uint64_t limit);
  // Reads until the server closes or `seconds` pass; returns what arrived.
  // *closed tells whether the server closed.
  std::string read_until_closed(double seconds, bool *closed);

private:
  int fd_ = -1;
  uint16_t local_port_ = 0;
};

// Connects, sends `bytes`, closes (FIN); returns the client's port.
uint16_t send_and_close(const std::string &ip, uint16_t port, const std::string &bytes);

// A loopback port nothing listens on right now (bound once, then released).
uint16_t free_port();

// GET path from 127.0.0.1:port over HTTP/1.0; the whole response.
std::string http_get(uint16_t port, const std::string &path);

} // namespace sinktest
