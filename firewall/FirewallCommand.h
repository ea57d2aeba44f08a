#pragma once
// `sink firewall --config FILE [--iptables] [--apply | --remove]`: prints the
// rules a config needs, or applies / removes them with nft (and, for
// transparent groups, the policy routing TPROXY needs).
#include <string>
#include <vector>

namespace sink::firewall {

// args: everything after "firewall". Returns the process exit code: 0, 2 for
// a bad command line or config, 1 when the system refused.
int run_firewall_command(const std::vector<std::string> &args);

} // namespace sink::firewall
