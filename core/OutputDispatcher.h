#pragma once
// The record side of the host: one record thread takes finished connections
// from the queue, runs the analyzers on each, and hands every record to each
// output's own worker thread. The network thread never waits on a plugin
// here: the queue is drained by the record thread, which never waits on an
// output (each output keeps a bounded backlog of its own).
#include <sink/plugin.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "AnalyzerChain.h"
#include "Journal.h"
#include "Config.h"
#include "Logger.h"
#include "OutputWorker.h"
#include "PluginLoader.h"
#include "RecordQueue.h"

namespace sink {

class OutputDispatcher {
public:
  // Loads and creates every analyzer and output; throws PluginError naming
  // the entry. journal may be null (no journal: in-memory backlogs).
  OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue,
                   Journal *journal);
  ~OutputDispatcher(); // stops, then destroys every instance
  OutputDispatcher(const OutputDispatcher &) = delete;
  OutputDispatcher &operator=(const OutputDispatcher &) = delete;

  void start();
  // Once the start succeeded: the journal forgets outputs no longer
  // configured (a start that fails must not lose their positions).
  void release_unconfigured_outputs();
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
  // True while nothing can take more records: the journal is full and no
  // output has moved past its oldest part (or, without a journal, every
  // output's backlog is full). The network side then stops accepting (the
  // kernel queues new connections); records of open connections are kept in
  // memory rather than skipped.
  bool every_output_full() const { return every_output_full_; }
  const std::vector<std::unique_ptr<OutputWorker>> &outputs() const { return outputs_; }
  // Records finished but not yet journalled / handed to the outputs.
  uint64_t queued() const { return queue_.size() + held_; }
  // Times accepting was paused because nothing could take records.
  uint64_t pauses() const { return pauses_; }

  // A disk records or the journal are written to, as last looked at.
  struct DiskState {
    std::string what; // "journal" or the output's label
    std::string dir;
    uint64_t free_bytes = 0, size_bytes = 0;
    bool low = false; // less than kLowDiskShare of it free (at most 10 GiB)
  };
  std::vector<DiskState> disks() const;

private:
  void run();
  // Looks at each watched disk (statvfs); logs when one runs low or has
  // room again. Record thread, every few seconds.
  void check_disks();
  // Appends what is held to the journal and hands it to the outputs.
  void journal_and_submit(bool force);
  void submit(std::vector<OutputWorker::Item> &items);

  Logger &logger_;
  RecordQueue &queue_;
  AnalyzerChain analyzers_;
  std::vector<std::unique_ptr<OutputWorker>> outputs_;
  Journal *journal_;
  std::vector<std::string> names_;   // each output's name in the journal
  std::vector<Record> held_records_; // record thread: not yet in the journal
  uint64_t next_seq_ = 1;            // without a journal: numbers records in memory
  bool full_logged_ = false, append_failed_ = false;
  std::thread thread_;
  bool stopped_ = false;
  std::atomic<bool> every_output_full_{false};
  std::atomic<uint64_t> held_{0}, pauses_{0};
  static std::atomic<bool> abandoned_;
  mutable std::mutex disks_mutex_;
  std::vector<DiskState> disks_;
  std::chrono::steady_clock::time_point disks_checked_{};
};

} // namespace sink
