#pragma once
// Owns a file descriptor until it is handed over (release) or goes out of
// scope (closed).
#include <unistd.h>

#include <utility>

namespace sink {

struct OwnedFd {
  int fd = -1;
  explicit OwnedFd(int f = -1) : fd(f) {}
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
  OwnedFd(const OwnedFd &) = delete;
  OwnedFd &operator=(const OwnedFd &) = delete;
  OwnedFd(OwnedFd &&o) noexcept : fd(o.release()) {}
  OwnedFd &operator=(OwnedFd &&o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = o.release();
    }
    return *this;
  }
  int release() { return std::exchange(fd, -1); }
};

} // namespace sink
