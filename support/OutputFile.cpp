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
      open_without_foreign_links(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
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

namespace {
// The side file: magic, device, inode, then [start, end) of the bytes this
// sink is writing and has not confirmed, and their first bytes (an inode
// number can be reused by a file sink did not write). Host-local, so
// native byte order.
constexpr char kTailMagic[8] = {'S', 'I', 'N', 'K', 'T', 'A', 'I', 'L'};
constexpr size_t kTailHead = 32;
struct TailNote {
  char magic[8];
  unsigned long long dev, ino;
  long long start, end;
  unsigned long long head_size;
  char head[kTailHead];
};

// True when the file's bytes from note.start on begin as the note says.
bool starts_as_noted(int fd, const TailNote &note, long long file_end) {
  const size_t n = static_cast<size_t>(std::min<long long>(
      static_cast<long long>(std::min<size_t>(note.head_size, kTailHead)), file_end - note.start));
  char got[kTailHead];
  return n > 0 && pread(fd, got, n, note.start) == static_cast<ssize_t>(n) &&
         std::memcmp(got, note.head, n) == 0;
}

std::string tail_path_of(const std::string &path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  return dir + "." + path.substr(slash == std::string::npos ? 0 : slash + 1) + ".sink-tail";
}

// Opens the side file for writing, only when it is a plain file of its own:
// whoever can write the directory could plant its name as a link to a file
// sink (often root) must not overwrite. -1 when it is not.
int open_side_file(const std::string &path) {
  // O_NONBLOCK: a FIFO planted under this name must not hold the start.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  struct stat st {};
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A descriptor closed when it goes out of scope.
struct ScopedFd {
  int fd;
  ~ScopedFd() {
    if (fd >= 0) ::close(fd);
  }
};
} // namespace

OutputFile::OutputFile(std::string path) : path_(std::move(path)), tail_path_(tail_path_of(path_)) {
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
  ended_mid_line_ = false;
  unfinished_at_ = -1;
  if (fstat(fd_, &st) == 0) {
    seekable_ = S_ISREG(st.st_mode);
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    end_ = committed_ = seekable_ ? st.st_size : 0;
    if (seekable_ && st.st_size > 0) handle_unfinished_line();
    was_empty_ = !seekable_ || end_ == 0;
  }
}

void OutputFile::handle_unfinished_line() {
  // Our descriptor is write-only (so a FIFO still needs a reader): read the
  // tail through a second one.
  ScopedFd r{open_without_foreign_links(path_, O_RDONLY | O_CLOEXEC)};
  if (r.fd < 0) return;
  char last = '\n';
  if (pread(r.fd, &last, 1, end_ - 1) != 1 || last == '\n') return;
  // What this sink had written and not confirmed when it stopped.
  TailNote note{};
  long long ours_from = end_;
  if (ScopedFd t{::open(tail_path_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)};
      t.fd >= 0 && ::pread(t.fd, &note, sizeof note, 0) == static_cast<ssize_t>(sizeof note) &&
      std::memcmp(note.magic, kTailMagic, sizeof kTailMagic) == 0 && note.dev == dev_ && note.ino == ino_ &&
      note.start >= 0 && note.start < end_ && end_ <= note.end && starts_as_noted(r.fd, note, end_))
    ours_from = note.start;
  // Keep every whole line, ours too (the host writes the rest again); cut
  // only the torn line, and never below what this sink wrote.
  char buf[4096];
  long long pos = end_;
  long long keep = ours_from;
  while (pos > ours_from && keep == ours_from) {
    const long long from = std::max(ours_from, pos - static_cast<long long>(sizeof buf));
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
  if (torn > 0 && cut_back_to(keep)) {
    torn_bytes_ = static_cast<size_t>(torn);
    committed_ = end_;
  }
  // What is left may end inside a line sink did not write: kept whole.
  if (end_ > 0 && pread(r.fd, &last, 1, end_ - 1) == 1 && last != '\n') {
    ended_mid_line_ = true;
    unfinished_at_ = end_;
  }
}

void OutputFile::note_pending(long long start, const std::string &first_bytes) {
  if (!seekable_) return;
  if (tail_fd_ < 0) tail_fd_ = open_side_file(tail_path_);
  if (tail_fd_ < 0) return; // no side file (a read-only directory): nothing is ever cut at open
  TailNote note{};
  std::memcpy(note.magic, kTailMagic, sizeof kTailMagic);
  note.dev = dev_;
  note.ino = ino_;
  note.start = start;
  note.end = end_ + static_cast<long long>(staged_.size());
  // From start on: what an earlier write_out since the commit put there,
  // else the first of the bytes about to go out.
  note.head_size = std::min(first_bytes.size(), kTailHead);
  std::memcpy(note.head, first_bytes.data(), note.head_size);
  // One small pwrite: a process crash never leaves half of it.
  [[maybe_unused]] ssize_t w = ::pwrite(tail_fd_, &note, sizeof note, 0);
}

OutputFile::~OutputFile() {
  if (owns_fd_) ::close(fd_);
  if (tail_fd_ >= 0) {
    ::close(tail_fd_);
    // Closed in order: only whole lines are left (a rollback ran), so there
    // is nothing a next start would have to cut.
    ::unlink(tail_path_.c_str());
  }
}

bool OutputFile::cut_back_to(long long offset) {
  if (!seekable_) return false;
  const int saved = errno;
  // Someone else shortened the file (emptied it, copytruncate): our offsets
  // no longer hold, and ftruncate would grow it with NUL bytes. Left as it
  // is; what was rolled back is written again (a repeated record, not a
  // hole).
  struct stat st {};
  if (fstat(fd_, &st) != 0 || st.st_size < offset) {
    end_ = committed_ = fstat(fd_, &st) == 0 ? st.st_size : end_;
    errno = saved;
    return false;
  }
  const bool ok = ::ftruncate(fd_, offset) == 0;
  if (ok) end_ = offset;
  errno = saved;
  return ok;
}

bool OutputFile::write_out() {
  if (staged_.empty()) return true;
  // A line sink did not write and that does not end: ours start after it.
  if (end_ == unfinished_at_ && seekable_) staged_.insert(0, 1, '\n');
  if (committed_ == end_) pending_head_.assign(staged_, 0, std::min(staged_.size(), kTailHead));
  note_pending(committed_, pending_head_);
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
    // They are the file's last `done` bytes (appended), wherever it ends now.
    struct stat st {};
    if (done && fstat(fd_, &st) == 0 && st.st_size >= static_cast<off_t>(done))
      cut_back_to(st.st_size - static_cast<off_t>(done));
    if (end_ == unfinished_at_ && seekable_) staged_.erase(0, 1); // added again at the retry
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
