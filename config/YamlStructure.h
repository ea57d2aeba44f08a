#pragma once
// Checks a YAML text's shape before it is loaded: no duplicate keys, no
// aliases (an alias bomb expands exponentially), no non-scalar keys, no
// absurd nesting. Throws ConfigError naming the file, line and key path.
#include <string>

namespace sink {

void check_yaml_structure(const std::string &text, const std::string &source);

} // namespace sink
