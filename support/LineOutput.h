#pragma once
// The shared body of line-oriented file outputs (CSV, JSON Lines): one line
// per record appended to an OutputFile, an optional header, a flush policy.
// Each plugin supplies its LineFormat and wires these into sink_output_ops.
//
// The ABI 1.1 output contract, for files: write stages the line (and with
// `flush: true` hands it to the OS at once); flush hands everything staged
// to the OS. A failed write takes its own line back; a failed flush cuts the
// file back to the last successful flush, since the host writes every
// record since then again. Only whole lines ever stay in a regular file.
#include <sink/plugin.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sink::plugin {

struct LineFormat {
  // Appends the record's line, newline included, to out.
  std::function<void(const sink_record &record, std::string &out)> line;
  std::optional<std::string> header;      // none: the format has no "header" option
  std::vector<const char *> more_options; // options the format itself reads
};

// Makes the format from the options (it may read its own, listed in
// more_options); throws OptionError. Called inside create.
using LineFormatFactory = LineFormat (*)(const char *config_json);

// Options: path ("-" = stdout, default), flush (default true), and header
// (default false) when the format has one.
int line_output_create(const sink_create_args *args, void **instance, LineFormatFactory make_format) noexcept;
int line_output_write(void *instance, const sink_record *record) noexcept;
int line_output_flush(void *instance) noexcept;
int line_output_reopen(void *instance) noexcept;
void line_output_destroy(void *instance) noexcept;

} // namespace sink::plugin
