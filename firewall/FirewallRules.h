#pragma once
// The firewall rules a config needs, as text: an nftables script (applied
// atomically with `nft -f`) or iptables-restore input. Pure functions of the
// config, so they are unit tested as text and applied by FirewallCommand.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "Config.h"

namespace sink::firewall {

// Every rule lives in this nftables table: removal is one command.
inline constexpr const char *kTable = "inet sink";
// Packet and conntrack mark of TPROXY'd traffic ("SK"), and the policy
// routing table that delivers marked packets to local sockets.
inline constexpr uint32_t kMark = 0x534b;
inline constexpr uint32_t kRouteTable = 21323;

// Sorted ports as inclusive ranges.
std::vector<std::pair<uint16_t, uint16_t>> port_ranges(std::vector<uint16_t> ports);

// The nftables script: replaces table inet sink in one transaction (nft 1.0.6
// has no "destroy": declare, delete, define).
std::string nft_script(const Config &config);
// The same rules for iptables-restore (IPv4) and ip6tables-restore (IPv6).
std::string iptables_script(const Config &config);
// True when a transparent group needs policy routing for TPROXY.
bool needs_policy_routing(const Config &config);

// The group and port that would redirect an SSH session described by
// $SSH_CONNECTION ("client_ip client_port server_ip server_port"), or an
// empty string when the rules leave it alone.
std::string redirects_ssh_session(const Config &config, const std::string &ssh_connection);

// Adds the metrics: listen port to firewall.exclude_ports (a port range
// redirected to the sink must not swallow the scrape endpoint).
void exclude_metrics_port(Config &config);

} // namespace sink::firewall
