// outputs/csv: the original sink's CSV, byte for byte; or, with the
// `columns:` option, any record fields and extras (extra:KEY) in any order.
#include <sink/plugin.h>

#include "LineOutput.h"
#include "PluginOptions.h"
#include "RecordFormat.h"

namespace {

sink::plugin::LineFormat csv_format(const char *config_json) {
  namespace fmt = sink::format;
  sink::plugin::PluginOptions opts(config_json);
  const auto names = opts.strings("columns", {});
  if (names.empty()) // the original's eight columns, byte for byte
    return {[](const sink_record &r, std::string &out) { fmt::csv_row_to(out, r); },
            fmt::csv_header(),
            {"columns"}};
  std::vector<fmt::CsvColumn> columns;
  for (const auto &n : names) {
    std::string why;
    if (!fmt::valid_csv_column(n, &why)) throw sink::plugin::OptionError("option \"columns\": " + why);
    columns.push_back({n});
  }
  return {[columns](const sink_record &r, std::string &out) { out += fmt::csv_row(r, columns); },
          fmt::csv_header(columns),
          {"columns"}};
}

int csv_create(const sink_create_args *args, void **instance) noexcept {
  return sink::plugin::line_output_create(args, instance, csv_format);
}

const sink_output_ops kOps{
    sizeof(sink_output_ops),          csv_create,
    sink::plugin::line_output_write,  sink::plugin::line_output_flush,
    sink::plugin::line_output_reopen, sink::plugin::line_output_destroy,
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    0, // needs nothing newer than ABI 1.0 (1.1 columns are empty on a 1.0 host)
    SINK_PLUGIN_OUTPUT,
    "csv",
    "1.1.0",
    "CSV rows compatible with the original sink, or chosen columns",
    &kOps,
    nullptr,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
