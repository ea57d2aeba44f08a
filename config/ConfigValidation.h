#pragma once
#include "Config.h"

namespace sink {

// Checks what no single key can: at least one group and output, unique group
// names, no two groups on the same address and port, valid addresses.
// Throws ConfigError. Used for YAML and legacy flags alike.
void validate_config(const Config &config);

// Where a message about group i should point: "file:line: groups[i].key".
std::string group_location(const Config &config, size_t index, const char *key);
// "file:line: section[i] (plugin)", for messages about a plugin.
std::string plugin_location(const Config &config, int line, const char *section, size_t index,
                            const std::string &plugin);

} // namespace sink
