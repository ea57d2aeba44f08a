#include "CrashReporter.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <ctime>

#include "Journal.h"

namespace sink {
namespace {

thread_local PluginCall t_call;
std::atomic<int> g_log_fd{2};

// Async-signal-safe string building into a fixed buffer.
class Line {
public:
  Line &add(const char *s) {
    while (s && *s && n_ < sizeof b_ - 1)
      b_[n_++] = *s++;
    return *this;
  }
  Line &num(uint64_t v) {
    char d[24];
    int i = 0;
    do {
      d[i++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    while (i && n_ < sizeof b_ - 1)
      b_[n_++] = d[--i];
    return *this;
  }
  void write_to(int fd) const { [[maybe_unused]] ssize_t w = ::write(fd, b_, n_); }

private:
  char b_[1024];
  size_t n_ = 0;
};

const char *signal_name(int sig) {
  switch (sig) {
  case SIGSEGV: return "SIGSEGV";
  case SIGBUS: return "SIGBUS";
  case SIGILL: return "SIGILL";
  case SIGFPE: return "SIGFPE";
  case SIGABRT: return "SIGABRT";
  }
  return "a fatal signal";
}

void on_fatal_signal(int sig) {
  const PluginCall call = t_call;
  Line line;
  // Go's log format, as every other line of the log.
  char stamp[32] = "";
  const time_t now = time(nullptr);
  struct tm tm {};
  if (localtime_r(&now, &tm)) strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S ", &tm);
  line.add(stamp).add("error: ");
  if (call.label) {
    line.add(call.label).add(" crashed with ").add(signal_name(sig));
    if (call.record_id) line.add(" on record ").add(call.record_id);
    line.add("; sink stops. Records an output had not confirmed are delivered to it again at the next start");
    if (call.cursor) line.add(" (a record that crashes it on 3 starts in a row is skipped)");
  } else {
    line.add("sink crashed with ").add(signal_name(sig)).add(" outside any plugin call");
  }
  line.add("\n");
  const int fd = g_log_fd.load();
  line.write_to(fd);
  if (fd != 2) line.write_to(2);
  if (call.cursor) call.cursor->mark_crash(call.seq);
  // Die of the same signal (the handler was installed with SA_RESETHAND).
  ::raise(sig);
}

} // namespace

PluginCallScope::PluginCallScope(const char *label, const JournalCursor *cursor, uint64_t seq,
                                 const char *record_id) noexcept
    : saved_(t_call) {
  t_call = {label, cursor, seq, record_id};
}

PluginCallScope::~PluginCallScope() { t_call = saved_; }

void install_crash_reporter(int log_fd) {
  g_log_fd = log_fd;
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT})
    sigaction(sig, &sa, nullptr);
}

} // namespace sink
