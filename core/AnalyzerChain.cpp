#include "AnalyzerChain.h"

#include "ConfigValidation.h"
#include "CrashReporter.h"

namespace sink {

AnalyzerChain::AnalyzerChain(const Config &config, PluginLoader &loader, Logger &logger) : logger_(logger) {
  for (size_t i = 0; i < config.analyzers.size(); ++i) {
    const auto &ac = config.analyzers[i];
    const std::string where = plugin_location(config, ac.line, "analyzers", i, ac.plugin);
    const LoadedPlugin *p = &loader.load_for(where, ac.plugin, SINK_PLUGIN_ANALYZER);
    auto a = std::make_unique<Analyzer>();
    a->label = "analyzer " + std::string(p->descriptor->name);
    a->ops = p->descriptor->analyzer;
    a->ctx = std::make_unique<sink_host_ctx>(&logger, a->label);
    analyzers_.push_back(std::move(a));
    auto &added = *analyzers_.back();
    added.instance =
        create_plugin_instance(added.ops->create, *added.ctx, ac.options.dump(), where, config.config_dir);
  }
}

AnalyzerChain::~AnalyzerChain() = default;

void AnalyzerChain::run(Record &r) {
  ExtraCollector extras(r, false);
  for (auto &a : analyzers_) {
    // Each analyzer sees what the transport and earlier analyzers added.
    view_.build(r);
    int rc;
    {
      PluginCallScope scope(a->label.c_str(), nullptr, 0, r.id.data());
      rc = a->ops->analyze(a->instance, &view_.get(), extras.writer());
    }
    if (rc == SINK_OK) {
      if (a->failing)
        logger_.info(a->label + ": works again after " + std::to_string(a->failures) + " failures");
      a->failing = false;
      continue;
    }
    ++a->failures;
    if (!a->failing)
      logger_.error(a->label + ": analyze failed (code " + std::to_string(rc) +
                    "); records go on without its extras");
    a->failing = true;
  }
}

std::string AnalyzerChain::stats() const {
  std::string s;
  for (const auto &a : analyzers_)
    s += " | " + a->label + " failed=" + std::to_string(a->failures);
  return s;
}

} // namespace sink
