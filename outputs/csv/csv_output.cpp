// outputs/csv: the original sink's CSV, byte for byte.
#include <sink/plugin.h>

#include "LineOutput.h"
#include "RecordFormat.h"

namespace {

const sink::plugin::LineFormat kCsv{&sink::format::csv_row, &sink::format::csv_header()};

int csv_create(const sink_create_args *args, void **instance) noexcept {
  return sink::plugin::line_output_create(args, instance, kCsv);
}

const sink_output_ops kOps{
    sizeof(sink_output_ops),          csv_create,
    sink::plugin::line_output_write,  sink::plugin::line_output_flush,
    sink::plugin::line_output_reopen, sink::plugin::line_output_destroy,
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    0, // needs nothing newer than ABI 1.0
    SINK_PLUGIN_OUTPUT,
    "csv",
    "1.0.0",
    "CSV rows compatible with the original sink",
    &kOps,
    nullptr,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
