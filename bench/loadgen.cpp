// Load generator for bench/run.py. Every mode prints one line of key=value
// pairs on stdout and exits non-zero when a connection failed.
//
//   loadgen short HOST PORT TOTAL INFLIGHT PAYLOAD
//       TOTAL connections, at most INFLIGHT at once, each sending PAYLOAD
//       bytes and then closing (FIN).
//   loadgen hold HOST PORT TOTAL INFLIGHT [--tls]
//       opens TOTAL connections (with --tls: completes a TLS handshake on
//       each, sending nothing else), prints its line, keeps them open and
//       idle until stdin closes, then closes them.
//   loadgen flood HOST PORT BYTES
//       one connection: sends BYTES, half-closes, and waits for the server to
//       close, so the time covers the server reading every byte.
//   loadgen handshakes HOST PORT SECONDS CONCURRENCY
//       full TLS handshakes (no session reuse), CONCURRENCY at once, for
//       SECONDS: each connection completes its handshake, half-closes and
//       waits for the server to close. In-flight ones finish at the end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

sockaddr_in make_addr(const char *host, const char *port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(port)));
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "loadgen: bad IPv4 address %s\n", host);
    std::exit(2);
  }
  return addr;
}

int open_nonblocking(const sockaddr_in &addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

void watch(int ep, int fd, uint32_t events, int op = EPOLL_CTL_ADD) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(ep, op, fd, &ev);
}

int socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

void wait_for_stdin_eof() {
  char c;
  while (read(0, &c, 1) > 0) {
  }
}

SSL_CTX *client_ctx() {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); // every handshake a full one
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return ctx;
}

// One client connection: TCP connect, then (optionally) a TLS handshake, then
// (optionally) a half-close and reading until the server closes.
struct Conn {
  int fd = -1;
  SSL *ssl = nullptr;
  bool connected = false;
  bool handshaken = false;
};

enum class Step { more, done, failed };

// Advances `c` on an epoll event: TCP connect, then SSL_connect if `ssl`,
// then, if `drain`, half-close and read to EOF. Re-arms `ep` for what it
// waits for next.
Step advance(int ep, Conn &c, bool drain) {
  if (!c.connected) {
    if (socket_error(c.fd) != 0) return Step::failed;
    c.connected = true;
  }
  if (c.ssl && !c.handshaken) {
    int r = SSL_connect(c.ssl);
    if (r != 1) {
      int e = SSL_get_error(c.ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        watch(ep, c.fd, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, EPOLL_CTL_MOD);
        return Step::more;
      }
      ERR_clear_error();
      return Step::failed;
    }
    c.handshaken = true;
    if (drain) {
      shutdown(c.fd, SHUT_WR);
      watch(ep, c.fd, EPOLLIN, EPOLL_CTL_MOD);
      return Step::more;
    }
  }
  if (!drain) return Step::done;
  char buf[4096];
  ssize_t n;
  while ((n = read(c.fd, buf, sizeof buf)) > 0) {
  }
  if (n < 0 && errno == EAGAIN) return Step::more;
  return Step::done; // EOF (or a reset): the server has closed
}

void finish(Conn &c) {
  if (c.ssl) SSL_free(c.ssl);
  if (c.fd >= 0) close(c.fd);
  c = Conn{};
}

int short_mode(const sockaddr_in &addr, long total, long inflight, size_t payload_len) {
  const std::string payload(payload_len, 'x');
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(1024);
  long started = 0, done = 0, failed = 0, open_now = 0;
  auto t0 = Clock::now();
  while (done + failed < total) {
    while (started < total && open_now < inflight) {
      int fd = open_nonblocking(addr);
      ++started;
      if (fd < 0) {
        ++failed;
        continue;
      }
      watch(ep, fd, EPOLLOUT);
      ++open_now;
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<size_t>(i)].data.fd;
      --open_now;
      if (socket_error(fd) != 0) {
        ++failed;
      } else {
        if (!payload.empty()) (void)!send(fd, payload.data(), payload.size(), MSG_NOSIGNAL);
        ++done;
      }
      close(fd); // also takes it out of the epoll set
    }
  }
  double secs = seconds_since(t0);
  std::printf("connections=%ld failed=%ld seconds=%.3f rate=%.0f\n", done, failed, secs, done / secs);
  return failed ? 1 : 0;
}

int hold_mode(const sockaddr_in &addr, long total, long inflight, bool tls) {
  SSL_CTX *ctx = tls ? client_ctx() : nullptr;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(1024);
  std::unordered_map<int, Conn> pending;
  std::vector<Conn> held;
  long started = 0, failed = 0;
  auto t0 = Clock::now();
  while (static_cast<long>(held.size()) + failed < total) {
    while (started < total && static_cast<long>(pending.size()) < inflight) {
      int fd = open_nonblocking(addr);
      ++started;
      if (fd < 0) {
        ++failed;
        continue;
      }
      Conn c;
      c.fd = fd;
      if (ctx) {
        c.ssl = SSL_new(ctx);
        SSL_set_fd(c.ssl, fd);
      }
      pending[fd] = c;
      watch(ep, fd, EPOLLOUT);
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<size_t>(i)].data.fd;
      Conn &c = pending[fd];
      Step s = advance(ep, c, false);
      if (s == Step::more) continue;
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
      if (s == Step::done) {
        held.push_back(c);
      } else {
        ++failed;
        finish(c);
      }
      pending.erase(fd);
    }
  }
  double secs = seconds_since(t0);
  std::printf("connections=%zu failed=%ld seconds=%.3f rate=%.0f\n", held.size(), failed, secs,
              static_cast<double>(held.size()) / secs);
  std::fflush(stdout);
  wait_for_stdin_eof();
  for (Conn &c : held)
    finish(c);
  return failed ? 1 : 0;
}

int flood_mode(const sockaddr_in &addr, unsigned long long bytes) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto t0 = Clock::now();
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof addr) != 0) {
    std::fprintf(stderr, "loadgen: connect: %s\n", std::strerror(errno));
    return 1;
  }
  const std::string chunk(1 << 20, 'x');
  unsigned long long sent = 0;
  while (sent < bytes) {
    size_t want = static_cast<size_t>(std::min<unsigned long long>(chunk.size(), bytes - sent));
    ssize_t n = send(fd, chunk.data(), want, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      std::fprintf(stderr, "loadgen: send after %llu bytes: %s\n", sent, n ? std::strerror(errno) : "closed");
      return 1;
    }
    sent += static_cast<unsigned long long>(n);
  }
  shutdown(fd, SHUT_WR);
  char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  double secs = seconds_since(t0);
  close(fd);
  std::printf("connections=1 failed=0 bytes=%llu seconds=%.3f mib_per_s=%.1f\n", sent, secs,
              static_cast<double>(sent) / (1 << 20) / secs);
  return 0;
}

int handshakes_mode(const sockaddr_in &addr, double duration, long concurrency) {
  SSL_CTX *ctx = client_ctx();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(256);
  std::unordered_map<int, Conn> live;
  long started = 0, done = 0, failed = 0;
  auto t0 = Clock::now();
  for (;;) {
    bool more = seconds_since(t0) < duration;
    while (more && static_cast<long>(live.size()) < concurrency) {
      int fd = open_nonblocking(addr);
      ++started;
      if (fd < 0) {
        ++failed;
        continue;
      }
      Conn c;
      c.fd = fd;
      c.ssl = SSL_new(ctx);
      SSL_set_fd(c.ssl, fd);
      live[fd] = c;
      watch(ep, fd, EPOLLOUT);
    }
    if (live.empty()) break;
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<size_t>(i)].data.fd;
      Conn &c = live[fd];
      Step s = advance(ep, c, true);
      if (s == Step::more) continue;
      s == Step::done ? ++done : ++failed;
      finish(c);
      live.erase(fd);
    }
  }
  double secs = seconds_since(t0);
  std::printf("connections=%ld handshakes=%ld failed=%ld seconds=%.3f rate=%.0f\n", started, done, failed,
              secs, static_cast<double>(done) / secs);
  return failed ? 1 : 0;
}

int usage() {
  std::fprintf(stderr, "usage: loadgen short HOST PORT TOTAL INFLIGHT PAYLOAD\n"
                       "       loadgen hold HOST PORT TOTAL INFLIGHT [--tls]\n"
                       "       loadgen flood HOST PORT BYTES\n"
                       "       loadgen handshakes HOST PORT SECONDS CONCURRENCY\n");
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 5) return usage();
  const std::string mode = argv[1];
  const sockaddr_in addr = make_addr(argv[2], argv[3]);
  int rc;
  if (mode == "short" && argc == 7)
    rc = short_mode(addr, std::atol(argv[4]), std::atol(argv[5]), static_cast<size_t>(std::atol(argv[6])));
  else if (mode == "hold" && (argc == 6 || (argc == 7 && std::string(argv[6]) == "--tls")))
    rc = hold_mode(addr, std::atol(argv[4]), std::atol(argv[5]), argc == 7);
  else if (mode == "flood" && argc == 5)
    rc = flood_mode(addr, std::strtoull(argv[4], nullptr, 10));
  else if (mode == "handshakes" && argc == 6)
    rc = handshakes_mode(addr, std::atof(argv[4]), std::atol(argv[5]));
  else
    return usage();
  std::fflush(stdout);
  return rc;
}
