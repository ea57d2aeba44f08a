#pragma once
// One output plugin instance and the thread of its own that feeds it, so a
// stalled output holds up no other. Implements the ABI 1.1 output contract:
// records count as written only after a successful flush; a failed write is
// retried with the same record, a failed flush with every record since the
// last successful one.
//
// With a journal, the output's position is its journal cursor, moved on
// each successful flush. Records arrive in memory as they are appended;
// whatever the output has not taken from memory (a restart, a long outage)
// it reads back from the journal, so it falls behind on disk. Without a
// journal (the legacy command line) the backlog is in memory and bounded:
// when it overflows, the oldest records this output never took are skipped
// and counted lost for it alone.
#include <sink/plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "DeadLetter.h"
#include "HostApi.h"
#include "Journal.h"
#include "Logger.h"
#include "Record.h"

namespace sink {

class OutputWorker {
public:
  using RecordPtr = std::shared_ptr<const Record>;
  struct Item {
    uint64_t seq;
    RecordPtr record;
  };

  // journal and cursor may be null (no journal).
  OutputWorker(std::string label, const sink_output_ops *ops, Logger &logger, size_t max_backlog,
               Journal *journal, JournalCursor *cursor);
  ~OutputWorker(); // destroys the instance unless the thread is stuck in it
  OutputWorker(const OutputWorker &) = delete;
  OutputWorker &operator=(const OutputWorker &) = delete;

  sink_host_ctx &ctx() { return *ctx_; }
  const sink_output_ops *ops() const { return ops_; }
  void set_instance(void *instance) { instance_ = instance; }
  const std::string &label() const { return label_; }

  // Where records this output refuses for good (SINK_ERR_REFUSED) are set
  // aside. Default: dead-letter.jsonl in the journal's directory, else
  // ./sink-dead-letter.jsonl.
  void set_dead_letter(const std::string &path) { dead_letter_ = dead_letter_file(path); }
  const std::string &dead_letter_path() const { return dead_letter_->path(); }

  void start();
  // Hands over a batch, numbered in order (record thread). Never blocks on
  // the plugin.
  void submit(const std::vector<Item> &batch);
  // Without a journal: drops the oldest records this output has not taken
  // beyond its bound, counting them lost for it.
  void skip_beyond_backlog();
  // Without a journal: the backlog has reached its bound.
  bool backlog_full() const { return outstanding() >= max_backlog_; }
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

  // The number of the first record it has not confirmed: every record
  // numbered below it was flushed successfully (or skipped as lost).
  uint64_t confirmed_until() const { return confirmed_seq_; }
  // Records this output has not confirmed yet (in memory or in the journal).
  uint64_t outstanding() const;
  uint64_t written() const { return written_; }
  uint64_t failures() const { return failures_; }
  // Including records the journal deleted before this output took them.
  uint64_t lost() const;
  // Records the output refused for good, set aside in the dead-letter file.
  uint64_t set_aside() const { return set_aside_; }
  // Records the host gave up before this output got them (the journal's
  // disk refused them at exit): counted lost for it.
  void count_given_up(uint64_t n) { lost_ += n; }
  // The last write or flush failed, and nothing has succeeded since.
  bool failing() const { return failing_now_; }
  // While records wait for it: seconds since it last confirmed any (or last
  // had none waiting); 0 when none wait.
  double seconds_behind() const;
  std::string stats() const;
  // Logged once at the end (as an error) when records were lost for it.
  std::string loss_report() const;
  // Logged once at the end (as a warning) when records wait in the journal.
  std::string journal_report() const;

private:
  void run();
  // Sets one of the flags below and wakes the thread.
  void raise(bool &flag);
  // Moves the next records (from memory, else from the journal) into
  // unconfirmed_. Output thread.
  void take_more();
  // Goes past records the full journal deleted before this output took them.
  void apply_skip();
  // Writes and flushes what is unconfirmed; false on failure.
  bool deliver();
  void check(int rc, const char *what);
  bool journal_behind() const;     // the journal holds records not taken yet
  bool poison(uint64_t seq) const; // crashed this output on 3 starts in a row
  // The output refused item for good: into the dead-letter file. False (a
  // failure, retried) when the file cannot be written.
  bool set_aside(const Item &item, const sink_record &view);
  bool skipped(uint64_t seq) const { return poison(seq) || set_aside_seqs_.count(seq) != 0; }

  std::string label_;
  const sink_output_ops *ops_;
  Logger &logger_;
  std::unique_ptr<sink_host_ctx> ctx_;
  void *instance_ = nullptr;
  const size_t max_backlog_;
  Journal *journal_;
  JournalCursor *cursor_;
  std::unique_ptr<JournalReader> reader_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> inbox_; // guarded by mutex_
  bool closed_ = false, reopen_ = false, abandoned_ = false;

  // Output thread only.
  uint64_t next_seq_ = 0;        // with a journal: the cursor's position
  std::deque<Item> unconfirmed_; // taken, not yet flushed (null record: a skipped poison record)
  size_t taken_ = 0;             // how many of them write() accepted
  std::vector<Record> read_buf_; // records read back from the journal
  bool failing_ = false;
  const char *failing_what_ = ""; // the call whose failures started the run
  bool failure_logged_ = false, gap_logged_ = false;
  std::chrono::steady_clock::time_point last_failure_log_{};

  std::thread thread_;
  bool detached_ = false; // left inside the plugin at exit: never destroy
  std::atomic<bool> finished_{false}, failing_now_{false};
  std::atomic<uint64_t> written_{0}, failures_{0}, lost_{0}, left_at_exit_{0};
  std::atomic<uint64_t> memory_outstanding_{0}; // no journal: inbox + unconfirmed
  std::atomic<uint64_t> confirmed_seq_{0};      // with a journal: next_seq_
  std::atomic<int64_t> last_progress_ns_{0};    // steady clock
  size_t unconfirmed_count_ = 0;                // unconfirmed_.size(), guarded by mutex_
  bool poison_counted_ = false;
  RecordView view_; // deliver()'s view of the record in hand, reused
  std::shared_ptr<DeadLetterFile> dead_letter_;
  std::unordered_set<uint64_t> set_aside_seqs_; // in unconfirmed_: never written again
  std::atomic<uint64_t> set_aside_{0};
  bool dead_letter_failing_ = false; // logged once until it works again
};

} // namespace sink
