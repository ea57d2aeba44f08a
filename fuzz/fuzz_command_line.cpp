// Any argument vector (NUL-separated): a CommandLine or a ConfigError.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "CommandLine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> args(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0)
      args.emplace_back();
    else
      args.back() += static_cast<char>(data[i]);
  }
  for (const auto &a : args)
    if (a.find("config") != std::string::npos) return 0; // would read files named by the input
  try {
    sink::parse_command_line(args);
  } catch (const sink::ConfigError &) {
  }
  return 0;
}
