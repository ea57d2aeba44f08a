#include "OutputDispatcher.h"

#include "ThreadName.h"

#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>

#include "ConfigValidation.h"

namespace sink {

std::atomic<bool> OutputDispatcher::abandoned_{false};

namespace {
// How often the draining main thread looks for a second signal.
constexpr auto kAbandonPoll = std::chrono::milliseconds(20);
// After a second signal, how long outputs get to leave their current call.
constexpr auto kAbandonGrace = std::chrono::milliseconds(200);
// At shutdown, an output whose backlog does not move for this long is left.
constexpr auto kStallLimit = std::chrono::seconds(10);
// How long the record thread waits for records before it checks again.
constexpr auto kQueueWait = std::chrono::milliseconds(100);
// How often the disks records and the journal go to are looked at.
constexpr auto kDiskCheck = std::chrono::seconds(5);
// A disk with less free than this share of it (or 10 GiB) is warned about
// before it is full.
constexpr uint64_t kLowDiskShare = 10; // percent
constexpr uint64_t kLowDiskCap = 10ull << 30;

// The directory a file output writes to: its "path" option, resolved as
// the plugin does (against the config's directory); empty for stdout.
std::string output_dir(const nlohmann::json &options, const std::string &config_dir) {
  if (!options.is_object() || !options.contains("path") || !options["path"].is_string()) return "";
  std::filesystem::path p = options["path"].get<std::string>();
  if (p.empty() || p == "-") return "";
  if (p.is_relative() && !config_dir.empty()) p = std::filesystem::path(config_dir) / p;
  return p.parent_path().empty() ? "." : p.parent_path().string();
}
} // namespace

OutputDispatcher::OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger,
                                   RecordQueue &queue, Journal *journal)
    : logger_(logger), queue_(queue), analyzers_(config, loader, logger), journal_(journal) {
  std::vector<std::string> names;
  outputs_.reserve(config.outputs.size());
  for (size_t i = 0; i < config.outputs.size(); ++i) {
    const auto &oc = config.outputs[i];
    const std::string where = plugin_location(config, oc.line, "outputs", i, oc.plugin);
    const LoadedPlugin *p = &loader.load_for(where, oc.plugin, SINK_PLUGIN_OUTPUT);
    // Two entries of one plugin are told apart by their index in outputs:.
    bool shared = false;
    for (size_t j = 0; j < config.outputs.size(); ++j)
      shared = shared || (j != i && config.outputs[j].plugin == oc.plugin);
    const std::string label = "output " + (!oc.name.empty() ? oc.name
                                                            : std::string(p->descriptor->name) +
                                                                  (shared ? "#" + std::to_string(i) : ""));
    // The journal knows an output by its name: `name:`, else PLUGIN#INDEX.
    const std::string name =
        !oc.name.empty() ? oc.name : std::string(p->descriptor->name) + "#" + std::to_string(i);
    names.push_back(name);
    JournalCursor *cursor = journal_ ? &journal_->cursor(name) : nullptr;
    outputs_.push_back(std::make_unique<OutputWorker>(label, p->descriptor->output, logger,
                                                      config.output_backlog, journal_, cursor));
    auto &o = *outputs_.back();
    o.set_instance(
        create_plugin_instance(o.ops()->create, o.ctx(), oc.options.dump(), where, config.config_dir));
    if (auto dir = output_dir(oc.options, config.config_dir); !dir.empty()) disks_.push_back({label, dir});
  }
  if (journal_) disks_.push_back({"journal", journal_->dir()});
  names_ = names;
}

void OutputDispatcher::release_unconfigured_outputs() {
  if (journal_) journal_->release_cursors_except(names_);
}

OutputDispatcher::~OutputDispatcher() { stop(); }

void OutputDispatcher::start() {
  for (auto &o : outputs_)
    o->start();
  thread_ = std::thread([this] {
    name_this_thread("sink-records");
    run();
  });
}

void OutputDispatcher::request_reopen() {
  for (auto &o : outputs_)
    o->request_reopen();
}

void OutputDispatcher::submit(std::vector<OutputWorker::Item> &items) {
  for (auto &o : outputs_)
    o->submit(items);
  items.clear();
}

void OutputDispatcher::journal_and_submit(bool force) {
  if (held_records_.empty()) return;
  uint64_t first = 0;
  size_t count = 0;
  std::string error;
  const auto result = journal_->append(held_records_, &count, &first, force, &error);
  // What went in goes out to the outputs.
  if (count > 0) {
    std::vector<OutputWorker::Item> items;
    items.reserve(count);
    for (size_t i = 0; i < count; ++i)
      items.push_back({first + i, std::make_shared<const Record>(std::move(held_records_[i]))});
    if (count == held_records_.size())
      held_records_.clear(); // the common case; keeps the capacity
    else
      held_records_.erase(held_records_.begin(), held_records_.begin() + static_cast<std::ptrdiff_t>(count));
    submit(items);
    journal_->set_handed_seq(first + count);
  }
  held_ = held_records_.size();
  if (held_records_.empty()) {
    if (full_logged_ || append_failed_) logger_.info("journal: records go in again; accepting resumes");
    full_logged_ = append_failed_ = false;
    every_output_full_ = false;
    return;
  }
  // No room (or the disk refused): hold the rest in memory and pause
  // accepting (the kernel queues new connections) until an output makes room.
  if (!every_output_full_) ++pauses_;
  every_output_full_ = true;
  const bool failed = result == Journal::Append::kFailed || !error.empty();
  if (failed && !append_failed_)
    logger_.error("journal: " + error + "; records are held in memory and accepting pauses until it works");
  if (!failed && !full_logged_)
    logger_.error("journal: full (" + std::to_string(journal_->bytes()) + " of " +
                  std::to_string(journal_->limit()) + " bytes" +
                  (journal_->limit() < journal_->max_bytes() ? ", all its disk has room for" : "") +
                  ", no output has moved past its oldest part); accepting pauses until an output "
                  "catches up");
  append_failed_ = append_failed_ || failed;
  full_logged_ = full_logged_ || !failed;
}

void OutputDispatcher::run() {
  std::vector<Record> batch;
  std::vector<OutputWorker::Item> items;
  bool open = true;
  while (open && !abandoned_) {
    check_disks();
    open = queue_.pop_all(batch, kQueueWait);
    for (auto &r : batch) {
      // Analyzers run before the journal and any output see the record, so
      // every output (and any retry, and any restart) gets the same extras.
      if (!analyzers_.empty()) analyzers_.run(r);
    }
    if (journal_) {
      for (auto &r : batch)
        held_records_.push_back(std::move(r));
      batch.clear();
      journal_and_submit(false);
      journal_->sync_if_due();
      continue;
    }
    items.reserve(batch.size());
    for (auto &r : batch)
      items.push_back({next_seq_++, std::make_shared<const Record>(std::move(r))});
    batch.clear();
    submit(items);
    // A lagging output skips its oldest records only while another output
    // keeps up; when none does, nothing is skipped: the network side pauses
    // accepting until one catches up (checked at least every kQueueWait).
    bool any_keeps_up = false;
    for (auto &o : outputs_)
      any_keeps_up = any_keeps_up || !o->backlog_full();
    if (any_keeps_up)
      for (auto &o : outputs_)
        o->skip_beyond_backlog();
    if (!any_keeps_up && !every_output_full_) ++pauses_;
    every_output_full_ = !any_keeps_up;
  }
  // Stopping: what is still held goes into the journal even beyond its
  // bound, so the next start delivers it.
  if (journal_ && !abandoned_) {
    journal_and_submit(true);
    if (!held_records_.empty()) {
      logger_.error("journal: " + std::to_string(held_records_.size()) +
                    " records could not be journalled at exit and are lost (counted lost for every output)");
      for (auto &o : outputs_)
        o->count_given_up(held_records_.size());
    }
  }
  for (auto &o : outputs_)
    o->close();
}

bool OutputDispatcher::stop() {
  if (stopped_) return true;
  stopped_ = true;
  queue_.close();
  // Wait for the drain. A second signal cuts it short even while a plugin
  // call blocks; an output that makes no progress for kStallLimit is given
  // up on by itself, so one hung output cannot keep the process alive.
  using Clock = std::chrono::steady_clock;
  struct Progress {
    uint64_t outstanding;
    Clock::time_point since;
    bool given_up = false;
  };
  std::vector<Progress> progress;
  for (auto &o : outputs_)
    progress.push_back({o->outstanding(), Clock::now()});
  bool announced = false;
  Clock::time_point announced_at{};
  while (thread_.joinable()) {
    if (abandoned_ && !announced) {
      announced = true;
      announced_at = Clock::now();
      uint64_t left = queue_.size() + held_;
      for (auto &o : outputs_) {
        o->abandon();
        if (!journal_) left += o->outstanding();
      }
      if (journal_)
        logger_.error(
            "second signal: exiting now; " + std::to_string(left) +
            " records not yet in the journal are lost, the journal keeps the rest for the next start");
      else
        logger_.error("second signal: exiting without writing " + std::to_string(left) + " queued records");
    }
    bool waiting = false;
    for (size_t i = 0; i < outputs_.size(); ++i) {
      auto &o = *outputs_[i];
      auto &p = progress[i];
      if (o.finished() || p.given_up) continue;
      waiting = true;
      const uint64_t now_outstanding = o.outstanding();
      if (now_outstanding != p.outstanding) {
        p = {now_outstanding, Clock::now()};
      } else if (Clock::now() - p.since >= kStallLimit) {
        p.given_up = true;
        o.abandon();
        logger_.error(o.label() + ": no progress for " + std::to_string(kStallLimit.count()) +
                      " s while stopping; giving up on it");
      }
    }
    if (!waiting || (announced && Clock::now() - announced_at > kAbandonGrace)) break;
    std::this_thread::sleep_for(kAbandonPoll);
  }
  if (thread_.joinable()) thread_.join();
  bool clean = true;
  for (auto &o : outputs_) {
    if (auto report = o->loss_report(); !report.empty()) logger_.error(report);
    if (auto report = o->journal_report(); !report.empty()) logger_.warn(report);
    o->release();
    clean = clean && o->finished();
  }
  return clean;
}

void OutputDispatcher::check_disks() {
  const auto now = std::chrono::steady_clock::now();
  if (now - disks_checked_ < kDiskCheck) return;
  disks_checked_ = now;
  std::lock_guard<std::mutex> lock(disks_mutex_);
  for (auto &d : disks_) {
    struct statvfs fs {};
    if (::statvfs(d.dir.c_str(), &fs) != 0) continue;
    d.size_bytes = uint64_t(fs.f_blocks) * fs.f_frsize;
    d.free_bytes = uint64_t(fs.f_bavail) * fs.f_frsize;
    const bool low = d.free_bytes < std::min(d.size_bytes / 100 * kLowDiskShare, kLowDiskCap);
    if (low && !d.low)
      logger_.warn("disk: " + d.what + " writes to \"" + d.dir + "\", which has " +
                   std::to_string(d.free_bytes) + " of " + std::to_string(d.size_bytes) +
                   " bytes free; make room before it is full");
    else if (!low && d.low)
      logger_.info("disk: \"" + d.dir + "\" (" + d.what + ") has room again (" +
                   std::to_string(d.free_bytes) + " bytes free)");
    d.low = low;
  }
}

std::vector<OutputDispatcher::DiskState> OutputDispatcher::disks() const {
  std::lock_guard<std::mutex> lock(disks_mutex_);
  return disks_;
}

std::string OutputDispatcher::stats() const {
  std::string s = "queue=" + std::to_string(queue_.size() + held_);
  if (journal_)
    s += " journal_records=" + std::to_string(journal_->records()) +
         " journal_bytes=" + std::to_string(journal_->bytes());
  for (const auto &o : outputs_)
    s += " | " + o->stats();
  return s + analyzers_.stats();
}

} // namespace sink
