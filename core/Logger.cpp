#include "Logger.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace sink {

Logger::Logger(const std::string &path, sink_log_level min_level)
    : path_(path), file_(path.empty() ? stderr : nullptr), min_level_(min_level) {}

void Logger::open() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (file_) return;
  file_ = std::fopen(path_.c_str(), "ae");
  if (!file_) throw std::runtime_error("cannot open log file \"" + path_ + "\": " + std::strerror(errno));
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
  const time_t now = std::time(nullptr);
  std::lock_guard<std::mutex> lock(mutex_);
  // Legacy mode logs three lines per connection: format the stamp once a second.
  if (now != stamp_time_) {
    struct tm tm {};
    localtime_r(&now, &tm);
    std::strftime(stamp_, sizeof stamp_, "%Y/%m/%d %H:%M:%S ", &tm);
    stamp_time_ = now;
  }
  if (!file_) { // not opened yet: hold the line
    held_.append(stamp_).append(tag).append(message).push_back('\n');
    return;
  }
  std::fputs(stamp_, file_);
  std::fputs(tag, file_);
  std::fwrite(message.data(), 1, message.size(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

bool Logger::reopen() {
  if (path_.empty()) return true;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!file_) return false;
  FILE *f = std::fopen(path_.c_str(), "ae");
  if (!f) return false;
  std::fclose(file_);
  file_ = f;
  return true;
}

} // namespace sink
