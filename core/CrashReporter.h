#pragma once
// One log line when the process dies of a fatal signal, naming the plugin
// whose call was running on the crashing thread (and the record it had),
// so a segfaulting third-party plugin does not die silently. For an output
// with a journal cursor it also marks the record, so a record that crashes
// the same plugin on three starts in a row is skipped (a poison record).
#include <cstdint>

namespace sink {

class JournalCursor;

// What the current thread is doing inside a plugin.
struct PluginCall {
  const char *label = nullptr; // e.g. "output csv#0"
  const JournalCursor *cursor = nullptr;
  uint64_t seq = 0;
  const char *record_id = nullptr;
};

// Marks the current thread as inside a plugin call until destroyed.
class PluginCallScope {
public:
  PluginCallScope(const char *label, const JournalCursor *cursor = nullptr, uint64_t seq = 0,
                  const char *record_id = nullptr) noexcept;
  ~PluginCallScope();
  PluginCallScope(const PluginCallScope &) = delete;
  PluginCallScope &operator=(const PluginCallScope &) = delete;

private:
  PluginCall saved_;
};

// Installs handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT that
// write the line to log_fd (and stderr when that differs), then die of the
// same signal.
void install_crash_reporter(int log_fd);

} // namespace sink
