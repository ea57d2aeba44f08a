#pragma once
// The configured analyzer plugins (ABI 1.1), run on every record in config
// order on the record thread, before any output sees it. Analyzers only add
// typed extras; a failing analyzer is logged once per run of failures and
// the record goes on unchanged.
#include <sink/plugin.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "Config.h"
#include "HostApi.h"
#include "Logger.h"
#include "PluginLoader.h"
#include "Record.h"

namespace sink {

class AnalyzerChain {
public:
  // Loads and creates every analyzer; throws PluginError naming the entry.
  AnalyzerChain(const Config &config, PluginLoader &loader, Logger &logger);
  ~AnalyzerChain();
  AnalyzerChain(const AnalyzerChain &) = delete;
  AnalyzerChain &operator=(const AnalyzerChain &) = delete;

  bool empty() const { return analyzers_.empty(); }
  // Runs every analyzer on r, adding their extras to it.
  void run(Record &r);
  std::string stats() const;

private:
  struct Analyzer {
    std::string label;
    const sink_analyzer_ops *ops;
    std::unique_ptr<sink_host_ctx> ctx;
    void *instance = nullptr;
    bool failing = false;
    std::atomic<uint64_t> failures{0};
    ~Analyzer() {
      if (instance) ops->destroy(instance);
    }
  };
  Logger &logger_;
  std::vector<std::unique_ptr<Analyzer>> analyzers_;
  RecordView view_;
};

} // namespace sink
