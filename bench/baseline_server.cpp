// The floor: the least a sink must do per connection (accept, read to EOF,
// count, close) on one epoll thread, with no records and no logging. The
// benchmark reports sink's cost as a ratio of this, measured in the same run.
// Usage: sink_baseline_server PORT (0 = any free port); prints "listening PORT".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || listen(ls, SOMAXCONN) != 0) return 1;
  socklen_t alen = sizeof a;
  getsockname(ls, reinterpret_cast<sockaddr *>(&a), &alen);
  std::printf("listening %d\n", ntohs(a.sin_port));
  std::fflush(stdout);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ls;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  epoll_event events[256];
  unsigned long long bytes = 0;
  char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t r;
      while ((r = read(fd, buf, sizeof buf)) > 0)
        bytes += static_cast<unsigned long long>(r);
      if (r == 0 || (r < 0 && errno != EAGAIN)) close(fd);
    }
  }
}
