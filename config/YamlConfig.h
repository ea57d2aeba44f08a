#pragma once
#include <string>

#include "Config.h"

namespace sink {

// Reads and validates a YAML config file. Throws ConfigError naming the file,
// line and key of the first problem.
Config load_yaml_config(const std::string &path);

// Same, from text (used by tests); `source` names it in messages.
Config parse_yaml_config(const std::string &text, const std::string &source);

// Renders a config as YAML that load_yaml_config reads back to the same.
std::string render_yaml_config(const Config &config);

} // namespace sink
