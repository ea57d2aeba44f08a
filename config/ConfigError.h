#pragma once
#include <stdexcept>
#include <string>

namespace sink {

// A problem with user input (flag, config key). what() is the full one-line
// message, naming the flag or key and, for files, the line.
class ConfigError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

} // namespace sink
