#pragma once
// `sink collect`: reads records from a JetStream stream through a durable
// pull consumer and hands each to the configured outputs (the same plugins
// a sensor uses). A message is acknowledged only after every output
// confirmed its record (a successful flush), so a collector killed at any
// point loses nothing: JetStream delivers what was not acknowledged again,
// and the outputs deduplicate on the record id (postgresql: ON CONFLICT).
#include <memory>
#include <string>

#include "Config.h"
#include "Logger.h"
#include "PluginLoader.h"

namespace sink {

// Runs a collector until SIGINT/SIGTERM. Errors in the collect: block or the
// outputs throw PluginError before anything connects or listens.
class Collector {
public:
  Collector(const Config &config, PluginLoader &loader, Logger &logger);
  ~Collector();
  Collector(const Collector &) = delete;
  Collector &operator=(const Collector &) = delete;
  // Starts the outputs, the metrics endpoint and the consumer; returns when
  // a signal stopped it. False when an output was left stuck in a call.
  bool run();

private:
  struct State;
  std::unique_ptr<State> state_;
};

// Whether this build has NATS support (libnats) for `sink collect`.
bool collector_available();

} // namespace sink
