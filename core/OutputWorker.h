#pragma once
// One output plugin instance and the thread of its own that feeds it, so a
// stalled output holds up no other. Implements the ABI 1.1 output contract:
// records count as written only after a successful flush; a failed write is
// retried with the same record, a failed flush with every record since the
// last successful one. The backlog is bounded: when it overflows, the oldest
// records this output never took are skipped and counted lost for it alone.
#include <sink/plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "HostApi.h"
#include "Logger.h"
#include "Record.h"

namespace sink {

class OutputWorker {
public:
  using RecordPtr = std::shared_ptr<const Record>;

  OutputWorker(std::string label, const sink_output_ops *ops, Logger &logger, size_t max_backlog);
  ~OutputWorker(); // destroys the instance unless the thread is stuck in it
  OutputWorker(const OutputWorker &) = delete;
  OutputWorker &operator=(const OutputWorker &) = delete;

  sink_host_ctx &ctx() { return *ctx_; }
  const sink_output_ops *ops() const { return ops_; }
  void set_instance(void *instance) { instance_ = instance; }
  const std::string &label() const { return label_; }

  void start();
  // Hands over a batch (record thread). Never blocks on the plugin.
  void submit(const std::vector<RecordPtr> &batch);
  // Drops the oldest records this output has not taken beyond its bound,
  // counting them lost for it.
  void skip_beyond_backlog();
  // The backlog has reached its bound.
  bool backlog_full() const { return outstanding_ >= max_backlog_; }
  void request_reopen();
  // No more records: the thread writes what it has, flushes and ends.
  void close();
  // Asks the thread to stop after the call in hand (a second signal).
  void abandon();
  // True once the thread has ended.
  bool finished() const { return finished_; }
  // Joins an ended thread; a thread still inside the plugin is left behind
  // (and the instance with it) so the process can exit.
  void release();
  // Records this output has not confirmed (backlog + unflushed).
  uint64_t outstanding() const { return outstanding_; }
  std::string stats() const;
  // Logged once at the end when something was not written.
  std::string loss_report() const;

private:
  void run();
  // Sets one of the flags below and wakes the thread.
  void raise(bool &flag);
  // Writes and flushes what is unconfirmed; false on failure.
  bool deliver();
  void check(int rc, const char *what);

  std::string label_;
  const sink_output_ops *ops_;
  Logger &logger_;
  std::unique_ptr<sink_host_ctx> ctx_;
  void *instance_ = nullptr;
  const size_t max_backlog_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<RecordPtr> inbox_; // guarded by mutex_
  bool closed_ = false, reopen_ = false, abandoned_ = false;
  size_t unconfirmed_count_ = 0; // unconfirmed_.size(), readable under mutex_

  // Output thread only.
  std::deque<RecordPtr> unconfirmed_; // taken from the inbox, not yet flushed
  size_t taken_ = 0;                  // how many of them write() accepted
  bool failing_ = false;
  const char *failing_what_ = ""; // the call whose failures started the run
  bool failure_logged_ = false, recovery_pending_ = false;
  std::chrono::steady_clock::time_point last_failure_log_{};

  std::thread thread_;
  bool detached_ = false; // left inside the plugin at exit: never destroy
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> written_{0}, failures_{0}, lost_{0}, outstanding_{0}, left_at_exit_{0};
};

} // namespace sink
