#pragma once
// The record side of the host: one record thread takes finished connections
// from the queue, runs the analyzers on each, and hands every record to each
// output's own worker thread. The network thread never waits on a plugin
// here: the queue is drained by the record thread, which never waits on an
// output (each output keeps a bounded backlog of its own).
#include <sink/plugin.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "AnalyzerChain.h"
#include "Config.h"
#include "Logger.h"
#include "OutputWorker.h"
#include "PluginLoader.h"
#include "RecordQueue.h"

namespace sink {

class OutputDispatcher {
public:
  // Loads and creates every analyzer and output; throws PluginError naming
  // the entry.
  OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue);
  ~OutputDispatcher(); // stops, then destroys every instance
  OutputDispatcher(const OutputDispatcher &) = delete;
  OutputDispatcher &operator=(const OutputDispatcher &) = delete;

  void start();
  // Writes everything still queued, flushes every output and joins the
  // threads, unless a second signal abandons the drain: then it reports what
  // it gave up and returns at once. Returns false when an output thread is
  // still stuck inside its plugin (the process must then exit without
  // running destructors).
  bool stop();
  // Asks every output to reopen its files (SIGHUP).
  void request_reopen();
  // Makes the drain stop after the records in hand (a second signal).
  // Async-signal-safe.
  static void abandon() { abandoned_ = true; }
  // "queue=N | output csv written=... failed=... pending=... lost=...; ..."
  std::string stats() const;
  // True while every output has a full backlog: nothing can go out, so the
  // network side stops accepting (the kernel queues new connections) and
  // the records of open connections are kept rather than skipped.
  bool every_output_full() const { return every_output_full_; }

private:
  void run();

  Logger &logger_;
  RecordQueue &queue_;
  AnalyzerChain analyzers_;
  std::vector<std::unique_ptr<OutputWorker>> outputs_;
  std::thread thread_;
  bool stopped_ = false;
  std::atomic<bool> every_output_full_{false};
  static std::atomic<bool> abandoned_;
};

} // namespace sink
