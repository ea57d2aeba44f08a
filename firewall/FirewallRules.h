#pragma once
// The firewall rules a config needs, as text: an nftables script (applied
// atomically with `nft -f`) or iptables-restore input. Both are renderings of
// one RulePlan (RulePlan.h), so they redirect, exclude and drop the same
// things. Pure functions, unit tested as text and applied by FirewallCommand.
#include <cstdint>
#include <string>

#include "Config.h"
#include "RulePlan.h"

namespace sink::firewall {

// Every rule lives in this nftables table: removal is one command.
inline constexpr const char *kTable = "inet sink";
// Packet and conntrack mark of TPROXY'd traffic ("SK"), and the policy
// routing table that delivers marked packets to local sockets.
inline constexpr uint32_t kMark = 0x534b;
inline constexpr uint32_t kRouteTable = 21323;

// The nftables script: replaces table inet sink in one transaction (nft 1.0.6
// has no "destroy": declare, delete, define).
std::string nft_script(const RulePlan &plan);
// The same rules for iptables-restore (IPv4) and ip6tables-restore (IPv6).
std::string iptables_script(const RulePlan &plan);
// iptables-restore input that removes what iptables_script added.
std::string iptables_removal_script();
// Shorthands: plan_rules(config), then render.
std::string nft_script(const Config &config);
std::string iptables_script(const Config &config);

// True when a transparent group needs policy routing for TPROXY.
bool needs_policy_routing(const Config &config);

// The group and port that would redirect an SSH session described by
// $SSH_CONNECTION ("client_ip client_port server_ip server_port"), or an
// empty string when the rules leave it alone.
std::string redirects_ssh_session(const RulePlan &plan, const std::string &ssh_connection);
std::string redirects_ssh_session(const Config &config, const std::string &ssh_connection);

// Adds the metrics: listen port to firewall.exclude_ports (a port range
// redirected to the sink must not swallow the scrape endpoint).
void exclude_metrics_port(Config &config);

} // namespace sink::firewall
