// analyzers/replay: flags a first packet that arrived before (active probes
// replay what a real client sent), with when and from where it first came.
// See docs/analyzers.md.
#include <sink/plugin.h>

#include "Duration.h"
#include "FirstPacket.h"
#include "NoForeignLinks.h"
#include "PluginOptions.h"
#include "RecordFormat.h"
#include "ReplayTable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace {

using sink::plugin::OptionError;
using sink::replay::ReplayTable;

// ~1M keys in well under 128 MiB: see docs/analyzers.md for the measurement.
constexpr int64_t kDefaultMaxEntries = 1 << 20;
constexpr int64_t kMaxPrefixBytes = 1 << 20;

struct FileCloser {
  void operator()(std::FILE *f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string os_error(int err) { return std::strerror(err); }

// A new file only the owner can read: the state holds the salt that keeps
// the table's keys unguessable. Whatever is at path already (a temporary
// file left by a crash, with any mode, or a link) is removed first.
File create_private(const std::string &path) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return nullptr;
  File f(::fdopen(fd, "wb"));
  if (!f) {
    const int err = errno;
    ::close(fd);
    errno = err;
  }
  return f;
}

// The saved table, or null with *why set (empty when there is none). As
// root it follows no link and waits for no FIFO: the directory is one the
// user of a privilege drop writes, who could point root at any file.
File open_state(const std::string &path, std::string *why) {
  const int fd = sink::plugin::open_without_foreign_links(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *why = errno == ENOENT  ? ""
           : errno == ELOOP ? "a symbolic link root does not follow (it is not root's own)"
                            : os_error(errno);
    return nullptr;
  }
  struct stat st {};
  File f(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? ::fdopen(fd, "rb") : nullptr);
  if (!f) {
    *why = S_ISREG(st.st_mode) ? os_error(errno) : "not a regular file";
    ::close(fd);
  }
  return f;
}

struct Replay {
  const sink_host_api *host = nullptr;
  sink_host_ctx *ctx = nullptr;
  uint32_t prefix_bytes = 64;
  std::string state_path; // "" = no persistence
  std::chrono::nanoseconds save_interval{};
  std::chrono::steady_clock::time_point last_save;
  bool dirty = false;
  sink::replay::Salt salt{};
  std::unique_ptr<ReplayTable> table;

  void log(sink_log_level level, const std::string &msg) const {
    if (host && host->log) host->log(ctx, level, msg.c_str());
  }
  std::string temp_path() const { return state_path + ".tmp"; }

  // Writes the table to state_path.tmp, syncs it and renames it over
  // state_path. *why says what failed.
  bool save(std::string *why) {
    const std::string tmp = temp_path();
    File f = create_private(tmp);
    if (!f) {
      *why = "cannot create " + tmp + ": " + os_error(errno);
      return false;
    }
    bool ok = table->save(f.get(), prefix_bytes, salt) && std::fflush(f.get()) == 0 &&
              ::fsync(fileno(f.get())) == 0;
    int err = errno;
    if (std::fclose(f.release()) != 0 && ok) {
      ok = false;
      err = errno;
    }
    if (ok && std::rename(tmp.c_str(), state_path.c_str()) != 0) {
      ok = false;
      err = errno;
    }
    if (!ok) {
      ::unlink(tmp.c_str());
      *why = "cannot write " + state_path + ": " + os_error(err);
      return false;
    }
    dirty = false;
    return true;
  }
};

int64_t integer_option(const nlohmann::json &opts, const char *key, int64_t fallback, int64_t min,
                       int64_t max) {
  if (!opts.contains(key)) return fallback;
  const auto &v = opts[key];
  if (!v.is_number_integer() || v.get<int64_t>() < min || v.get<int64_t>() > max)
    throw OptionError(std::string("option \"") + key + "\" must be an integer from " + std::to_string(min) +
                      " to " + std::to_string(max) + " (got " + v.dump() + ")");
  return v.get<int64_t>();
}

std::chrono::nanoseconds duration_option(const sink::plugin::PluginOptions &opts, const char *key,
                                         const std::string &fallback) {
  const std::string text = opts.string(key, fallback);
  std::string why;
  const auto d = sink::parse_go_duration(text, &why);
  if (!d) throw OptionError(std::string("option \"") + key + "\": invalid duration \"" + text + "\": " + why);
  if (d->count() <= 0)
    throw OptionError(std::string("option \"") + key + "\" must be a positive duration (got \"" + text +
                      "\")");
  return *d;
}

int64_t wall_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int replay_create(const sink_create_args *args, void **instance) noexcept try {
  sink::plugin::PluginOptions opts(args->config_json);
  opts.only({"prefix_bytes", "window", "max_entries", "state_path", "save_interval"});
  const auto json = nlohmann::json::parse(args->config_json);
  auto r = std::make_unique<Replay>();
  r->host = args->host;
  r->ctx = args->host_ctx;
  r->prefix_bytes = static_cast<uint32_t>(integer_option(json, "prefix_bytes", 64, 1, kMaxPrefixBytes));
  const auto window = duration_option(opts, "window", "168h");
  const auto max_entries = integer_option(json, "max_entries", kDefaultMaxEntries, 1, 0xfffffffeLL);
  r->save_interval = duration_option(opts, "save_interval", "5m");
  const std::string state = opts.string("state_path", "");
  if (opts.string("state_path", "x").empty()) throw OptionError("option \"state_path\" must not be empty");
  r->state_path = sink::plugin::resolve_option_path(*args, state);
  r->table = std::make_unique<ReplayTable>(static_cast<size_t>(max_entries), window.count());
  if (getrandom(r->salt.data(), r->salt.size(), 0) != static_cast<ssize_t>(r->salt.size()))
    throw std::runtime_error("getrandom failed: " + os_error(errno));

  if (!r->state_path.empty()) {
    // Fail now, before anything is bound, if the state can never be saved.
    // A temp file left by a crash mid-save is garbage: it goes too.
    const std::string tmp = r->temp_path();
    if (!create_private(tmp))
      throw OptionError("option \"state_path\": cannot write " + r->state_path + " (creating " + tmp + ": " +
                        os_error(errno) + ")");
    ::unlink(tmp.c_str());
    std::string unreadable;
    File f = open_state(r->state_path, &unreadable);
    if (f) {
      std::string why;
      sink::replay::Salt salt;
      if (r->table->load(f.get(), r->prefix_bytes, wall_now_ns(), &salt, &why)) {
        r->salt = salt;
        r->log(SINK_LOG_INFO,
               "loaded " + std::to_string(r->table->size()) + " entries from " + r->state_path);
      } else {
        r->log(SINK_LOG_WARN, "state file " + r->state_path + " is corrupt or unusable (" + why +
                                  "); starting with an empty table");
      }
    } else if (!unreadable.empty()) {
      r->log(SINK_LOG_WARN, "cannot read state file " + r->state_path + ": " + unreadable +
                                "; starting with an empty table");
    }
  }
  r->last_save = std::chrono::steady_clock::now();
  *instance = r.release();
  return SINK_OK;
} catch (const std::exception &e) {
  sink::plugin::set_create_error(args, e.what());
  return SINK_ERR_CONFIG;
} catch (...) {
  sink::plugin::set_create_error(args, "replay: create failed");
  return SINK_ERR;
}

void add_string(const sink_extra_writer *w, const char *key, const std::string &s) {
  sink_add_string(w, key, s.data(), s.size());
}

int replay_analyze(void *instance, const sink_record *rec, const sink_extra_writer *w) noexcept try {
  auto &r = *static_cast<Replay *>(instance);
  const auto fp = sink::analyzers::first_packet(*rec);
  if (!fp.bytes.empty()) {
    const auto key = sink::replay::make_key(r.salt, fp.bytes.substr(0, r.prefix_bytes), fp.read_len);
    const auto remote = sink::replay::parse_address(rec->remote_ip, rec->remote_port);
    const auto a = r.table->arrive(key, rec->accept_unix_ns, remote, rec->local_port);
    r.dirty = true;
    sink_add_int(w, "replay.seen", static_cast<int64_t>(a.seen));
    if (a.seen > 0) {
      add_string(w, "replay.first_ts", sink::format::rfc3339_utc_ms(a.first_ns));
      add_string(w, "replay.first_remote", sink::replay::format_address(a.first_remote));
      sink_add_int(w, "replay.first_local_port", a.first_local_port);
      sink_add_int(w, "replay.delay_ms", (rec->accept_unix_ns - a.first_ns) / 1000000);
    }
  }
  // The periodic save runs here: analyze calls never overlap.
  const auto now = std::chrono::steady_clock::now();
  if (!r.state_path.empty() && r.dirty && now - r.last_save >= r.save_interval) {
    r.last_save = now;
    std::string why;
    if (!r.save(&why)) r.log(SINK_LOG_WARN, "periodic save failed: " + why);
  }
  return SINK_OK;
} catch (...) {
  return SINK_ERR;
}

void replay_destroy(void *instance) noexcept {
  std::unique_ptr<Replay> r(static_cast<Replay *>(instance));
  if (!r || r->state_path.empty()) return;
  try {
    std::string why;
    if (r->save(&why))
      r->log(SINK_LOG_INFO, "saved " + std::to_string(r->table->size()) + " entries to " + r->state_path);
    else
      r->log(SINK_LOG_ERROR, "saving state failed: " + why);
  } catch (...) {
    r->log(SINK_LOG_ERROR, "saving state failed");
  }
}

const sink_analyzer_ops kOps{sizeof(sink_analyzer_ops), replay_create, replay_analyze, replay_destroy};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    1, // analyzers need ABI 1.1
    SINK_PLUGIN_ANALYZER,
    "replay",
    "1.0.0",
    "flags first packets that arrived before (replayed probes)",
    nullptr,
    nullptr,
    &kOps,
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
