#pragma once
// Finds plugin shared objects, loads them (never unloads) and checks their
// descriptors against this host's ABI.
#include <sink/plugin.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace sink {

// A plugin was refused; what() names the file and the reason.
class PluginError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct LoadedPlugin {
  std::string file;
  const sink_plugin_descriptor *descriptor;
};

class PluginLoader {
public:
  explicit PluginLoader(std::vector<std::string> search_path);

  // name_or_path: a bare name ("csv", looked up as csv.so on the search
  // path) or a file path. Throws PluginError.
  const LoadedPlugin &load(const std::string &name_or_path, sink_plugin_kind kind);
  // The same for a config entry: a refusal is prefixed with `where`
  // ("file:line: outputs[1] (csv)").
  const LoadedPlugin &load_for(const std::string &where, const std::string &name_or_path,
                               sink_plugin_kind kind);

  const std::vector<std::string> &search_path() const { return search_path_; }
  // Everything loaded so far, by file.
  const std::map<std::string, LoadedPlugin> &loaded() const { return by_file_; }

  // <directory of the running binary>/plugins, then the installed location.
  static std::vector<std::string> default_search_path();

private:
  std::string resolve(const std::string &name_or_path) const;
  std::vector<std::string> search_path_;
  std::map<std::string, LoadedPlugin> by_file_; // canonical path -> plugin
  std::map<std::string, std::string> by_name_;  // plugin name -> canonical path
};

} // namespace sink
