#pragma once
// The command line: either --config FILE, or the original sink's flags (the
// legacy shim), which build the same Config a YAML file would.
#include <string>
#include <vector>

#include "Config.h"
#include "ConfigError.h"

namespace sink {

// A bad command line: the message, then the usage text, exit code 2.
class UsageError : public ConfigError {
public:
  using ConfigError::ConfigError;
};

struct CommandLine {
  enum class Action { kRun, kHelp, kPrintConfig, kVersion };
  Action action = Action::kRun;
  Config config;
};

// args excludes argv[0]. Throws UsageError for flag problems and ConfigError
// for problems inside a config file.
CommandLine parse_command_line(const std::vector<std::string> &args);

// The original's -h text, plus our own options.
std::string usage_text(const std::string &program);

// The config the original builds from its flags (all defaults when empty).
Config legacy_default_config();

} // namespace sink
