#include "FirewallRules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "ConfigValidation.h"
#include "PortList.h"

namespace sink::firewall {

namespace {

std::string hex_mark() {
  char b[16];
  std::snprintf(b, sizeof b, "0x%x", kMark);
  return b;
}

std::string join_ranges(const PortRanges &ranges, const char *dash, const char *sep) {
  std::string out;
  for (const auto &[a, b] : ranges) {
    if (!out.empty()) out += sep;
    out += std::to_string(a);
    if (b != a) out += dash + std::to_string(b);
  }
  return out;
}

std::string join(const std::vector<std::string> &items, const char *sep, const char *quote = "") {
  std::string out;
  for (const auto &s : items)
    out += (out.empty() ? "" : sep) + (quote + s + quote);
  return out;
}

bool covers(Family rule, Family family) { return rule == Family::kBoth || rule == family; }

std::string group_comment(const RulePlan &plan, const RedirectRule &r) {
  std::string text = plan.group_labels.at(r.group);
  if (r.action == Action::kTproxy) text += " (transparent)";
  text += ": dialed ports " + join_ranges(r.dialed, "-", ",") + " -> listener " + std::to_string(r.listener);
  if (r.action == Action::kTproxy) text += "; the socket keeps the dialed address";
  return text;
}

// ---- nftables ----

std::string nft_set(const PortRanges &ranges) { return "{ " + join_ranges(ranges, "-", ", ") + " }"; }

std::string nft_match(const RulePlan &plan, const RedirectRule &r) {
  std::string m;
  if (r.family != Family::kBoth) m += r.family == Family::kIPv4 ? "meta nfproto ipv4 " : "meta nfproto ipv6 ";
  if (!plan.interfaces.empty()) m += "iifname { " + join(plan.interfaces, ", ", "\"") + " } ";
  if (plan.sources_restricted)
    m += r.family == Family::kIPv4 ? "ip saddr @sources_v4 " : "ip6 saddr @sources_v6 ";
  return m + "tcp dport " + nft_set(r.dialed);
}

std::string nft_address_port(const RedirectRule &r) {
  if (r.to_address.empty()) return ":" + std::to_string(r.listener);
  if (r.family == Family::kIPv6) return "[" + r.to_address + "]:" + std::to_string(r.listener);
  return r.to_address + ":" + std::to_string(r.listener);
}

std::string nft_action(const RedirectRule &r) {
  const char *fam = r.family == Family::kIPv6 ? "ip6" : "ip";
  switch (r.action) {
  case Action::kRedirect: return "redirect to :" + std::to_string(r.listener);
  case Action::kDnat: return std::string("dnat ") + fam + " to " + nft_address_port(r);
  case Action::kTproxy:
    return std::string("tproxy ") + fam + " to " + nft_address_port(r) + " meta mark set " + hex_mark() +
           " ct mark set " + hex_mark() + " accept";
  }
  return "";
}

// The rules of one chain, each group introduced by a comment.
std::string nft_rules(const RulePlan &plan, bool tproxy) {
  std::string out;
  const RedirectRule *previous = nullptr;
  for (const auto &r : plan.redirects) {
    if ((r.action == Action::kTproxy) != tproxy) continue;
    if (!previous || previous->group != r.group) out += "\t\t# " + group_comment(plan, r) + "\n";
    out += "\t\t" + nft_match(plan, r) + " " + nft_action(r) + "\n";
    previous = &r;
  }
  return out;
}

void nft_sets(std::ostream &o, const RulePlan &plan) {
  if (!plan.excluded.empty())
    o << "\t# Never redirected, so SSH (and whatever else is listed) keeps working.\n"
      << "\tset exclude_ports {\n\t\ttype inet_service; flags interval;\n\t\telements = "
      << nft_set(plan.excluded) << "\n\t}\n";
  for (Family f : {Family::kIPv4, Family::kIPv6}) {
    const auto &src = plan.sources(f);
    if (src.empty()) continue;
    const bool v6 = f == Family::kIPv6;
    o << "\t# Only these sources are redirected (firewall.sources).\n"
      << "\tset sources_" << (v6 ? "v6" : "v4") << " {\n\t\ttype " << (v6 ? "ipv6_addr" : "ipv4_addr")
      << "; flags interval;\n\t\telements = { " << join(src, ", ") << " }\n\t}\n";
  }
}

void nft_output_chain(std::ostream &o, const RulePlan &plan) {
  o << "\tchain output_drop {\n\t\ttype filter hook output priority filter; policy accept;\n"
    << "\t\t# The sink's RST and RST-ACK. At this hook a redirected connection's packets\n"
    << "\t\t# still carry the listener port as source port (NAT is reversed later), so\n"
    << "\t\t# match listener ports, never the dialed range (that would also drop the\n"
    << "\t\t# host's own RSTs from ephemeral ports).\n"
    << "\t\ttcp sport " << nft_set(plan.listener_ports) << " tcp flags & rst == rst drop\n";
  if (plan.has_tproxy())
    o << "\t\t# Transparent sockets keep the dialed port: match their connections by conntrack mark.\n"
      << "\t\tct mark " << hex_mark() << " tcp flags & rst == rst drop\n";
  o << "\t\t# No port-unreachable or admin-prohibited answers to scanners; other ICMP\n"
    << "\t\t# (fragmentation-needed: path MTU discovery) still goes out.\n"
    << "\t\ticmp type destination-unreachable icmp code { port-unreachable, admin-prohibited } drop\n"
    << "\t\ticmpv6 type destination-unreachable icmpv6 code { port-unreachable, admin-prohibited } drop\n"
    << "\t}\n";
}

// ---- iptables ----

std::string ipt_range(const std::pair<uint16_t, uint16_t> &r) {
  return std::to_string(r.first) + (r.second != r.first ? ":" + std::to_string(r.second) : "");
}

// `-j ...` of a rule; TPROXY first marks the connection (CONNMARK), since
// the TPROXY target ends the chain for the packet.
std::vector<std::string> ipt_targets(const RedirectRule &r, Family family) {
  const std::string port = std::to_string(r.listener);
  switch (r.action) {
  case Action::kRedirect: return {"-j REDIRECT --to-ports " + port};
  case Action::kDnat:
    return {"-j DNAT --to-destination " +
            (family == Family::kIPv6 ? "[" + r.to_address + "]:" + port : r.to_address + ":" + port)};
  case Action::kTproxy:
    return {"-j CONNMARK --set-xmark " + hex_mark() + "/0xffffffff",
            "-j TPROXY --on-port " + port + (r.to_address.empty() ? "" : " --on-ip " + r.to_address) +
                " --tproxy-mark " + hex_mark() + "/0xffffffff"};
  }
  return {};
}

// Every (interface, source, dialed range) combination of one rule.
void ipt_rule(std::ostream &o, const RulePlan &plan, const RedirectRule &r, Family family,
              const char *chain) {
  std::vector<std::string> ifaces = plan.interfaces, sources = plan.sources(family);
  if (ifaces.empty()) ifaces.push_back("");
  if (!plan.sources_restricted) sources = {""};
  for (const auto &iface : ifaces)
    for (const auto &src : sources)
      for (const auto &range : r.dialed)
        for (const auto &target : ipt_targets(r, family))
          o << "-A " << chain << (iface.empty() ? "" : " -i " + iface) << (src.empty() ? "" : " -s " + src)
            << " -p tcp --dport " << ipt_range(range) << " " << target << "\n";
}

void ipt_redirects(std::ostream &o, const RulePlan &plan, Family family, bool tproxy, const char *chain) {
  const RedirectRule *previous = nullptr;
  for (const auto &r : plan.redirects) {
    if ((r.action == Action::kTproxy) != tproxy || !covers(r.family, family)) continue;
    if (!previous || previous->group != r.group) o << "# " << group_comment(plan, r) << "\n";
    ipt_rule(o, plan, r, family, chain);
    previous = &r;
  }
}

void ipt_exclusions(std::ostream &o, const RulePlan &plan, const char *chain) {
  for (const auto &range : plan.excluded)
    o << "-A " << chain << " -p tcp --dport " << ipt_range(range) << " -j RETURN\n";
}

void ipt_family(std::ostream &o, const RulePlan &plan, Family family) {
  const bool v6 = family == Family::kIPv6;
  o << "# --- " << (v6 ? "ip6tables" : "iptables") << "-restore --noflush ---\n";
  o << "*nat\n:SINK_PREROUTING - [0:0]\n-A PREROUTING -p tcp -j SINK_PREROUTING\n";
  ipt_exclusions(o, plan, "SINK_PREROUTING");
  ipt_redirects(o, plan, family, false, "SINK_PREROUTING");
  o << "COMMIT\n*mangle\n:SINK_TPROXY - [0:0]\n-A PREROUTING -p tcp -j SINK_TPROXY\n";
  if (plan.has_tproxy()) {
    ipt_exclusions(o, plan, "SINK_TPROXY");
    o << "# packets of connections a transparent socket already holds\n"
      << "-A SINK_TPROXY -p tcp -m socket --transparent -j MARK --set-xmark " << hex_mark() << "/0xffffffff\n"
      << "-A SINK_TPROXY -p tcp -m socket --transparent -j RETURN\n";
    ipt_redirects(o, plan, family, true, "SINK_TPROXY");
  }
  o << "COMMIT\n*filter\n:SINK_OUTPUT - [0:0]\n-A OUTPUT -j SINK_OUTPUT\n";
  o << "# the sink's RST and RST-ACK, by listener port (see the nftables script)\n";
  for (const auto &range : plan.listener_ports)
    o << "-A SINK_OUTPUT -p tcp --sport " << ipt_range(range) << " --tcp-flags RST RST -j DROP\n";
  if (plan.has_tproxy())
    o << "-A SINK_OUTPUT -p tcp -m connmark --mark " << hex_mark() << " --tcp-flags RST RST -j DROP\n";
  if (v6)
    o << "-A SINK_OUTPUT -p ipv6-icmp --icmpv6-type port-unreachable -j DROP\n"
      << "-A SINK_OUTPUT -p ipv6-icmp --icmpv6-type communication-prohibited -j DROP\n";
  else
    o << "-A SINK_OUTPUT -p icmp --icmp-type port-unreachable -j DROP\n"
      << "-A SINK_OUTPUT -p icmp --icmp-type communication-prohibited -j DROP\n";
  o << "COMMIT\n";
}

bool in_cidr(const std::string &ip, const std::string &cidr) {
  const auto slash = cidr.find('/');
  const std::string net = cidr.substr(0, slash);
  uint8_t a[16] = {}, b[16] = {};
  int bits;
  if (inet_pton(AF_INET, ip.c_str(), a) == 1 && inet_pton(AF_INET, net.c_str(), b) == 1)
    bits = 32;
  else if (inet_pton(AF_INET6, ip.c_str(), a) == 1 && inet_pton(AF_INET6, net.c_str(), b) == 1)
    bits = 128;
  else
    return false;
  if (slash != std::string::npos) bits = std::min(bits, std::atoi(cidr.c_str() + slash + 1));
  for (int i = 0; i < bits; ++i) {
    const int byte = i / 8, bit = 7 - i % 8;
    if (((a[byte] >> bit) & 1) != ((b[byte] >> bit) & 1)) return false;
  }
  return true;
}

bool in_ranges(const PortRanges &ranges, uint16_t port) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [port](const auto &r) { return r.first <= port && port <= r.second; });
}

} // namespace

bool needs_policy_routing(const Config &config) {
  for (const auto &g : config.groups)
    if (g.transparent && !g.redirect_from.empty()) return true;
  return false;
}

std::string nft_script(const RulePlan &plan) {
  std::ostringstream o;
  o << "#!/usr/sbin/nft -f\n"
    << "# sink firewall rules for " << plan.source_label << ", generated by `sink firewall`.\n"
    << "# Everything lives in table " << kTable << ": this script replaces it in one\n"
    << "# transaction, and `nft delete table " << kTable << "` removes it.\n"
    << "table " << kTable << " {}\n"
    << "delete table " << kTable << "\n"
    << "table " << kTable << " {\n";
  nft_sets(o, plan);
  const std::string skip_excluded = plan.excluded.empty() ? "" : "\t\ttcp dport @exclude_ports return\n";
  if (const std::string nat = nft_rules(plan, false); !nat.empty())
    o << "\tchain prerouting_redirect {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
      << skip_excluded << nat << "\t}\n";
  if (const std::string tp = nft_rules(plan, true); !tp.empty())
    o << "\tchain prerouting_tproxy {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n"
      << skip_excluded << "\t\t# packets of connections a transparent socket already holds\n"
      << "\t\tmeta l4proto tcp socket transparent 1 meta mark set " << hex_mark() << " accept\n"
      << tp << "\t}\n";
  nft_output_chain(o, plan);
  o << "}\n";
  return o.str();
}

std::string iptables_script(const RulePlan &plan) {
  std::ostringstream o;
  o << "# sink firewall rules for " << plan.source_label << " as iptables-restore input.\n"
    << "# Load the first part with `iptables-restore --noflush`, the second with\n"
    << "# `ip6tables-restore --noflush`, once: loading it again adds the jumps into the\n"
    << "# SINK_* chains a second time. `sink firewall --apply` (nftables) replaces cleanly;\n"
    << "# `sink firewall --iptables --remove` prints the input that removes these chains.\n";
  if (plan.has_tproxy())
    o << "# TPROXY also needs policy routing (not part of this text):\n"
      << "#   ip -4 rule add fwmark " << kMark << " lookup " << kRouteTable << "\n"
      << "#   ip -4 route add local 0.0.0.0/0 dev lo table " << kRouteTable << "\n"
      << "#   ip -6 rule add fwmark " << kMark << " lookup " << kRouteTable << "\n"
      << "#   ip -6 route add local ::/0 dev lo table " << kRouteTable << "\n";
  ipt_family(o, plan, Family::kIPv4);
  ipt_family(o, plan, Family::kIPv6);
  return o.str();
}

std::string iptables_removal_script() {
  std::ostringstream o;
  o << "# Removes what `sink firewall --iptables` added: load the first part with\n"
    << "# `iptables-restore --noflush`, the second with `ip6tables-restore --noflush`.\n"
    << "# Each part fails as a whole (changing nothing) when its chains are not loaded.\n"
    << "# TPROXY policy routing, if added: ip -4 rule del fwmark " << kMark << " lookup " << kRouteTable
    << "; ip -4 route flush table " << kRouteTable << " (and the same with -6).\n";
  for (const char *tool : {"iptables", "ip6tables"}) {
    o << "# --- " << tool << "-restore --noflush ---\n";
    for (const auto &[table, hook, chain] : {std::tuple{"nat", "PREROUTING -p tcp", "SINK_PREROUTING"},
                                             std::tuple{"mangle", "PREROUTING -p tcp", "SINK_TPROXY"},
                                             std::tuple{"filter", "OUTPUT", "SINK_OUTPUT"}})
      o << "*" << table << "\n-D " << hook << " -j " << chain << "\n-F " << chain << "\n-X " << chain
        << "\nCOMMIT\n";
  }
  return o.str();
}

std::string nft_script(const Config &config) { return nft_script(plan_rules(config)); }
std::string iptables_script(const Config &config) { return iptables_script(plan_rules(config)); }

std::string redirects_ssh_session(const RulePlan &plan, const std::string &ssh_connection) {
  std::istringstream in(ssh_connection);
  std::string client_ip, client_port, server_ip;
  unsigned server_port = 0;
  if (!(in >> client_ip >> client_port >> server_ip >> server_port) || server_port > 65535) return "";
  const auto port = static_cast<uint16_t>(server_port);
  if (in_ranges(plan.excluded, port)) return "";
  // sshd on a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d.
  if (client_ip.rfind("::ffff:", 0) == 0 && client_ip.find('.') != std::string::npos) client_ip.erase(0, 7);
  in6_addr probe{};
  const Family family = inet_pton(AF_INET6, client_ip.c_str(), &probe) == 1 ? Family::kIPv6 : Family::kIPv4;
  const auto &sources = plan.sources(family);
  if (plan.sources_restricted && std::none_of(sources.begin(), sources.end(),
                                              [&](const std::string &s) { return in_cidr(client_ip, s); }))
    return "";
  for (const auto &r : plan.redirects)
    if (covers(r.family, family) && in_ranges(r.dialed, port))
      return plan.group_labels.at(r.group) + " redirects dialed port " + std::to_string(port) +
             ", the port of your SSH session from " + client_ip;
  return "";
}

std::string redirects_ssh_session(const Config &config, const std::string &ssh_connection) {
  return redirects_ssh_session(plan_rules(config), ssh_connection);
}

void exclude_metrics_port(Config &c) {
  std::string addr;
  uint16_t port = 0;
  if (c.metrics.listen.empty() || !split_host_port(c.metrics.listen, &addr, &port)) return;
  auto &ex = c.firewall.exclude_ports;
  if (std::find(ex.begin(), ex.end(), port) == ex.end()) ex.push_back(port);
  std::sort(ex.begin(), ex.end());
}

} // namespace sink::firewall
