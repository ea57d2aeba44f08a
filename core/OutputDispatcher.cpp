#include "OutputDispatcher.h"

#include "ConfigValidation.h"

namespace sink {

std::atomic<bool> OutputDispatcher::abandoned_{false};

namespace {
// How long the output thread waits for records before retrying pending ones.
constexpr auto kRetryInterval = std::chrono::milliseconds(500);
} // namespace

OutputDispatcher::OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger,
                                   RecordQueue &queue)
    : logger_(logger), queue_(queue) {
  outputs_.reserve(config.outputs.size());
  for (size_t i = 0; i < config.outputs.size(); ++i) {
    const auto &oc = config.outputs[i];
    const std::string where = plugin_location(config, oc.line, "outputs", i, oc.plugin);
    const LoadedPlugin *p = nullptr;
    try {
      p = &loader.load(oc.plugin, SINK_PLUGIN_OUTPUT);
    } catch (const PluginError &e) {
      throw PluginError(where + ": " + e.what());
    }
    auto o = std::make_unique<Output>();
    o->label = "output " + std::string(p->descriptor->name);
    o->ops = p->descriptor->output;
    o->ctx = std::make_unique<sink_host_ctx>(sink_host_ctx{&logger, o->label});
    outputs_.push_back(std::move(o));
    auto &added = *outputs_.back();
    added.instance = create_plugin_instance(added.ops->create, *added.ctx, oc.options.dump(), where);
  }
}

OutputDispatcher::~OutputDispatcher() { stop(); }

void OutputDispatcher::start() {
  thread_ = std::thread([this] { run(); });
}

void OutputDispatcher::stop() {
  queue_.close();
  if (thread_.joinable()) thread_.join();
  if (stopped_) return;
  stopped_ = true;
  for (auto &o : outputs_) {
    const uint64_t missing = o->lost + o->pending.size();
    if (missing)
      logger_.error(o->label + ": " + std::to_string(missing) + " records could not be written (" +
                    std::to_string(o->lost) + " dropped while failing, " + std::to_string(o->pending.size()) +
                    " still pending at exit)");
  }
}

std::string OutputDispatcher::stats() const {
  std::string s = "queue=" + std::to_string(queue_.size());
  for (const auto &o : outputs_)
    s += " | " + o->label + " written=" + std::to_string(o->written) +
         " failed=" + std::to_string(o->failures) + " pending=" + std::to_string(o->pending_count) +
         " lost=" + std::to_string(o->lost);
  return s;
}

void OutputDispatcher::check(Output &o, int rc, const char *what) {
  if (rc == SINK_OK) {
    if (o.failing)
      logger_.warn(o.label + ": " + what + " works again after " + std::to_string(o.failures) + " failures");
    o.failing = false;
    return;
  }
  ++o.failures;
  // Log the first failure of a run of failures, not every record.
  if (!o.failing) logger_.error(o.label + ": " + what + " failed (code " + std::to_string(rc) + ")");
  o.failing = true;
}

bool OutputDispatcher::write_one(Output &o, const sink_record &view) {
  const int rc = o.ops->write(o.instance, &view);
  check(o, rc, "write");
  if (rc == SINK_OK) ++o.written;
  return rc == SINK_OK;
}

void OutputDispatcher::retry_pending(Output &o) {
  std::vector<sink_extra> scratch;
  while (!o.pending.empty() && write_one(o, o.pending.front()->view(scratch)))
    o.pending.pop_front();
  o.pending_count = o.pending.size();
}

void OutputDispatcher::deliver(Record &&record) {
  // One view for every output; the record is copied to the heap only if
  // some output has to keep it for a retry.
  std::vector<sink_extra> scratch;
  const sink_record view = record.view(scratch);
  std::shared_ptr<const Record> kept;
  for (auto &o : outputs_) {
    retry_pending(*o);
    // Keep record order per output: nothing overtakes what is pending.
    if (o->pending.empty() && write_one(*o, view)) continue;
    if (!kept) kept = std::make_shared<const Record>(record);
    o->pending.push_back(kept);
    if (o->pending.size() > kMaxPending) {
      o->pending.pop_front();
      ++o->lost;
    }
    o->pending_count = o->pending.size();
  }
}

void OutputDispatcher::run() {
  std::deque<Record> batch;
  bool open = true;
  while (open && !abandoned_) {
    open = queue_.pop_all(batch, kRetryInterval);
    if (reopen_requested_.exchange(false))
      for (auto &o : outputs_)
        if (o->ops->reopen) check(*o, o->ops->reopen(o->instance), "reopen");
    size_t done = 0;
    for (auto &r : batch) {
      if (abandoned_) break;
      deliver(std::move(r));
      ++done;
    }
    if (abandoned_) {
      const size_t left = batch.size() - done + queue_.size();
      logger_.error("second signal: exiting without writing " + std::to_string(left) + " queued records");
    }
    batch.clear();
    for (auto &o : outputs_) {
      retry_pending(*o);
      // The queue ran dry: let buffered outputs reach the OS now.
      check(*o, o->ops->flush(o->instance), "flush");
    }
  }
}

} // namespace sink
