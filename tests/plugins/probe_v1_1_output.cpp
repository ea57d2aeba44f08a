// An ABI 1.1 output that writes every 1.1 record field it can see as one
// JSON line, so tests can check what the host fills in.
#include <sink/plugin.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace {

std::string hex(const uint8_t *data, size_t len) {
  static const char *d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < len; ++i) {
    out += d[data[i] >> 4];
    out += d[data[i] & 15];
  }
  return out;
}

struct Probe {
  FILE *file;
  std::string config_dir;
};

int create(const sink_create_args *args, void **instance) noexcept try {
  auto opts = nlohmann::json::parse(args->config_json);
  const std::string path = opts.value("path", "");
  FILE *f = std::fopen(path.c_str(), "a");
  if (!f) {
    std::snprintf(args->error, args->error_size, "probe_v1_1: cannot open \"%s\"", path.c_str());
    return SINK_ERR_CONFIG;
  }
  *instance = std::make_unique<Probe>(Probe{f, args->config_dir ? args->config_dir : "(null)"}).release();
  return SINK_OK;
} catch (...) {
  return SINK_ERR;
}

int write(void *instance, const sink_record *r) noexcept try {
  auto *p = static_cast<Probe *>(instance);
  if (r->struct_size < offsetof(sink_record, value_size) + sizeof r->value_size) return SINK_ERR;
  nlohmann::ordered_json j;
  j["remote_port"] = r->remote_port;
  j["local_port"] = r->local_port;
  j["listen_port"] = r->listen_port;
  j["sensor"] = r->sensor;
  j["id"] = r->id;
  j["first_read_len"] = r->first_read_len;
  j["wire_hex"] = hex(r->wire, r->wire_len);
  j["wire_is_null"] = r->wire == nullptr;
  j["value_size"] = r->value_size;
  j["config_dir"] = p->config_dir;
  auto values = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r->values_count; ++i) {
    const sink_value_extra *v = sink_record_value(r, i);
    values.push_back({{"key", v->key},
                      {"type", static_cast<int>(v->type)},
                      {"hex", hex(v->bytes, v->len)},
                      {"integer", v->integer},
                      {"number", v->number},
                      {"struct_size", v->struct_size}});
  }
  j["values"] = values;
  const std::string line = j.dump() + "\n";
  return std::fwrite(line.data(), 1, line.size(), p->file) == line.size() ? SINK_OK : SINK_ERR_IO;
} catch (...) {
  return SINK_ERR;
}

int flush(void *instance) noexcept {
  return std::fflush(static_cast<Probe *>(instance)->file) == 0 ? SINK_OK : SINK_ERR_IO;
}

void destroy(void *instance) noexcept {
  std::unique_ptr<Probe> p(static_cast<Probe *>(instance));
  std::fclose(p->file);
}

const sink_output_ops kOps{sizeof(sink_output_ops), create, write, flush, nullptr, destroy};
const sink_plugin_descriptor kDescriptor{sizeof(sink_plugin_descriptor),
                                         SINK_ABI_MAJOR,
                                         1,
                                         SINK_PLUGIN_OUTPUT,
                                         "probe_v1_1",
                                         "1.1.0",
                                         "writes every ABI 1.1 record field",
                                         &kOps,
                                         nullptr,
                                         nullptr};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
