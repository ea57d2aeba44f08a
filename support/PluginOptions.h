#pragma once
// Helpers every bundled plugin uses: its JSON options, read with messages
// that name the option, and reporting a create() error to the host.
#include <sink/plugin.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace sink::plugin {

class OptionError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class PluginOptions {
public:
  explicit PluginOptions(const char *json_text)
      : json_(nlohmann::json::parse(json_text ? json_text : "{}", nullptr, false)) {
    if (json_.is_discarded() || !json_.is_object()) throw OptionError("options are not a JSON object");
  }

  // Refuses options outside `known`, so a typo is an error, not a default.
  void only(std::initializer_list<const char *> known) const { only(std::vector<const char *>(known)); }
  void only(const std::vector<const char *> &known) const {
    for (auto it = json_.begin(); it != json_.end(); ++it) {
      bool ok = false;
      std::string list;
      for (const char *k : known) {
        ok = ok || it.key() == k;
        list += std::string(list.empty() ? "" : ", ") + k;
      }
      if (!ok) throw OptionError("unknown option \"" + it.key() + "\" (expected one of " + list + ")");
    }
  }

  std::string string(const char *key, const std::string &fallback) const {
    if (!json_.contains(key)) return fallback;
    const auto &v = json_[key];
    if (!v.is_string()) throw OptionError(std::string("option \"") + key + "\" must be a string");
    return v.get<std::string>();
  }

  // A non-empty list of strings; fallback when the option is absent.
  std::vector<std::string> strings(const char *key, std::vector<std::string> fallback) const {
    if (!json_.contains(key)) return fallback;
    const auto &v = json_[key];
    if (!v.is_array() || v.empty())
      throw OptionError(std::string("option \"") + key + "\" must be a non-empty list");
    std::vector<std::string> out;
    for (const auto &e : v) {
      if (!e.is_string()) throw OptionError(std::string("option \"") + key + "\" must list strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  bool boolean(const char *key, bool fallback) const {
    if (!json_.contains(key)) return fallback;
    const auto &v = json_[key];
    if (!v.is_boolean()) throw OptionError(std::string("option \"") + key + "\" must be true or false");
    return v.get<bool>();
  }

private:
  nlohmann::json json_;
};

// A path from the options, relative to the config file's directory
// (ABI 1.1 config_dir) unless it is absolute or "-".
inline std::string resolve_option_path(const sink_create_args &args, const std::string &p) {
  const bool has_dir = args.struct_size >= offsetof(sink_create_args, config_dir) + sizeof args.config_dir &&
                       args.config_dir && *args.config_dir;
  if (!has_dir || p.empty() || p == "-" || p.front() == '/') return p;
  std::string dir = args.config_dir;
  if (dir.back() != '/') dir += '/';
  return dir + p;
}

// Copies msg into args->error, truncating to fit.
inline void set_create_error(const sink_create_args *args, const std::string &msg) noexcept {
  if (!args->error || args->error_size == 0) return;
  size_t n = std::min(msg.size(), args->error_size - 1);
  std::memcpy(args->error, msg.data(), n);
  args->error[n] = '\0';
}

} // namespace sink::plugin
