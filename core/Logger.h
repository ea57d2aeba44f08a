#pragma once
// Log lines in Go's log format ("2006/01/02 15:04:05 message"), as the
// original wrote them; scripts grep these. Thread-safe.
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <sink/plugin.h>

#include "LineBuffer.h"

namespace sink {

// "2006/01/02 15:04:05 " for now, formatted at most once a second (legacy
// mode logs three lines per connection).
class LogStamp {
public:
  std::string_view now();

private:
  time_t time_ = -1;
  char text_[32] = "";
  size_t len_ = 0;
};

// Lines one network thread logged during one loop iteration; written with
// one write(2) when the iteration ends (Logger::flush_thread_batch).
struct LogBatch {
  LineBuffer lines;
  LogStamp stamp;
  // Called when the batch gets its first line (the owner arranges a flush).
  void (*on_first_line)(void *arg) = nullptr;
  void *on_first_line_arg = nullptr;
  // Appends "2006/01/02 15:04:05 " for now.
  void stamp_line();
};

class Logger {
public:
  // Empty path = stderr. The file is not created until open(): lines logged
  // before are held and written then, so a start-up that fails creates no
  // log file.
  Logger(const std::string &path, sink_log_level min_level);
  // Opens (creates) the log file and writes the held lines. Throws
  // std::runtime_error naming the path when it cannot be opened.
  void open();
  ~Logger();
  Logger(const Logger &) = delete;
  Logger &operator=(const Logger &) = delete;

  static sink_log_level parse_level(const std::string &name);

  bool enabled(sink_log_level level) const { return level >= min_level_; }
  // Connection lines and other messages the original printed without a level tag.
  void plain(const std::string &message);
  void log(sink_log_level level, const std::string &message);
  void info(const std::string &m) { log(SINK_LOG_INFO, m); }
  void warn(const std::string &m) { log(SINK_LOG_WARN, m); }
  void error(const std::string &m) { log(SINK_LOG_ERROR, m); }
  // Reopens the file (after rotation); no-op for stderr.
  bool reopen();
  // From now on the calling thread's lines collect in batch until
  // flush_thread_batch() (nullptr: written at once again).
  static void set_thread_batch(LogBatch *batch);
  // The calling thread's batch, or nullptr.
  static LogBatch *thread_batch();
  // Writes what the calling thread's batch holds, in one write.
  void flush_thread_batch();
  // The descriptor lines go to (stderr before open()): for the crash line.
  int fd() const { return file_ ? fileno(file_) : 2; }

private:
  void write_line(const char *tag, const std::string &message);
  std::string path_;
  FILE *file_;       // nullptr until open() for a file
  std::string held_; // lines logged before open()
  sink_log_level min_level_;
  std::mutex mutex_;
  LogStamp stamp_; // guarded by mutex_
};

} // namespace sink
