#pragma once
// Port lists in the original's -p syntax: "3000,4000-4002".
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sink {

// Parses a comma-separated list of ports and inclusive ranges. Duplicates are
// dropped, first occurrence order kept. On failure returns nullopt and sets
// *why to a message naming the bad element.
std::optional<std::vector<uint16_t>> parse_port_list(std::string_view text, std::string *why);

// Appends one element ("8080" or "9000-9002") to ports, skipping duplicates.
bool append_port_spec(std::string_view spec, std::vector<uint16_t> &ports, std::string *why);

// Renders ports back into the compact syntax, collapsing runs into ranges.
std::string format_port_list(const std::vector<uint16_t> &ports);

} // namespace sink
