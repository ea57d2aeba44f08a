// analyzers/fet: the GFW's exemption rules for fully encrypted traffic (Wu et
// al., USENIX Security 2023, Algorithm 1) over each connection's first data
// packet, as extras `fet.*`. See docs/analyzers.md.
#include <sink/plugin.h>

#include "FetFeatures.h"
#include "FirstPacket.h"
#include "PluginOptions.h"

#include <memory>
#include <string>

namespace {

int fet_create(const sink_create_args *args, void **instance) noexcept try {
  const auto opts = nlohmann::json::parse(args->config_json ? args->config_json : "{}");
  if (!opts.is_object()) throw sink::plugin::OptionError("options are not a JSON object");
  if (!opts.empty())
    throw sink::plugin::OptionError("unknown option \"" + opts.begin().key() + "\" (fet takes no options)");
  *instance = nullptr; // stateless
  return SINK_OK;
} catch (const std::exception &e) {
  sink::plugin::set_create_error(args, e.what());
  return SINK_ERR_CONFIG;
} catch (...) {
  sink::plugin::set_create_error(args, "fet: create failed");
  return SINK_ERR;
}

void add_string(const sink_extra_writer *w, const char *key, const std::string &s) {
  sink_add_string(w, key, s.data(), s.size());
}

int fet_analyze(void *, const sink_record *r, const sink_extra_writer *w) noexcept try {
  const auto fp = sink::analyzers::first_packet(*r);
  if (fp.bytes.empty()) return SINK_OK; // no data: nothing to judge
  const auto f = sink::fet::compute(fp.bytes);
  using sink::fet::Features;
  sink_add_int(w, "fet.ascii_prefix", static_cast<int64_t>(f.ascii_prefix));
  sink_add_int(w, "fet.longest_ascii_run", static_cast<int64_t>(f.longest_ascii_run));
  sink_add_float(w, "fet.popcount", Features::round4(f.popcount_avg()));
  sink_add_float(w, "fet.ascii_fraction", Features::round4(f.ascii_fraction()));
  add_string(w, "fet.protocol", f.protocol);
  sink_add_bool(w, "fet.exempt", f.exempt());
  add_string(w, "fet.exempt_by", f.exempt_by_names());
  if (fp.partial) sink_add_bool(w, "fet.partial", 1);
  return SINK_OK;
} catch (...) {
  return SINK_ERR;
}

void fet_destroy(void *) noexcept {}

const sink_analyzer_ops kOps{sizeof(sink_analyzer_ops), fet_create, fet_analyze, fet_destroy};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    1, // analyzers need ABI 1.1
    SINK_PLUGIN_ANALYZER,
    "fet",
    "1.0.0",
    "GFW fully-encrypted-traffic exemption rules over the first packet",
    nullptr,
    nullptr,
    &kOps,
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
