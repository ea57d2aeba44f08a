// payload_entropy: a third-party sink analyzer. Adds the Shannon entropy of
// the bytes a connection delivered (its captured payload; for TLS, the
// decrypted application data) as `entropy.bits_per_byte` (FLOAT, 0..8,
// rounded to 4 decimals) and how many bytes it looked at as `entropy.bytes`
// (INT). Records with fewer than `min_bytes` (option, default 1) captured
// bytes get no extras.
//
//   analyzers:
//     - plugin: /path/to/payload_entropy.so
//       min_bytes: 16
#include <sink/plugin.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

namespace {

struct Entropy {
  uint64_t min_bytes = 1;
};

int create(const sink_create_args *args, void **instance) noexcept try {
  const auto opts = nlohmann::json::parse(args->config_json);
  auto e = std::make_unique<Entropy>();
  for (auto it = opts.begin(); it != opts.end(); ++it) {
    if (it.key() != "min_bytes") {
      std::snprintf(args->error, args->error_size, "unknown option \"%s\" (expected min_bytes)",
                    it.key().c_str());
      return SINK_ERR_CONFIG;
    }
    if (!it->is_number_unsigned() || it->get<uint64_t>() == 0) {
      std::snprintf(args->error, args->error_size, "option \"min_bytes\" must be a positive integer");
      return SINK_ERR_CONFIG;
    }
    e->min_bytes = it->get<uint64_t>();
  }
  *instance = e.release();
  return SINK_OK;
} catch (...) {
  std::snprintf(args->error, args->error_size, "payload_entropy: bad options");
  return SINK_ERR_CONFIG;
}

// Runs on the record thread, before the journal and every output: keep it cheap.
int analyze(void *instance, const sink_record *r, const sink_extra_writer *w) noexcept {
  const auto *e = static_cast<const Entropy *>(instance);
  if (r->captured_len == 0 || r->captured_len < e->min_bytes) return SINK_OK;
  std::array<uint64_t, 256> counts{};
  for (size_t i = 0; i < r->captured_len; ++i)
    ++counts[r->payload[i]];
  const double n = static_cast<double>(r->captured_len);
  double bits = 0;
  for (uint64_t c : counts)
    if (c) bits -= (static_cast<double>(c) / n) * std::log2(static_cast<double>(c) / n);
  bits = std::round(bits * 10000.0) / 10000.0 + 0.0; // + 0.0: never -0
  sink_add_float(w, "entropy.bits_per_byte", bits);
  sink_add_int(w, "entropy.bytes", static_cast<int64_t>(r->captured_len));
  return SINK_OK;
}

void destroy(void *instance) noexcept { std::unique_ptr<Entropy>(static_cast<Entropy *>(instance)); }

const sink_analyzer_ops kOps = {sizeof(sink_analyzer_ops), create, analyze, destroy};
const sink_plugin_descriptor kDescriptor = {sizeof(sink_plugin_descriptor),
                                            SINK_ABI_MAJOR,
                                            1, // analyzers need ABI 1.1
                                            SINK_PLUGIN_ANALYZER,
                                            "payload_entropy",
                                            "1.0.0",
                                            "Shannon entropy of the captured payload",
                                            nullptr,
                                            nullptr,
                                            &kOps};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
