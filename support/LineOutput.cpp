#include "LineOutput.h"

#include <cerrno>
#include <cstring>
#include <memory>

#include "OutputFile.h"
#include "PluginOptions.h"

namespace sink::plugin {
namespace {

// Staged bytes handed to the OS before flush is called, to bound memory.
constexpr size_t kStageLimit = 256 * 1024;

struct LineOutput {
  LineOutput(LineFormat f, const std::string &path, bool with_header, const sink_create_args &args)
      : format(std::move(f)), file(path), header(with_header), host(args.host), ctx(args.host_ctx) {}
  LineFormat format;
  OutputFile file;
  bool header;
  const sink_host_api *host;
  sink_host_ctx *ctx;
  bool failing = false; // one log line per run of failures

  // Logs the first failure of a run, naming the path and the OS's reason.
  int failed(const char *what) {
    const int err = errno;
    if (!failing && host && host->log)
      host->log(ctx, SINK_LOG_ERROR,
                (std::string(what) + " to \"" + file.path() + "\" failed: " + std::strerror(err)).c_str());
    failing = true;
    return SINK_ERR_IO;
  }
  // Says so when opening cut off half a record left by a crash, or found
  // a file ending mid-line that sink did not write.
  void report_torn_tail() {
    if (file.ended_mid_line() && host && host->log)
      host->log(ctx, SINK_LOG_WARN,
                ("\"" + file.path() +
                 "\" does not end with a newline and sink did not write its last line: it is kept whole, "
                 "new records start after a newline")
                    .c_str());
    if (file.torn_bytes() && host && host->log)
      host->log(ctx, SINK_LOG_WARN,
                ("cut a torn last line of " + std::to_string(file.torn_bytes()) + " bytes from \"" +
                 file.path() +
                 "\" (half a record this sink was writing when it stopped), so new records start on a line "
                 "of their own")
                    .c_str());
  }
  // A file that starts empty gets the header first (also after rotation).
  bool write_header_if_empty() {
    if (!header || !file.was_empty()) return true;
    file.stage(*format.header);
    if (!file.write_out()) return false;
    file.commit();
    return true;
  }
};

} // namespace

int line_output_create(const sink_create_args *args, void **instance,
                       LineFormatFactory make_format) noexcept {
  try {
    PluginOptions opts(args->config_json);
    LineFormat format = make_format(args->config_json);
    std::vector<const char *> known{"path", "flush"};
    if (format.header) known.push_back("header");
    known.insert(known.end(), format.more_options.begin(), format.more_options.end());
    opts.only(known);
    std::string path = opts.string("path", "-");
    if (path.empty()) throw OptionError("option \"path\" must not be empty (use \"-\" for stdout)");
    path = resolve_option_path(*args, path);
    // flush: true and false both write each batch at the host's flush, in
    // one write, before the output thread sleeps; the key stays valid.
    opts.boolean("flush", true);
    const bool header = format.header && opts.boolean("header", false);
    auto out = std::make_unique<LineOutput>(std::move(format), path, header, *args);
    out->report_torn_tail();
    if (!out->write_header_if_empty())
      throw OptionError("cannot write to \"" + path + "\": " + std::strerror(errno));
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
  auto *out = static_cast<LineOutput *>(instance);
  try {
    // Formatted straight into the staged bytes: no string per record.
    const size_t before = out->file.staged();
    try {
      out->format.line(*record, out->file.staging());
    } catch (...) {
      out->file.unstage(out->file.staged() - before);
      throw;
    }
    const size_t line_size = out->file.staged() - before;
    // Lines go to the OS at flush (the host flushes each batch before its
    // thread sleeps): one write per batch, for flush: true as for false.
    if (out->file.staged() >= kStageLimit && !out->file.write_out()) {
      out->file.unstage(line_size); // the host retries this record itself
      return out->failed("write");
    }
    return SINK_OK;
  } catch (...) {
    return SINK_ERR;
  }
}

int line_output_flush(void *instance) noexcept {
  auto *out = static_cast<LineOutput *>(instance);
  if (!out->file.write_out()) {
    out->file.rollback(); // the host writes every record since the last flush again
    return out->failed("flush");
  }
  out->file.commit();
  if (out->failing && out->host && out->host->log)
    out->host->log(out->ctx, SINK_LOG_INFO, ("writing to \"" + out->file.path() + "\" works again").c_str());
  out->failing = false;
  return SINK_OK;
}

int line_output_reopen(void *instance) noexcept {
  auto *out = static_cast<LineOutput *>(instance);
  if (!out->file.reopen()) return out->failed("reopen");
  out->report_torn_tail();
  if (!out->write_header_if_empty()) return out->failed("header");
  return SINK_OK;
}

void line_output_destroy(void *instance) noexcept {
  std::unique_ptr<LineOutput> owned(static_cast<LineOutput *>(instance)); // closes the file
  // The host flushes before destroy; if that failed, lines that reached the
  // file since the last successful flush are reported as not written, so
  // they are cut back too: the file and the counts agree.
  owned->file.rollback();
}

} // namespace sink::plugin
