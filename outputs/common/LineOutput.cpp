#include "LineOutput.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "OutputFile.h"
#include "../../plugins/common/PluginOptions.h"

namespace sink::plugin {
namespace {

struct LineOutput {
  const LineFormat *format;
  OutputFile file;
  bool flush_each;
};

} // namespace

int line_output_create(const sink_create_args *args, void **instance, const LineFormat &format) noexcept {
  try {
    PluginOptions opts(args->config_json);
    if (format.header)
      opts.only({"path", "flush", "header"});
    else
      opts.only({"path", "flush"});
    const std::string path = opts.string("path", "-");
    if (path.empty()) throw OptionError("option \"path\" must not be empty (use \"-\" for stdout)");
    const bool flush = opts.boolean("flush", true);
    const bool header = format.header && opts.boolean("header", false);
    auto out = std::make_unique<LineOutput>(LineOutput{&format, OutputFile(path), flush});
    // Appending to a file that already has rows must not repeat the header.
    if (header && out->file.was_empty()) {
      if (!out->file.write(*format.header) || !out->file.flush())
        throw OptionError("cannot write to \"" + path + "\": " + std::strerror(errno));
    }
    *instance = out.release();
    return SINK_OK;
  } catch (const std::exception &e) {
    set_create_error(args, e.what());
    return SINK_ERR_CONFIG;
  } catch (...) {
    set_create_error(args, "unexpected failure");
    return SINK_ERR;
  }
}

int line_output_write(void *instance, const sink_record *record) noexcept {
  try {
    auto *out = static_cast<LineOutput *>(instance);
    if (!out->file.write(out->format->line(*record))) return SINK_ERR_IO;
    if (out->flush_each && !out->file.flush()) return SINK_ERR_IO;
    return SINK_OK;
  } catch (...) {
    return SINK_ERR;
  }
}

int line_output_flush(void *instance) noexcept {
  return static_cast<LineOutput *>(instance)->file.flush() ? SINK_OK : SINK_ERR_IO;
}

int line_output_reopen(void *instance) noexcept {
  return static_cast<LineOutput *>(instance)->file.reopen() ? SINK_OK : SINK_ERR_IO;
}

void line_output_destroy(void *instance) noexcept {
  std::unique_ptr<LineOutput> owned(static_cast<LineOutput *>(instance)); // closes the file
}

} // namespace sink::plugin
