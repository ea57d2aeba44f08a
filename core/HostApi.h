#pragma once
// The services table handed to plugins, and the per-instance context that
// tells the host which plugin is speaking.
#include <sink/plugin.h>

#include <atomic>
#include <string>

#include "Logger.h"

struct sink_host_ctx {
  sink_host_ctx(sink::Logger *l, std::string name) : logger(l), label(std::move(name)) {}
  sink::Logger *logger;
  std::string label; // e.g. "output csv" or "transport tcp (group web)"
  // Set when the plugin logs an error itself: the host then need not add a
  // vaguer line of its own about the same failure.
  std::atomic<bool> error_logged{false};
};

namespace sink {

const sink_host_api &host_api();

// What a transport instance serves; outputs and analyzers pass none.
struct TransportScope {
  const char *group = nullptr;
  size_t capture_bytes = 0;
  uint32_t worker = 0;
};

// Calls a plugin's create with a host context and an error buffer. Throws
// PluginError("<where>: <plugin's message>") when it fails.
void *create_plugin_instance(int (*create)(const sink_create_args *, void **), sink_host_ctx &ctx,
                             const std::string &config_json, const std::string &where,
                             const std::string &config_dir, const TransportScope &scope = {});

} // namespace sink
