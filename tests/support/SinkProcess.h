#pragma once
// Runs the real build/sink in a scratch directory for integration tests.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace sinktest {

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
public:
  TempDir();
  ~TempDir();
  const std::string &path() const { return path_; }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

// build/plugins: where build/sink finds its own plugins.
std::string bundled_plugin_dir();

std::string read_file(const std::string &path);
void write_file(const std::string &path, const std::string &text);
// Lines of a file without their "\n" (a trailing partial line is kept).
std::vector<std::string> read_lines(const std::string &path);
// Waits until `path` has at least n complete lines; returns them.
std::vector<std::string> wait_for_lines(const std::string &path, size_t n,
                                        std::chrono::milliseconds limit = std::chrono::seconds(15));

struct ExitResult {
  int code = -1; // exit status, or 128+signal
  std::string out, err;
};

class SinkProcess {
public:
  // Starts build/sink with args in dir; stdout and stderr go to files there.
  // max_open_files > 0 runs it under that RLIMIT_NOFILE (soft and hard).
  SinkProcess(const TempDir &dir, std::vector<std::string> args, unsigned max_open_files = 0);
  // Any program (argv[0] looked up on PATH), stdin fed from `input`; its
  // output goes to NAME.stdout / NAME.stderr in dir.
  SinkProcess(const TempDir &dir, std::vector<std::string> argv, const std::string &name,
              const std::string &input, unsigned max_open_files = 0);
  // Sends a signal (SIGHUP, ...).
  void signal(int sig);
  ~SinkProcess();
  SinkProcess(const SinkProcess &) = delete;
  SinkProcess &operator=(const SinkProcess &) = delete;

  // Waits for `count` "... server is listening on ADDR:PORT" lines in the
  // log (log_path, or stderr when empty) and returns their ports in order.
  std::vector<uint16_t> wait_listening(size_t count, const std::string &log_path = "");
  // SIGTERM, then waits for exit.
  ExitResult stop();
  // Waits for the process to exit by itself; code -2 if it had to be killed.
  ExitResult wait_exit(std::chrono::milliseconds limit);
  const std::string &stdout_path() const { return out_; }
  pid_t pid() const { return pid_; }
  const std::string &stderr_path() const { return err_; }

private:
  pid_t pid_ = -1;
  std::string out_, err_;
};

// Runs build/sink to completion (it must exit within `limit`).
ExitResult run_sink(const TempDir &dir, std::vector<std::string> args,
                    std::chrono::milliseconds limit = std::chrono::seconds(10));

// Runs any program to completion with `input` on stdin (code -2 if it had to
// be killed after `limit`).
ExitResult run_program(const TempDir &dir, std::vector<std::string> argv, const std::string &input,
                       std::chrono::milliseconds limit = std::chrono::seconds(15));

} // namespace sinktest
