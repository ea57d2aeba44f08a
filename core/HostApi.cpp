#include "HostApi.h"

#include "PluginLoader.h"

namespace sink {
namespace {

void host_log(sink_host_ctx *ctx, sink_log_level level, const char *message) {
  if (!ctx || !ctx->logger || !message) return;
  ctx->logger->log(level, "[" + ctx->label + "] " + message);
}

const sink_host_api kHostApi{sizeof(sink_host_api), SINK_ABI_MAJOR, SINK_ABI_MINOR, host_log};

} // namespace

const sink_host_api &host_api() { return kHostApi; }

void *create_plugin_instance(int (*create)(const sink_create_args *, void **), sink_host_ctx &ctx,
                             const std::string &config_json, const std::string &where, const char *group,
                             size_t capture_bytes) {
  char error[512] = "";
  sink_create_args args{sizeof(sink_create_args),
                        &kHostApi,
                        &ctx,
                        config_json.c_str(),
                        error,
                        sizeof error,
                        group,
                        capture_bytes};
  void *instance = nullptr;
  int rc = create(&args, &instance);
  if (rc != SINK_OK)
    throw PluginError(where + ": " + (error[0] ? error : "create failed with code " + std::to_string(rc)));
  return instance;
}

} // namespace sink
