#include "Logger.h"

#include "NoForeignLinks.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sink {
namespace {
thread_local LogBatch *t_batch = nullptr;
// A batch that once held a flood's log lines gives the memory back.
constexpr size_t kBatchKeep = 4 * 1024 * 1024;

// One write(2) unless the file takes less at once (a pipe, a full disk).
void write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; // the log is best effort: a full disk loses lines, not records
    data += n;
    len -= static_cast<size_t>(n);
  }
}

// Appends to path, creating it readable by owner and group only: log lines
// hold client addresses. As root no link a user could have made is followed.
FILE *open_log_file(const std::string &path) {
  const int fd = plugin::open_without_foreign_links(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return nullptr;
  FILE *f = ::fdopen(fd, "a");
  if (!f) {
    const int err = errno;
    ::close(fd);
    errno = err;
  }
  return f;
}
} // namespace

std::string_view LogStamp::now() {
  const time_t now = std::time(nullptr);
  if (now != time_) {
    struct tm tm {};
    localtime_r(&now, &tm);
    len_ = std::strftime(text_, sizeof text_, "%Y/%m/%d %H:%M:%S ", &tm);
    time_ = now;
  }
  return {text_, len_};
}

void LogBatch::stamp_line() {
  if (lines.empty() && on_first_line) on_first_line(on_first_line_arg);
  lines.append(stamp.now());
}

void Logger::set_thread_batch(LogBatch *batch) { t_batch = batch; }

LogBatch *Logger::thread_batch() { return t_batch; }

void Logger::flush_thread_batch() {
  if (!t_batch || t_batch->lines.empty()) return;
  LineBuffer &lines = t_batch->lines;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!file_) {
      held_.append(lines.data(), lines.size());
    } else {
      std::fflush(file_); // lines other threads left in stdio's buffer go first
      write_all(fileno(file_), lines.data(), lines.size());
    }
  }
  lines.clear();
  lines.shrink_if_above(kBatchKeep);
}

Logger::Logger(const std::string &path, sink_log_level min_level)
    : path_(path), file_(path.empty() ? stderr : nullptr), min_level_(min_level) {}

void Logger::open() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (file_) return;
  file_ = open_log_file(path_);
  if (!file_) {
    const int err = errno;
    struct stat st {};
    if (err == ELOOP && ::lstat(path_.c_str(), &st) == 0 && S_ISLNK(st.st_mode))
      throw std::runtime_error(plugin::foreign_link_message(path_));
    throw std::runtime_error("cannot open log file \"" + path_ + "\": " + std::strerror(err));
  }
  std::fwrite(held_.data(), 1, held_.size(), file_);
  std::fflush(file_);
  held_.clear();
  held_.shrink_to_fit();
}

Logger::~Logger() {
  if (file_ && file_ != stderr) std::fclose(file_);
}

sink_log_level Logger::parse_level(const std::string &name) {
  if (name == "debug") return SINK_LOG_DEBUG;
  if (name == "warn") return SINK_LOG_WARN;
  if (name == "error") return SINK_LOG_ERROR;
  return SINK_LOG_INFO;
}

void Logger::plain(const std::string &message) { write_line("", message); }

void Logger::log(sink_log_level level, const std::string &message) {
  if (!enabled(level)) return;
  static const char *const kTags[] = {"debug: ", "", "warning: ", "error: "};
  write_line(kTags[level], message);
}

void Logger::write_line(const char *tag, const std::string &message) {
  if (t_batch) {
    t_batch->stamp_line();
    t_batch->lines.append(tag);
    t_batch->lines.append(message);
    t_batch->lines.push_back('\n');
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string_view stamp = stamp_.now();
  if (!file_) { // not opened yet: hold the line
    held_.append(stamp).append(tag).append(message).push_back('\n');
    return;
  }
  std::fwrite(stamp.data(), 1, stamp.size(), file_);
  std::fputs(tag, file_);
  std::fwrite(message.data(), 1, message.size(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

bool Logger::reopen() {
  if (path_.empty()) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!file_) return false;
  FILE *f = open_log_file(path_);
  if (!f) return false;
  std::fclose(file_);
  file_ = f;
  return true;
}

} // namespace sink
