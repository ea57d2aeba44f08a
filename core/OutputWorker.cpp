#include "OutputWorker.h"

#include "ThreadName.h"

#include <algorithm>
#include <chrono>
#include <string_view>
#include <utility>

#include "CrashReporter.h"

namespace sink {

namespace {
std::string status_name(int rc) {
  switch (rc) {
  case SINK_ERR_IO: return "I/O error";
  case SINK_ERR_CONFIG: return "configuration error";
  case SINK_ERR_REFUSED: return "refused for good";
  default: return "error " + std::to_string(rc);
  }
}
int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// A failing output tries again after a back-off that doubles up to a limit.
constexpr auto kRetryFirst = std::chrono::milliseconds(100);
constexpr auto kRetryLimit = std::chrono::milliseconds(5000);
// At shutdown a failing output keeps trying this long before its records are
// left (in the journal for the next start, or reported as not written).
constexpr auto kFinalRetryBudget = std::chrono::milliseconds(2000);
// Records written between two flushes at most: bounds what a failed flush
// makes the host write again, and how long records wait to count as written.
constexpr size_t kFlushBatch = 4096;
// With a journal: records an output keeps in memory beyond what it has
// taken. Older ones are read back from the journal when it gets to them.
constexpr size_t kMemoryWindow = 16384;
// A record that crashed an output on this many starts in a row is skipped.
constexpr uint32_t kPoisonCrashes = 3;
} // namespace

OutputWorker::OutputWorker(std::string label, const sink_output_ops *ops, Logger &logger, size_t max_backlog,
                           Journal *journal, JournalCursor *cursor)
    : label_(std::move(label)), ops_(ops), logger_(logger),
      ctx_(std::make_unique<sink_host_ctx>(&logger, label_)), max_backlog_(max_backlog), journal_(journal),
      cursor_(cursor) {
  if (journal_) {
    reader_ = std::make_unique<JournalReader>(*journal_);
    next_seq_ = cursor_->position();
    confirmed_seq_ = next_seq_;
  }
  last_progress_ns_ = steady_ns();
  set_dead_letter(journal_ ? journal_->dir() + "/dead-letter.jsonl" : default_dead_letter_path());
}

OutputWorker::~OutputWorker() {
  if (thread_.joinable()) {
    close();
    thread_.join();
  }
  if (instance_ && !detached_) {
    PluginCallScope scope(label_.c_str());
    ops_->destroy(instance_);
  }
}

void OutputWorker::start() {
  if (journal_ && next_seq_ < journal_->end_seq())
    logger_.info(label_ + ": " + std::to_string(journal_->end_seq() - next_seq_) +
                 " records from the journal to deliver first");
  thread_ = std::thread([this] {
    // "sink-out-csv" rather than the label's "output csv".
    const std::string_view name = std::string_view(label_).substr(label_.rfind("output ", 0) == 0 ? 7 : 0);
    name_this_thread("sink-out-" + std::string(name));
    run();
  });
}

void OutputWorker::submit(const std::vector<Item> &batch) {
  if (batch.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.insert(inbox_.end(), batch.begin(), batch.end());
    // The journal has them: beyond the window they are read back from disk.
    if (journal_)
      while (inbox_.size() > kMemoryWindow)
        inbox_.pop_front();
    memory_outstanding_ = inbox_.size() + unconfirmed_count_;
  }
  wake_.notify_one();
}

void OutputWorker::skip_beyond_backlog() {
  if (journal_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t skipped = 0;
  while (!inbox_.empty() && inbox_.size() + unconfirmed_count_ > max_backlog_) {
    inbox_.pop_front();
    ++skipped;
  }
  lost_ += skipped;
  memory_outstanding_ = inbox_.size() + unconfirmed_count_;
}

uint64_t OutputWorker::outstanding() const {
  if (!journal_) return memory_outstanding_;
  const uint64_t end = journal_->end_seq();
  // Records the journal already deleted for it count as lost, not behind.
  const uint64_t from = std::max<uint64_t>(confirmed_seq_, cursor_->skip_target());
  return end > from ? end - from : 0;
}

double OutputWorker::seconds_behind() const {
  if (outstanding() == 0) return 0;
  return static_cast<double>(steady_ns() - last_progress_ns_) / 1e9;
}

void OutputWorker::raise(bool &flag) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    flag = true;
  }
  wake_.notify_one();
}

void OutputWorker::request_reopen() { raise(reopen_); }

void OutputWorker::close() { raise(closed_); }

void OutputWorker::abandon() { raise(abandoned_); }

void OutputWorker::release() {
  if (!thread_.joinable()) return;
  if (finished_) {
    thread_.join();
  } else {
    thread_.detach();
    detached_ = true;
  }
}

void OutputWorker::check(int rc, const char *what) {
  if (rc == SINK_OK) return;
  ++failures_;
  failing_now_ = true;
  // One line per run of failures, and at most one a minute for an output
  // that fails now and then; the plugin's own log says why.
  const auto now = std::chrono::steady_clock::now();
  // The plugin's own error line (path, OS reason) says more than a code.
  const bool plugin_said_why = ctx_->error_logged.exchange(false);
  if (!failing_ && (!failure_logged_ || now - last_failure_log_ >= std::chrono::minutes(1))) {
    if (!plugin_said_why)
      logger_.error(label_ + ": " + what + " failed (" + status_name(rc) +
                    "; the plugin gave no reason); records stay pending and are retried with back-off");
    failing_what_ = what;
    failure_logged_ = true;
    last_failure_log_ = now;
  }
  failing_ = true;
}

bool OutputWorker::journal_behind() const {
  return journal_ && next_seq_ + unconfirmed_.size() < journal_->handed_seq();
}

bool OutputWorker::poison(uint64_t seq) const {
  return cursor_ && cursor_->crash_count() >= kPoisonCrashes && cursor_->crash_seq() == seq;
}

uint64_t OutputWorker::lost() const {
  uint64_t l = lost_;
  if (cursor_) {
    const uint64_t target = cursor_->skip_target(), confirmed = confirmed_seq_;
    if (target > confirmed) l += target - confirmed; // not yet applied by the output thread
  }
  return l;
}

bool OutputWorker::set_aside(const Item &item, const sink_record &view) {
  std::string why;
  const std::string name = label_.rfind("output ", 0) == 0 ? label_.substr(7) : label_;
  if (!dead_letter_->append(dead_letter_record_line(view, name, unix_now_ns()), &why)) {
    if (!dead_letter_failing_)
      logger_.error(label_ + ": record " + std::string(item.record->id.data()) +
                    " was refused for good but cannot be set aside (" + why + "); retrying it");
    dead_letter_failing_ = true;
    return false;
  }
  dead_letter_failing_ = false;
  set_aside_seqs_.insert(item.seq);
  ++set_aside_;
  logger_.error(label_ + ": record " + std::string(item.record->id.data()) +
                " was refused for good by this output; set aside in " + dead_letter_->path() + " (" +
                std::to_string(set_aside_) + " so far), the output goes on");
  return true;
}

void OutputWorker::apply_skip() {
  if (!cursor_) return;
  const uint64_t target = cursor_->skip_target();
  if (target <= next_seq_) return;
  const uint64_t gap = target - next_seq_;
  const size_t drop = static_cast<size_t>(std::min<uint64_t>(unconfirmed_.size(), gap));
  unconfirmed_.erase(unconfirmed_.begin(), unconfirmed_.begin() + static_cast<std::ptrdiff_t>(drop));
  taken_ = taken_ > drop ? taken_ - drop : 0;
  lost_ += gap;
  next_seq_ = target;
  cursor_->advance(next_seq_);
  cursor_->store_now();
  confirmed_seq_ = next_seq_;
  if (!gap_logged_)
    logger_.error(label_ + ": " + std::to_string(gap) +
                  " records left the full journal before this output took them; they are lost for it "
                  "(outputs that kept up have them)");
  gap_logged_ = true;
}

void OutputWorker::take_more() {
  if (!journal_) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!inbox_.empty() && unconfirmed_.size() < std::min(kFlushBatch, max_backlog_)) {
      unconfirmed_.push_back(std::move(inbox_.front()));
      inbox_.pop_front();
    }
    unconfirmed_count_ = unconfirmed_.size();
    memory_outstanding_ = inbox_.size() + unconfirmed_.size();
    return;
  }
  // After a crash, one record per flush until past the record it was
  // charged to: a crash inside flush then names the record that caused it.
  const bool careful = cursor_->crash_count() > 0 && next_seq_ <= cursor_->crash_seq();
  const size_t batch = careful ? 1 : kFlushBatch;
  uint64_t wanted = next_seq_ + unconfirmed_.size(), limit;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!inbox_.empty() && inbox_.front().seq < wanted)
      inbox_.pop_front();
    while (!inbox_.empty() && inbox_.front().seq == wanted && unconfirmed_.size() < batch) {
      unconfirmed_.push_back(std::move(inbox_.front()));
      inbox_.pop_front();
      ++wanted;
    }
    // Records not handed over yet reach the inbox soon: never read those.
    limit = inbox_.empty() ? journal_->handed_seq() : inbox_.front().seq;
  }
  if (unconfirmed_.size() >= batch || wanted >= limit) return;
  // Not in memory (a restart, or it fell further behind than the window):
  // read them back from the journal.
  const uint64_t first = reader_->read(wanted, limit, batch - unconfirmed_.size(), read_buf_);
  if (first > wanted) {
    if (!unconfirmed_.empty()) return; // confirm those first, then skip
    const uint64_t gap = first - wanted;
    lost_ += gap;
    next_seq_ = wanted = first;
    cursor_->advance(next_seq_);
    cursor_->store_now();
    confirmed_seq_ = next_seq_;
    if (!gap_logged_)
      logger_.error(label_ + ": " + std::to_string(gap) +
                    " records could not be read from the journal (deleted while it was full, or damaged); "
                    "they are lost for this output");
    gap_logged_ = true;
  }
  for (auto &r : read_buf_)
    unconfirmed_.push_back({wanted++, std::make_shared<const Record>(std::move(r))});
  read_buf_.clear();
}

bool OutputWorker::deliver() {
  RecordView &view = view_; // kept across batches: its arrays keep their capacity
  while (taken_ < unconfirmed_.size()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (abandoned_) return false;
    }
    const Item &item = unconfirmed_[taken_];
    if (set_aside_seqs_.count(item.seq)) { // refused before a failed flush
      ++taken_;
      continue;
    }
    if (poison(item.seq)) {
      if (!poison_counted_) {
        ++lost_;
        logger_.error(label_ + ": skipping record " + std::string(item.record->id.data()) +
                      ": it crashed this output " + std::to_string(cursor_->crash_count()) +
                      " times in a row (counted lost for this output)");
        poison_counted_ = true;
      }
      ++taken_;
      continue;
    }
    view.build(*item.record);
    int rc;
    {
      PluginCallScope scope(label_.c_str(), cursor_, item.seq, item.record->id.data());
      rc = ops_->write(instance_, &view.get());
    }
    if (rc == SINK_ERR_REFUSED) {
      ctx_->error_logged = false; // the plugin's reason is logged; this is no failure run
      if (!set_aside(item, view.get())) {
        check(rc, "write");
        return false;
      }
      ++taken_;
      continue;
    }
    check(rc, "write");
    if (rc != SINK_OK) return false; // retried later with the same record
    ++taken_;
  }
  // Nothing written (only skipped records): nothing to flush.
  bool any_written = false;
  for (const auto &item : unconfirmed_)
    any_written = any_written || !skipped(item.seq);
  int rc = SINK_OK;
  if (any_written) {
    // A crash inside flush is charged to the batch's last record.
    const Item &last = unconfirmed_.back();
    PluginCallScope scope(label_.c_str(), cursor_, last.seq, last.record->id.data());
    rc = ops_->flush(instance_);
  }
  check(rc, "flush");
  if (rc != SINK_OK) {
    taken_ = 0; // every record since the last good flush is written again
    return false;
  }
  if (failing_)
    logger_.info(label_ + ": " + failing_what_ + " works again after " + std::to_string(failures_) +
                 " failures");
  failing_ = false;
  failing_now_ = false;
  uint64_t delivered = unconfirmed_.size();
  for (const auto &item : unconfirmed_)
    if (skipped(item.seq)) --delivered;
  set_aside_seqs_.clear();
  written_ += delivered;
  if (journal_) {
    next_seq_ += unconfirmed_.size();
    cursor_->advance(next_seq_);
  }
  confirmed_seq_ = unconfirmed_.back().seq + 1;
  unconfirmed_.clear();
  taken_ = 0;
  last_progress_ns_ = steady_ns();
  return true;
}

void OutputWorker::run() {
  using Clock = std::chrono::steady_clock;
  std::chrono::milliseconds backoff{0}; // 0: not failing
  Clock::time_point give_up_at{};
  bool closing = false;
  for (;;) {
    bool reopen = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (backoff.count() > 0) {
        auto wait = backoff;
        if (closing)
          wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::max(give_up_at - Clock::now(), Clock::duration::zero())));
        wake_.wait_for(lock, wait, [&] { return reopen_ || abandoned_; });
      } else if (unconfirmed_.empty() && !journal_behind()) {
        last_progress_ns_ = steady_ns(); // nothing waits for it
        auto more = [&] { return !inbox_.empty() || closed_ || reopen_ || abandoned_ || journal_behind(); };
        // Caught up: the position goes to disk once nothing more came for a
        // moment (under load it is stored at most every 50 ms instead).
        if (cursor_ && cursor_->position() != cursor_->stored_position() &&
            !wake_.wait_for(lock, std::chrono::milliseconds(20), more)) {
          lock.unlock();
          cursor_->store_now();
          lock.lock();
        }
        wake_.wait(lock, more);
      }
      if (abandoned_) break;
      reopen = std::exchange(reopen_, false);
      if (closed_ && !closing) {
        closing = true;
        give_up_at = Clock::now() + kFinalRetryBudget;
      }
    }
    if (reopen && ops_->reopen) {
      PluginCallScope scope(label_.c_str());
      check(ops_->reopen(instance_), "reopen");
    }
    apply_skip();
    take_more();
    const uint64_t written_before = written_;
    const size_t taken_before = taken_;
    const bool ok = unconfirmed_.empty() || deliver();
    const bool progressed = written_ != written_before || taken_ > taken_before;
    bool drained;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      unconfirmed_count_ = unconfirmed_.size();
      if (!journal_) memory_outstanding_ = inbox_.size() + unconfirmed_.size();
      drained = unconfirmed_.empty() && (journal_ ? !journal_behind() : inbox_.empty());
    }
    if (ok) {
      backoff = std::chrono::milliseconds(0);
      if (closing && drained) break;
    } else {
      // Something got through: try again at once. Back off, harder each
      // time, only while nothing does.
      if (progressed)
        backoff = std::chrono::milliseconds(0);
      else
        backoff = backoff.count() ? std::min(backoff * 2, kRetryLimit) : kRetryFirst;
      if (closing && Clock::now() >= give_up_at) break;
    }
  }
  if (cursor_) cursor_->store_now();
  left_at_exit_ = outstanding();
  finished_ = true;
}

std::string OutputWorker::stats() const {
  return label_ + " written=" + std::to_string(written_) + " failed=" + std::to_string(failures_) +
         " pending=" + std::to_string(outstanding()) + " lost=" + std::to_string(lost()) +
         (set_aside_ ? " set_aside=" + std::to_string(set_aside_) : std::string());
}

std::string OutputWorker::loss_report() const {
  const uint64_t left = journal_ ? 0 : (finished_ ? left_at_exit_.load() : outstanding());
  if (lost() == 0 && left == 0) return "";
  if (journal_)
    return label_ + ": " + std::to_string(lost()) +
           " records were lost for this output (left the full journal before it took them, or skipped after "
           "crashing it)";
  return label_ + ": " + std::to_string(lost_ + left) + " records could not be written (" +
         std::to_string(lost_) + " skipped while it lagged, " + std::to_string(left) +
         (finished_ ? " still pending at exit)" : " still pending, output stuck in a call at exit)");
}

std::string OutputWorker::journal_report() const {
  if (!journal_) return "";
  const uint64_t left = finished_ ? left_at_exit_.load() : outstanding();
  if (left == 0) return "";
  return label_ + ": " + std::to_string(left) +
         " records wait in the journal for this output; they are delivered at the next start";
}

} // namespace sink
