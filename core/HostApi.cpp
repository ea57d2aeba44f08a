#include "HostApi.h"

#include "PluginLoader.h"

namespace sink {
namespace {

void host_log(sink_host_ctx *ctx, sink_log_level level, const char *message) {
  if (!ctx || !ctx->logger || !message) return;
  if (level >= SINK_LOG_ERROR) ctx->error_logged = true;
  ctx->logger->log(level, "[" + ctx->label + "] " + message);
}

const sink_host_api kHostApi{sizeof(sink_host_api), SINK_ABI_MAJOR, SINK_ABI_MINOR, host_log};

} // namespace

const sink_host_api &host_api() { return kHostApi; }

void *create_plugin_instance(int (*create)(const sink_create_args *, void **), sink_host_ctx &ctx,
                             const std::string &config_json, const std::string &where,
                             const std::string &config_dir, const TransportScope &scope) {
  char error[512] = "";
  sink_create_args args{};
  args.struct_size = sizeof args;
  args.host = &kHostApi;
  args.host_ctx = &ctx;
  args.config_json = config_json.c_str();
  args.error = error;
  args.error_size = sizeof error;
  args.group = scope.group;
  args.capture_bytes = scope.capture_bytes;
  args.config_dir = config_dir.c_str();
  args.worker = scope.worker;
  void *instance = nullptr;
  int rc = create(&args, &instance);
  if (rc != SINK_OK)
    throw PluginError(where + ": " + (error[0] ? error : "create failed with code " + std::to_string(rc)));
  return instance;
}

} // namespace sink
