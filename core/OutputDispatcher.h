#pragma once
// The configured output plugin instances and the one thread that feeds them
// records from the queue. A failing output is logged by name, keeps the
// records it could not take (up to a bound) and retries them; the others
// carry on.
#include <sink/plugin.h>

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "Config.h"
#include "HostApi.h"
#include "Logger.h"
#include "PluginLoader.h"
#include "RecordQueue.h"

namespace sink {

class OutputDispatcher {
public:
  // Records a failing output may hold for retry before the oldest are lost.
  static constexpr size_t kMaxPending = 100000;

  // Loads and creates every output; throws PluginError naming the output.
  OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue);
  ~OutputDispatcher(); // stops, then destroys every instance
  OutputDispatcher(const OutputDispatcher &) = delete;
  OutputDispatcher &operator=(const OutputDispatcher &) = delete;

  void start();
  // Writes everything still queued (and retries what is pending), flushes,
  // joins the thread, and logs any record an output never took.
  void stop();
  // Asks the output thread to reopen every output (SIGHUP).
  void request_reopen() { reopen_requested_ = true; }
  // Makes the output thread stop after the record in hand (a second signal).
  // Async-signal-safe.
  static void abandon() { abandoned_ = true; }
  // "queue=N csv: written=... failed=... pending=... lost=...; ..."
  std::string stats() const;

private:
  struct Output {
    std::string label;
    const sink_output_ops *ops;
    std::unique_ptr<sink_host_ctx> ctx;
    void *instance = nullptr;
    bool failing = false;
    std::deque<std::shared_ptr<const Record>> pending; // output thread only
    std::atomic<uint64_t> written{0}, failures{0}, lost{0}, pending_count{0};
    // Owns the plugin instance, so a constructor that fails half-way still
    // destroys what it created.
    ~Output() {
      if (instance) ops->destroy(instance);
    }
  };
  void run();
  void deliver(Record &&r);
  bool write_one(Output &o, const sink_record &view);
  void retry_pending(Output &o);
  void check(Output &o, int rc, const char *what);

  Logger &logger_;
  RecordQueue &queue_;
  std::vector<std::unique_ptr<Output>> outputs_;
  std::thread thread_;
  std::atomic<bool> reopen_requested_{false};
  bool stopped_ = false;
  static std::atomic<bool> abandoned_;
};

} // namespace sink
