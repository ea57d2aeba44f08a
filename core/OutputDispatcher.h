#pragma once
// The configured output plugin instances and the one thread that feeds them
// records from the queue. A failing output is logged by name and does not
// stop the others.
#include <sink/plugin.h>

#include <atomic>
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
  // Loads and creates every output; throws PluginError naming the output.
  OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue);
  ~OutputDispatcher(); // stops, then destroys every instance
  OutputDispatcher(const OutputDispatcher &) = delete;
  OutputDispatcher &operator=(const OutputDispatcher &) = delete;

  void start();
  // Writes everything still queued, flushes, joins the thread.
  void stop();
  // Asks the output thread to reopen every output (SIGHUP).
  void request_reopen() { reopen_requested_ = true; }
  uint64_t records_written() const { return written_; }

private:
  struct Output {
    std::string label;
    const sink_output_ops *ops;
    std::unique_ptr<sink_host_ctx> ctx;
    void *instance = nullptr;
    bool failing = false;
    uint64_t failures = 0;
  };
  void run();
  void deliver(const Record &r);
  void check(Output &o, int rc, const char *what);

  Logger &logger_;
  RecordQueue &queue_;
  std::vector<Output> outputs_;
  std::thread thread_;
  std::atomic<bool> reopen_requested_{false};
  std::atomic<uint64_t> written_{0};
};

} // namespace sink
