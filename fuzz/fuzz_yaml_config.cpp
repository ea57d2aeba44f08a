// Any text as a config file: either a Config or a ConfigError, nothing else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ConfigError.h"
#include "YamlConfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    sink::parse_yaml_config(std::string(reinterpret_cast<const char *>(data), size), "fuzz.yaml");
  } catch (const sink::ConfigError &) {
  }
  return 0;
}
