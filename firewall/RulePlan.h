#pragma once
// One description of the firewall rules a config needs, built once from the
// config and rendered by both back ends (nftables, iptables-restore), so the
// two cannot disagree on what is redirected, excluded or dropped.
//
// Every value in a plan was parsed from the config and written back from the
// parsed form (canonical addresses, numeric ports, checked interface names);
// group names and the config path only appear escaped (comment_text), so no
// config text reaches the rule text as it was written.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "Config.h"

namespace sink::firewall {

using PortRanges = std::vector<std::pair<uint16_t, uint16_t>>;

enum class Family { kIPv4, kIPv6, kBoth };

enum class Action {
  kRedirect, // to the listener port on the address the packet arrived at
  kDnat,     // to the listener port on the group's one listen address of that family
  kTproxy,   // to a transparent listener; the socket keeps the dialed address
};

// Dialed ports of one group, one address family, sent to its listener.
struct RedirectRule {
  size_t group = 0; // index into Config::groups
  Family family = Family::kBoth;
  Action action = Action::kRedirect;
  PortRanges dialed;
  uint16_t listener = 0;
  std::string to_address; // canonical; kDnat always, kTproxy when the group listens on one address
};

struct RulePlan {
  std::string source_label;              // the config path, escaped for a comment
  std::vector<std::string> group_labels; // per group: `groups[I] "NAME"`, name escaped
  PortRanges excluded;                   // never redirected
  std::vector<std::string> interfaces;   // only packets arriving here are redirected; empty = any
  // Only these sources are redirected when restricted (a family without
  // sources then gets no redirect rules at all).
  bool sources_restricted = false;
  std::vector<std::string> sources_v4, sources_v6; // canonical CIDRs
  std::vector<RedirectRule> redirects;             // REDIRECT / DNAT, then TPROXY, in group order
  PortRanges listener_ports;                       // the sink's RSTs leave with one of these

  bool has(Action a) const;
  bool has_tproxy() const { return has(Action::kTproxy); }
  const std::vector<std::string> &sources(Family f) const {
    return f == Family::kIPv6 ? sources_v6 : sources_v4;
  }
};

// Builds the plan. Throws ConfigError for a value it cannot parse (the YAML
// reader refuses those first; this is the last line before rule text).
RulePlan plan_rules(const Config &config);

// Sorted ports as inclusive ranges.
PortRanges port_ranges(std::vector<uint16_t> ports);

// Text safe inside a `#` comment of either back end: bytes other than
// letters, digits and " _.,:/@+=-" become \xHH (so no newline, quote or
// brace survives).
std::string comment_text(const std::string &text);

} // namespace sink::firewall
