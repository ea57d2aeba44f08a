#pragma once
// For config unit tests: the error a YAML text gets, or "" when it loads.
#include <string>

#include "ConfigError.h"
#include "YamlConfig.h"

namespace sinktest {

inline std::string config_error_of(const std::string &text) {
  try {
    sink::parse_yaml_config(text, "t.yaml");
  } catch (const sink::ConfigError &e) {
    return e.what();
  }
  return "";
}

} // namespace sinktest
