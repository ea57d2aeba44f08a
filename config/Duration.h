#pragma once
// Go-syntax durations ("1m30s", "500ms", "0"), the format of the original's
// -timeout flag and of every duration in our YAML.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sink {

using Duration = std::chrono::nanoseconds;

// Parses like Go's time.ParseDuration. On failure returns nullopt and sets
// *why to what was expected.
std::optional<Duration> parse_go_duration(std::string_view text, std::string *why);

// Formats like Go's time.Duration.String(): "1m0s", "1.5s", "500ms", "0s".
std::string format_go_duration(Duration d);

} // namespace sink
