#include "OutputFile.h"

#include "NoForeignLinks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sink::plugin {

namespace {
// Opens for appending without blocking: a FIFO with no reader fails with
// ENXIO at once instead of hanging start-up; writes block again afterwards.
int open_append(const std::string &path) {
  if (path == "-") return STDOUT_FILENO;
  // As root no link a user could have made is followed (NoForeignLinks.h).
  const int fd =
      open_without_foreign_links(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0666);
  if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

std::string open_error(const std::string &path) {
  const int err = errno;
  if (err == ENXIO) return "\"" + path + "\" is a FIFO with no reader (start the reader first)";
  struct stat st {};
  if (err == ELOOP && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
    return foreign_link_message(path);
  return "cannot open \"" + path + "\": " + std::strerror(err);
}
} // namespace

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  const int fd = open_append(path_);
  if (fd < 0) throw std::runtime_error(open_error(path_));
  adopt(fd);
}

void OutputFile::adopt(int fd) {
  if (owns_fd_) ::close(fd_);
  fd_ = fd;
  owns_fd_ = fd_ != STDOUT_FILENO;
  struct stat st {};
  torn_bytes_ = 0;
  if (fstat(fd_, &st) == 0) {
    seekable_ = S_ISREG(st.st_mode);
    end_ = committed_ = seekable_ ? st.st_size : 0;
    if (seekable_ && st.st_size > 0) cut_torn_tail();
    was_empty_ = !seekable_ || end_ == 0;
  }
}

void OutputFile::cut_torn_tail() {
  // Our descriptor is write-only (so a FIFO still needs a reader): read the
  // tail through a second one.
  struct Reader {
    int fd;
    ~Reader() {
      if (fd >= 0) ::close(fd);
    }
  } r{open_without_foreign_links(path_, O_RDONLY | O_CLOEXEC)};
  if (r.fd < 0) return;
  char last = '\n';
  if (pread(r.fd, &last, 1, end_ - 1) != 1 || last == '\n') return;
  // Find the last newline, reading backwards a block at a time.
  char buf[4096];
  long long pos = end_;
  long long keep = 0;
  while (pos > 0 && keep == 0) {
    const long long from = std::max(0LL, pos - static_cast<long long>(sizeof buf));
    const ssize_t n = pread(r.fd, buf, static_cast<size_t>(pos - from), from);
    if (n <= 0) return;
    for (ssize_t i = n - 1; i >= 0; --i)
      if (buf[i] == '\n') {
        keep = from + i + 1;
        break;
      }
    pos = from;
  }
  const long long torn = end_ - keep;
  if (cut_back_to(keep)) {
    torn_bytes_ = static_cast<size_t>(torn);
    committed_ = end_;
  }
}

OutputFile::~OutputFile() {
  if (owns_fd_) ::close(fd_);
}

bool OutputFile::cut_back_to(long long offset) {
  if (!seekable_) return false;
  const int saved = errno;
  const bool ok = ::ftruncate(fd_, offset) == 0;
  if (ok) end_ = offset;
  errno = saved;
  return ok;
}

bool OutputFile::write_out() {
  size_t done = 0;
  while (done < staged_.size()) {
    const ssize_t n = ::write(fd_, staged_.data() + done, staged_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;
    // Some bytes may have landed: take them back so the file ends on a
    // whole record and the staged bytes can be written again later.
    if (done) cut_back_to(end_);
    return false;
  }
  end_ += static_cast<long long>(done);
  staged_.clear();
  return true;
}

void OutputFile::commit() { committed_ = end_; }

void OutputFile::rollback() {
  staged_.clear();
  if (end_ != committed_) cut_back_to(committed_);
}

bool OutputFile::reopen() {
  if (!owns_fd_) return true;
  const int fd = open_append(path_);
  if (fd < 0) return false;
  adopt(fd);
  return true;
}

} // namespace sink::plugin
