// Load generator: `total` connections to host:port, at most `inflight` at
// once, each sending `payload` bytes and then closing (FIN). Or, with
// --hold, opens `total` connections and keeps them idle until stdin closes.
// Prints one line: "connections=N seconds=S rate=R".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int open_nonblocking(const sockaddr_in &addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: loadgen HOST PORT TOTAL INFLIGHT PAYLOAD [--hold]\n");
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  inet_pton(AF_INET, argv[1], &addr.sin_addr);
  const long total = std::atol(argv[3]);
  const long inflight = std::atol(argv[4]);
  const std::string payload(static_cast<size_t>(std::atol(argv[5])), 'x');
  const bool hold = argc > 6 && std::string(argv[6]) == "--hold";

  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<epoll_event> events(1024);
  long started = 0, done = 0, failed = 0, open_now = 0;
  std::vector<int> held;
  auto t0 = std::chrono::steady_clock::now();
  while (done + failed < total) {
    while (started < total && open_now < inflight) {
      int fd = open_nonblocking(addr);
      ++started;
      if (fd < 0) {
        ++failed;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      ++open_now;
    }
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 1000);
    for (int i = 0; i < n; ++i) {
      int fd = events[static_cast<size_t>(i)].data.fd;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
      --open_now;
      if (err != 0) {
        ++failed;
        close(fd);
        continue;
      }
      if (hold) {
        held.push_back(fd);
        ++done;
        continue;
      }
      if (!payload.empty()) (void)!send(fd, payload.data(), payload.size(), MSG_NOSIGNAL);
      close(fd);
      ++done;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("connections=%ld failed=%ld seconds=%.3f rate=%.0f\n", done, failed, secs, done / secs);
  std::fflush(stdout);
  if (hold) {
    char c;
    while (read(0, &c, 1) > 0) {
    }
    for (int fd : held)
      close(fd);
  }
  return failed ? 1 : 0;
}
