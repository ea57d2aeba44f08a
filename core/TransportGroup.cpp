#include "TransportGroup.h"

namespace sink {

TransportGroup::TransportGroup(const GroupConfig &cfg, const sink_plugin_descriptor &plugin, Logger &logger,
                               const std::string &where, const std::string &config_dir, uint32_t worker)
    : config(cfg), plugin_name(plugin.name), ops(plugin.transport),
      ctx(std::make_unique<sink_host_ctx>(&logger, "transport " + std::string(plugin_name) + " (group " +
                                                       cfg.name + ")")) {
  instance = create_plugin_instance(ops->create, *ctx, cfg.transport_options.dump(), where, config_dir,
                                    TransportScope{cfg.name.c_str(), cfg.capture_bytes, worker});
  idle = to_timeval(cfg.idle_timeout);
}

TransportGroup::~TransportGroup() { ops->destroy(instance); }

} // namespace sink
