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
// Local time's offset from UTC, taken at install: localtime_r is not
// async-signal-safe, so the handler formats the stamp itself.
std::atomic<long> g_utc_offset{0};

// "YYYY/MM/DD HH:MM:SS " for Unix time t (days to civil date: the
// proleptic Gregorian calendar, counted from 0000-03-01).
void format_stamp(time_t t, char *out) {
  long long days = t / 86400, secs = t % 86400;
  if (secs < 0) secs += 86400, --days;
  days += 719468;
  const long long era = (days >= 0 ? days : days - 146096) / 146097;
  const long long doe = days - era * 146097;
  const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const long long mp = (5 * doy + 2) / 153;
  const long long d = doy - (153 * mp + 2) / 5 + 1;
  const long long m = mp < 10 ? mp + 3 : mp - 9;
  const long long y = yoe + era * 400 + (m <= 2);
  const long long v[6] = {y, m, d, secs / 3600, secs / 60 % 60, secs % 60};
  const int width[6] = {4, 2, 2, 2, 2, 2};
  const char sep[6] = {'/', '/', ' ', ':', ':', ' '};
  size_t n = 0;
  for (int i = 0; i < 6; ++i) {
    for (int k = width[i] - 1; k >= 0; --k) {
      long long x = v[i];
      for (int j = 0; j < k; ++j)
        x /= 10;
      out[n++] = static_cast<char>('0' + x % 10);
    }
    out[n++] = sep[i];
  }
  out[n] = '\0';
}

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
  char stamp[32];
  format_stamp(time(nullptr) + g_utc_offset, stamp);
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
  const time_t now = time(nullptr);
  struct tm tm {};
  if (localtime_r(&now, &tm)) g_utc_offset = tm.tm_gmtoff;
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT})
    sigaction(sig, &sa, nullptr);
}

} // namespace sink
