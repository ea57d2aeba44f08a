#include "OutputWorker.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace sink {

namespace {
std::string status_name(int rc) {
  switch (rc) {
  case SINK_ERR_IO: return "I/O error";
  case SINK_ERR_CONFIG: return "configuration error";
  default: return "error " + std::to_string(rc);
  }
}
// A failing output tries again after a back-off that doubles up to a limit.
constexpr auto kRetryFirst = std::chrono::milliseconds(100);
constexpr auto kRetryLimit = std::chrono::milliseconds(5000);
// At shutdown a failing output keeps trying this long before its records are
// reported as not written.
constexpr auto kFinalRetryBudget = std::chrono::milliseconds(2000);
// Records written between two flushes at most: bounds what a failed flush
// makes the host write again, and how long records wait to count as written.
constexpr size_t kFlushBatch = 4096;
} // namespace

OutputWorker::OutputWorker(std::string label, const sink_output_ops *ops, Logger &logger, size_t max_backlog)
    : label_(std::move(label)), ops_(ops), logger_(logger),
      ctx_(std::make_unique<sink_host_ctx>(&logger, label_)), max_backlog_(max_backlog) {}

OutputWorker::~OutputWorker() {
  if (thread_.joinable()) {
    close();
    thread_.join();
  }
  if (instance_ && !detached_) ops_->destroy(instance_);
}

void OutputWorker::start() {
  thread_ = std::thread([this] { run(); });
}

void OutputWorker::submit(const std::vector<RecordPtr> &batch) {
  if (batch.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inbox_.insert(inbox_.end(), batch.begin(), batch.end());
    outstanding_ = inbox_.size() + unconfirmed_count_;
  }
  wake_.notify_one();
}

void OutputWorker::skip_beyond_backlog() {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t skipped = 0;
  while (!inbox_.empty() && inbox_.size() + unconfirmed_count_ > max_backlog_) {
    inbox_.pop_front();
    ++skipped;
  }
  lost_ += skipped;
  outstanding_ = inbox_.size() + unconfirmed_count_;
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
    recovery_pending_ = !plugin_said_why;
  }
  failing_ = true;
}

bool OutputWorker::deliver() {
  RecordView view;
  while (taken_ < unconfirmed_.size()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (abandoned_) return false;
    }
    view.build(*unconfirmed_[taken_]);
    const int rc = ops_->write(instance_, &view.get());
    check(rc, "write");
    if (rc != SINK_OK) return false; // retried later with the same record
    ++taken_;
  }
  const int rc = ops_->flush(instance_);
  check(rc, "flush");
  if (rc != SINK_OK) {
    taken_ = 0; // every record since the last good flush is written again
    return false;
  }
  if (failing_)
    logger_.warn(label_ + ": " + failing_what_ + " works again after " + std::to_string(failures_) +
                 " failures");
  failing_ = false;
  written_ += unconfirmed_.size();
  unconfirmed_.clear();
  taken_ = 0;
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
      } else if (unconfirmed_.empty()) {
        wake_.wait(lock, [&] { return !inbox_.empty() || closed_ || reopen_ || abandoned_; });
      }
      if (abandoned_) break;
      // Take at most one flush batch; the rest waits in the inbox (and
      // overflows there).
      while (!inbox_.empty() && unconfirmed_.size() < std::min(kFlushBatch, max_backlog_)) {
        unconfirmed_.push_back(std::move(inbox_.front()));
        inbox_.pop_front();
      }
      unconfirmed_count_ = unconfirmed_.size();
      outstanding_ = inbox_.size() + unconfirmed_.size();
      reopen = std::exchange(reopen_, false);
      if (closed_ && !closing) {
        closing = true;
        give_up_at = Clock::now() + kFinalRetryBudget;
      }
    }
    if (reopen && ops_->reopen) check(ops_->reopen(instance_), "reopen");
    const uint64_t written_before = written_;
    const size_t taken_before = taken_;
    const bool ok = unconfirmed_.empty() || deliver();
    const bool progressed = written_ != written_before || taken_ > taken_before;
    bool drained;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      unconfirmed_count_ = unconfirmed_.size();
      outstanding_ = inbox_.size() + unconfirmed_.size();
      drained = inbox_.empty() && unconfirmed_.empty();
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left_at_exit_ = inbox_.size() + unconfirmed_.size();
  }
  finished_ = true;
}

std::string OutputWorker::stats() const {
  return label_ + " written=" + std::to_string(written_) + " failed=" + std::to_string(failures_) +
         " pending=" + std::to_string(outstanding_) + " lost=" + std::to_string(lost_);
}

std::string OutputWorker::loss_report() const {
  const uint64_t left = finished_ ? left_at_exit_.load() : outstanding_.load();
  if (lost_ == 0 && left == 0) return "";
  return label_ + ": " + std::to_string(lost_ + left) + " records could not be written (" +
         std::to_string(lost_) + " skipped while it lagged, " + std::to_string(left) +
         (finished_ ? " still pending at exit)" : " still pending, output stuck in a call at exit)");
}

} // namespace sink
