#include "RulePlan.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>

#include "ConfigError.h"
#include "ConfigValidation.h"

namespace sink::firewall {

namespace {

struct ParsedAddress {
  Family family;
  std::string text; // canonical
  bool wildcard;
};

std::optional<ParsedAddress> parse_address(const std::string &addr) {
  in_addr v4{};
  in6_addr v6{};
  char buf[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1 && inet_ntop(AF_INET, &v4, buf, sizeof buf))
    return ParsedAddress{Family::kIPv4, buf, v4.s_addr == INADDR_ANY};
  if (inet_pton(AF_INET6, addr.c_str(), &v6) == 1 && inet_ntop(AF_INET6, &v6, buf, sizeof buf))
    return ParsedAddress{Family::kIPv6, buf, IN6_IS_ADDR_UNSPECIFIED(&v6) != 0};
  return std::nullopt;
}

// "192.0.2.0/24" as parsed: canonical address, decimal prefix length.
std::optional<ParsedAddress> parse_cidr(const std::string &cidr) {
  const auto slash = cidr.find('/');
  auto addr = parse_address(cidr.substr(0, slash));
  if (!addr) return std::nullopt;
  if (slash == std::string::npos) return addr;
  const std::string bits = cidr.substr(slash + 1);
  const int max = addr->family == Family::kIPv4 ? 32 : 128;
  int n = -1;
  auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
  if (bits.empty() || ec != std::errc() || p != bits.data() + bits.size() || n < 0 || n > max)
    return std::nullopt;
  addr->text += "/" + std::to_string(n);
  return addr;
}

// Where one family of a group's connections go: nothing (the group does not
// listen on that family), the listener on any address, or on one address.
struct Target {
  bool listens = false;
  std::string address; // "" = a wildcard listener
};

// Per family (IPv4, IPv6). No listen list, or "::" (dual stack), takes both;
// "0.0.0.0" only IPv4. A wildcard wins over a specific address.
std::pair<Target, Target> targets_of(const Config &c, size_t index) {
  const GroupConfig &g = c.groups[index];
  Target v4, v6;
  if (g.listen.empty()) return {{true, ""}, {true, ""}};
  bool v4_wild = false, v6_wild = false;
  for (const auto &a : g.listen) {
    const auto parsed = parse_address(a);
    if (!parsed)
      throw ConfigError(group_location(c, index, "listen") + ": \"" + comment_text(a) +
                        "\" is not an IPv4 or IPv6 address");
    Target &t = parsed->family == Family::kIPv4 ? v4 : v6;
    if (parsed->wildcard) {
      (parsed->family == Family::kIPv4 ? v4_wild : v6_wild) = true;
      if (parsed->family == Family::kIPv6) v4_wild = true; // dual stack
    } else if (!t.listens) {
      t = {true, parsed->text};
    }
  }
  if (v4_wild) v4 = {true, ""};
  if (v6_wild) v6 = {true, ""};
  return {v4, v6};
}

std::vector<uint16_t> listener_ports(const Config &c) {
  std::vector<uint16_t> out;
  for (const auto &g : c.groups)
    for (uint16_t p : g.ports)
      if (p) out.push_back(p);
  return out;
}

std::string group_label(const GroupConfig &g, size_t index) {
  return "groups[" + std::to_string(index) + "] \"" + comment_text(g.name) + "\"";
}

void plan_sources(const Config &c, RulePlan &plan) {
  plan.sources_restricted = !c.firewall.sources.empty();
  for (const auto &s : c.firewall.sources) {
    const auto parsed = parse_cidr(s);
    if (!parsed)
      throw ConfigError(c.source + ": firewall.sources: \"" + comment_text(s) +
                        "\" is not an IPv4 or IPv6 address or CIDR");
    (parsed->family == Family::kIPv4 ? plan.sources_v4 : plan.sources_v6).push_back(parsed->text);
  }
}

void plan_interfaces(const Config &c, RulePlan &plan) {
  for (const auto &name : c.firewall.interfaces) {
    std::string why;
    if (!valid_interface_name(name, &why))
      throw ConfigError(c.source + ": firewall.interfaces: \"" + comment_text(name) + "\" " + why);
    plan.interfaces.push_back(name);
  }
}

// The rules of one group: one per family it listens on (and, when sources
// are restricted, has sources for); REDIRECT rules for both families merge.
std::vector<RedirectRule> plan_group(const Config &c, const RulePlan &plan, size_t index) {
  const GroupConfig &g = c.groups[index];
  std::vector<RedirectRule> out;
  if (g.redirect_from.empty() || g.ports.size() != 1 || g.ports[0] == 0) return out;
  const auto [v4, v6] = targets_of(c, index);
  for (const auto &[family, target] : {std::pair{Family::kIPv4, v4}, std::pair{Family::kIPv6, v6}}) {
    if (!target.listens) continue;
    if (plan.sources_restricted && plan.sources(family).empty()) continue;
    RedirectRule r;
    r.group = index;
    r.family = family;
    r.action = g.transparent ? Action::kTproxy : target.address.empty() ? Action::kRedirect : Action::kDnat;
    r.dialed = port_ranges(g.redirect_from);
    r.listener = g.ports[0];
    r.to_address = target.address;
    out.push_back(std::move(r));
  }
  // Without a source restriction an address-free redirect is the same rule
  // in both families: one rule in the inet table, as before.
  if (out.size() == 2 && !plan.sources_restricted && out[0].action == Action::kRedirect &&
      out[1].action == Action::kRedirect) {
    out.pop_back();
    out[0].family = Family::kBoth;
  }
  return out;
}

} // namespace

bool RulePlan::has(Action a) const {
  return std::any_of(redirects.begin(), redirects.end(),
                     [a](const RedirectRule &r) { return r.action == a; });
}

PortRanges port_ranges(std::vector<uint16_t> ports) {
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  PortRanges out;
  for (uint16_t p : ports) {
    if (!out.empty() && out.back().second + 1 == p)
      out.back().second = p;
    else
      out.emplace_back(p, p);
  }
  return out;
}

std::string comment_text(const std::string &text) {
  static constexpr std::string_view kKept =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:/@+=-";
  std::string out;
  for (const char ch : text) {
    if (kKept.find(ch) != std::string_view::npos) {
      out += ch;
      continue;
    }
    char hex[5];
    std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(ch));
    out += hex;
  }
  return out;
}

RulePlan plan_rules(const Config &c) {
  RulePlan plan;
  plan.source_label = comment_text(c.source);
  for (size_t i = 0; i < c.groups.size(); ++i)
    plan.group_labels.push_back(group_label(c.groups[i], i));
  plan.excluded = port_ranges(c.firewall.exclude_ports);
  plan_interfaces(c, plan);
  plan_sources(c, plan);
  // REDIRECT/DNAT rules first, TPROXY after: each back end puts them in its
  // own chain, in this order.
  for (bool transparent : {false, true})
    for (size_t i = 0; i < c.groups.size(); ++i)
      if (c.groups[i].transparent == transparent)
        for (auto &r : plan_group(c, plan, i))
          plan.redirects.push_back(std::move(r));
  plan.listener_ports = port_ranges(listener_ports(c));
  return plan;
}

} // namespace sink::firewall
