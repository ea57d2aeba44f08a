// outputs/jsonl: one JSON object per record, every field of the record.
#include <sink/plugin.h>

#include "LineOutput.h"
#include "RecordFormat.h"

namespace {

sink::plugin::LineFormat jsonl_format(const char *) {
  return {
      [](const sink_record &r, std::string &out) { out += sink::format::jsonl_line(r); }, std::nullopt, {}};
}

int jsonl_create(const sink_create_args *args, void **instance) noexcept {
  return sink::plugin::line_output_create(args, instance, jsonl_format);
}

const sink_output_ops kOps{
    sizeof(sink_output_ops),          jsonl_create,
    sink::plugin::line_output_write,  sink::plugin::line_output_flush,
    sink::plugin::line_output_reopen, sink::plugin::line_output_destroy,
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    0, // runs on 1.0 hosts too; uses typed extras where the record has them
    SINK_PLUGIN_OUTPUT,
    "jsonl",
    "1.0.0",
    "JSON Lines with every record field and transport extras",
    &kOps,
    nullptr,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
