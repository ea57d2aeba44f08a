// An output plugin built against the frozen ABI 1.0 header (tests/abi/v1_0),
// exactly as a third party built it before 1.1 existed. Every build loads it
// beside the current plugins to prove 1.0 plugins keep working unchanged.
// It writes one tab-separated line per record with every 1.0 field; strings
// and extras values are hex-encoded so no byte can break the line.
#include <sink/plugin.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#if SINK_ABI_MINOR != 0
#error "this plugin must be built against the frozen ABI 1.0 header"
#endif

namespace {

std::string hex(const void *data, size_t len) {
  static const char *d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = static_cast<const unsigned char *>(data)[i];
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}
std::string hex(const char *s) { return hex(s, std::strlen(s)); }

struct Frozen {
  FILE *file;
};

int create(const sink_create_args *args, void **instance) noexcept {
  // Options: {"path": "..."}; parsed by hand, a 1.0 plugin has no helpers.
  const char *at = std::strstr(args->config_json, "\"path\":\"");
  if (!at) {
    std::snprintf(args->error, args->error_size, "frozen_v1_0: option \"path\" is required");
    return SINK_ERR_CONFIG;
  }
  at += 8;
  std::string path(at, std::strcspn(at, "\""));
  FILE *f = std::fopen(path.c_str(), "a");
  if (!f) {
    std::snprintf(args->error, args->error_size, "frozen_v1_0: cannot open %s", path.c_str());
    return SINK_ERR_CONFIG;
  }
  *instance = new (std::nothrow) Frozen{f};
  return *instance ? SINK_OK : SINK_ERR;
}

int write(void *instance, const sink_record *r) noexcept {
  auto *fz = static_cast<Frozen *>(instance);
  std::string line = std::to_string(r->struct_size) + "\t" + std::to_string(r->accept_unix_ns) + "\t" +
                     std::to_string(r->duration_ns) + "\t" + hex(r->group) + "\t" + hex(r->transport) + "\t" +
                     r->local_ip + "\t" + std::to_string(r->local_port) + "\t" + r->remote_ip + "\t" +
                     std::to_string(r->remote_port) + "\t" + hex(r->payload, r->captured_len) + "\t" +
                     std::to_string(r->total_bytes) + "\t" + sink_close_reason_name(r->close_reason) + "\t" +
                     hex(r->close_detail);
  for (size_t i = 0; i < r->extras_count; ++i)
    line += std::string("\t") + r->extras[i].key + "=" + hex(r->extras[i].value);
  line += "\n";
  return std::fwrite(line.data(), 1, line.size(), fz->file) == line.size() ? SINK_OK : SINK_ERR_IO;
}

int flush(void *instance) noexcept {
  return std::fflush(static_cast<Frozen *>(instance)->file) == 0 ? SINK_OK : SINK_ERR_IO;
}

void destroy(void *instance) noexcept {
  std::unique_ptr<Frozen> fz(static_cast<Frozen *>(instance));
  std::fclose(fz->file);
}

const sink_output_ops kOps{sizeof(sink_output_ops), create, write, flush, nullptr, destroy};
const sink_plugin_descriptor kDescriptor{sizeof(sink_plugin_descriptor),
                                         SINK_ABI_MAJOR,
                                         SINK_ABI_MINOR,
                                         SINK_PLUGIN_OUTPUT,
                                         "frozen_v1_0",
                                         "1.0.0",
                                         "an ABI 1.0 output kept frozen for compatibility tests",
                                         &kOps,
                                         nullptr};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
