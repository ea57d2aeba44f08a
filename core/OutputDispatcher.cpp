#include "OutputDispatcher.h"

namespace sink {

OutputDispatcher::OutputDispatcher(const Config &config, PluginLoader &loader, Logger &logger,
                                   RecordQueue &queue)
    : logger_(logger), queue_(queue) {
  outputs_.reserve(config.outputs.size());
  for (size_t i = 0; i < config.outputs.size(); ++i) {
    const auto &oc = config.outputs[i];
    std::string where = config.source + (oc.line ? ":" + std::to_string(oc.line) : "") + ": outputs[" +
                        std::to_string(i) + "] (" + oc.plugin + ")";
    const LoadedPlugin *p = nullptr;
    try {
      p = &loader.load(oc.plugin, SINK_PLUGIN_OUTPUT);
    } catch (const PluginError &e) {
      throw PluginError(where + ": " + e.what());
    }
    Output o;
    o.label = "output " + std::string(p->descriptor->name);
    o.ops = p->descriptor->output;
    o.ctx = std::make_unique<sink_host_ctx>(sink_host_ctx{&logger, o.label});
    o.instance = create_plugin_instance(o.ops->create, *o.ctx, oc.options.dump(), where);
    outputs_.push_back(std::move(o));
  }
}

OutputDispatcher::~OutputDispatcher() {
  stop();
  for (auto &o : outputs_)
    o.ops->destroy(o.instance);
}

void OutputDispatcher::start() {
  thread_ = std::thread([this] { run(); });
}

void OutputDispatcher::stop() {
  queue_.close();
  if (thread_.joinable()) thread_.join();
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

void OutputDispatcher::deliver(const Record &r) {
  std::vector<sink_extra> scratch;
  sink_record view = r.view(scratch);
  for (auto &o : outputs_)
    check(o, o.ops->write(o.instance, &view), "write");
  ++written_;
}

void OutputDispatcher::run() {
  std::deque<Record> batch;
  while (queue_.pop_all(batch)) {
    if (reopen_requested_.exchange(false))
      for (auto &o : outputs_)
        if (o.ops->reopen) check(o, o.ops->reopen(o.instance), "reopen");
    for (const auto &r : batch)
      deliver(r);
    batch.clear();
    // The queue ran dry: let buffered outputs reach the OS now.
    for (auto &o : outputs_)
      check(o, o.ops->flush(o.instance), "flush");
  }
  for (auto &o : outputs_)
    check(o, o.ops->flush(o.instance), "flush");
}

} // namespace sink
