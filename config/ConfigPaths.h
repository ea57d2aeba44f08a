#pragma once
// Relative paths in a config file mean "next to the config file", wherever
// sink is started from. (For flags and the built-in config, config_dir is
// the working directory, so nothing changes there.)
#include <string>

#include "Config.h"

namespace sink {

// p against dir, unless p is empty, "-" (stdout) or absolute.
std::string resolve_path(const std::string &dir, const std::string &p);

// Resolves log.path, plugin_path entries and plugin paths (names with a '/')
// against config.config_dir. Plugins resolve their own options (output
// paths, certificates) against the config_dir they are given.
void resolve_config_paths(Config &config);

} // namespace sink
