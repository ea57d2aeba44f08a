#include "ConfigPaths.h"

#include <filesystem>

namespace sink {

std::string resolve_path(const std::string &dir, const std::string &p) {
  if (p.empty() || p == "-" || p.front() == '/' || dir.empty()) return p;
  return (std::filesystem::path(dir) / p).lexically_normal().string();
}

void resolve_config_paths(Config &c) {
  c.log.path = resolve_path(c.config_dir, c.log.path);
  c.journal.dir = resolve_path(c.config_dir, c.journal.dir);
  for (auto &d : c.plugin_path)
    d = resolve_path(c.config_dir, d);
  auto plugin = [&](std::string &name) {
    if (name.find('/') != std::string::npos) name = resolve_path(c.config_dir, name);
  };
  for (auto &g : c.groups)
    plugin(g.transport);
  for (auto &o : c.outputs)
    plugin(o.plugin);
  for (auto &a : c.analyzers)
    plugin(a.plugin);
}

} // namespace sink
