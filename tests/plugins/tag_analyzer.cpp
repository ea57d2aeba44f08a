// An ABI 1.1 analyzer for tests: adds one extra of every value type,
// including text with a NUL byte, bytes with 0x00 and 0xff, and text that is
// not UTF-8, under the prefix given in its options; and counts the extras it
// saw, so tests can check that analyzers run in order on the same record.
#include <sink/plugin.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace {

struct Tagger {
  std::string prefix;
};

int create(const sink_create_args *args, void **instance) noexcept try {
  auto opts = nlohmann::json::parse(args->config_json);
  *instance = std::make_unique<Tagger>(Tagger{opts.value("prefix", "test")}).release();
  return SINK_OK;
} catch (...) {
  std::snprintf(args->error, args->error_size, "tag: bad options");
  return SINK_ERR_CONFIG;
}

int analyze(void *instance, const sink_record *r, const sink_extra_writer *w) noexcept try {
  const std::string p = static_cast<Tagger *>(instance)->prefix + ".";
  static const char kNul[] = {'a', '\0', 'b'};
  static const uint8_t kBytes[] = {0x00, 0xff, 0x41};
  static const char kNotUtf8[] = {'\xff', '\xfe'};
  sink_add_string(w, (p + "nul").c_str(), kNul, sizeof kNul);
  sink_add_bytes(w, (p + "bytes").c_str(), kBytes, sizeof kBytes);
  sink_add_string(w, (p + "not_utf8").c_str(), kNotUtf8, sizeof kNotUtf8);
  sink_add_bool(w, (p + "bool").c_str(), 1);
  sink_add_int(w, (p + "int").c_str(), -42);
  sink_add_float(w, (p + "float").c_str(), 0.000055533);
  sink_add_int(w, (p + "seen").c_str(), static_cast<int64_t>(r->values_count));
  w->add(w->ctx, (p + "text").c_str(), "back\\slash\ttab");
  return SINK_OK;
} catch (...) {
  return SINK_ERR;
}

void destroy(void *instance) noexcept { std::unique_ptr<Tagger>(static_cast<Tagger *>(instance)); }

const sink_analyzer_ops kOps{sizeof(sink_analyzer_ops), create, analyze, destroy};
const sink_plugin_descriptor kDescriptor{sizeof(sink_plugin_descriptor),
                                         SINK_ABI_MAJOR,
                                         1,
                                         SINK_PLUGIN_ANALYZER,
                                         "tag",
                                         "1.0.0",
                                         "adds an extra of every type (tests)",
                                         nullptr,
                                         nullptr,
                                         &kOps};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
