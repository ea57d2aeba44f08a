#include "ConfigValidation.h"

#include <arpa/inet.h>

#include <pwd.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "ConfigError.h"

namespace sink {
namespace {

// A listen address as the kernel sees it.
struct Bind {
  enum Kind { kDualWildcard, kV4Wildcard, kV6Wildcard, kV4, kV6 } kind;
  std::string addr;
};

Bind classify(const std::string &addr) {
  if (addr.empty()) return {Bind::kDualWildcard, addr};
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1)
    return {v4.s_addr == INADDR_ANY ? Bind::kV4Wildcard : Bind::kV4, addr};
  inet_pton(AF_INET6, addr.c_str(), &v6);
  // "::" on a dual-stack host also takes IPv4 (IPV6_V6ONLY is off).
  return {IN6_IS_ADDR_UNSPECIFIED(&v6) ? Bind::kDualWildcard : Bind::kV6, addr};
}

bool overlaps(const Bind &a, const Bind &b) {
  auto v4ish = [](const Bind &x) { return x.kind == Bind::kV4 || x.kind == Bind::kV4Wildcard; };
  auto v6ish = [](const Bind &x) { return x.kind == Bind::kV6 || x.kind == Bind::kV6Wildcard; };
  if (a.kind == Bind::kDualWildcard || b.kind == Bind::kDualWildcard) return true;
  if (v4ish(a) && v4ish(b))
    return a.kind == Bind::kV4Wildcard || b.kind == Bind::kV4Wildcard || a.addr == b.addr;
  if (v6ish(a) && v6ish(b))
    return a.kind == Bind::kV6Wildcard || b.kind == Bind::kV6Wildcard || a.addr == b.addr;
  return false;
}

std::string show(const std::string &addr) { return addr.empty() ? "all addresses" : addr; }

std::string who(const Config &config, size_t i) {
  const auto &g = config.groups[i];
  return "group \"" + g.name + "\"" + (g.line ? " (line " + std::to_string(g.line) + ")" : "");
}

// Listeners: groups that name the same listen list and port share one
// listening socket when they split it by dialed port (redirect_from); any
// other overlap of address and port is a conflict. Indexed by port, so the
// full port range validates in linear time.
void validate_listeners(const Config &config) {
  struct Taken {
    size_t group;
    Bind bind;
    std::string listener; // canonical listen list: groups with the same one share
  };
  std::unordered_map<uint16_t, std::vector<Taken>> by_port;
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const auto &g = config.groups[i];
    std::vector<std::string> addrs;
    for (const auto &a : g.listen)
      addrs.push_back(canonical_address(a));
    if (addrs.empty()) addrs.push_back("");
    std::vector<std::string> sorted = addrs;
    std::sort(sorted.begin(), sorted.end());
    std::string listener;
    for (const auto &a : sorted)
      listener += a + ",";
    for (const auto &addr : addrs) {
      Bind b = classify(addr);
      for (uint16_t port : g.ports) {
        if (port == 0) continue; // ephemeral: never collides
        auto &list = by_port[port];
        for (const auto &t : list) {
          if (t.group == i) continue;
          if (t.listener == listener &&
              (!g.redirect_from.empty() || !config.groups[t.group].redirect_from.empty()))
            continue; // a shared listener: checked below
          if (!overlaps(t.bind, b)) continue;
          throw ConfigError(
              group_location(config, i, "ports") + ": port " + std::to_string(port) + " on " + show(addr) +
              " is already taken by " + who(config, t.group) + " on " + show(t.bind.addr) +
              " (groups may share a listener only with the same listen list and redirect_from)");
        }
        list.push_back({i, b, listener});
      }
    }
  }
  // Within a shared listener: disjoint dialed ranges, one transparent setting.
  std::map<std::pair<std::string, uint16_t>, std::vector<size_t>> shared;
  for (auto &[port, list] : by_port)
    for (const auto &t : list) {
      auto &members = shared[{t.listener, port}];
      if (std::find(members.begin(), members.end(), t.group) == members.end()) members.push_back(t.group);
    }
  for (auto &[key, members] : shared) {
    if (members.size() < 2) continue;
    std::sort(members.begin(), members.end());
    std::vector<int> owner(65536, -1);
    for (size_t i : members) {
      const auto &g = config.groups[i];
      const auto &first = config.groups[members[0]];
      if (g.transparent != first.transparent)
        throw ConfigError(group_location(config, i, "transparent") + ": " + who(config, members[0]) +
                          " shares this listener (port " + std::to_string(key.second) +
                          ") and must agree on transparent");
      // The default group (no redirect_from); two of them on one listener
      // are a plain port conflict, refused above.
      if (g.redirect_from.empty()) continue;
      for (uint16_t p : g.redirect_from) {
        if (owner[p] >= 0 && owner[p] != static_cast<int>(i))
          throw ConfigError(group_location(config, i, "redirect_from") + ": dialed port " +
                            std::to_string(p) + " is also claimed by " +
                            who(config, static_cast<size_t>(owner[p])) + " on the same listener (port " +
                            std::to_string(key.second) +
                            "); redirect_from ranges on one listener must not overlap");
        owner[p] = static_cast<int>(i);
      }
    }
  }
}

// Top-level keys about the host (messages without a location; the YAML
// reader adds file and line).
void validate_host_keys(const Config &config) {
  for (const std::string &problem :
       {user_problem(config.user), public_ip_problem(config.public_ip),
        sources_problem(config.firewall.sources), interfaces_problem(config.firewall.interfaces)})
    if (!problem.empty()) throw ConfigError(config.source + ": " + problem);
}

// Dialed ports across listeners: one dialed port (per address family) goes
// to one listener, and never steals another group's own listening port.
void validate_dialed_ports(const Config &config) {
  enum : uint8_t { kV4 = 1, kV6 = 2 };
  auto families = [](const GroupConfig &g) -> uint8_t {
    if (g.listen.empty()) return kV4 | kV6;
    uint8_t f = 0;
    for (const auto &a : g.listen) {
      const std::string c = canonical_address(a);
      f |= c == "::" ? (kV4 | kV6) : c.find(':') != std::string::npos ? kV6 : kV4;
    }
    return f;
  };
  std::vector<int> owner4(65536, -1), owner6(65536, -1), listener4(65536, -1), listener6(65536, -1);
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const uint8_t f = families(config.groups[i]);
    for (uint16_t p : config.groups[i].ports) {
      if (f & kV4) listener4[p] = static_cast<int>(i);
      if (f & kV6) listener6[p] = static_cast<int>(i);
    }
  }
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const auto &g = config.groups[i];
    if (g.redirect_from.empty()) continue;
    const uint8_t f = families(g);
    for (const auto &a : g.listen)
      if (const std::string c = canonical_address(a);
          c == "127.0.0.1" || c.rfind("127.", 0) == 0 || c == "::1")
        throw ConfigError(
            group_location(config, i, "listen") + ": \"" + a +
            "\" is a loopback address, which redirected traffic from outside cannot reach (listen "
            "on the address it arrives at, or leave listen out)");
    for (uint16_t p : g.redirect_from) {
      for (auto [bit, owner, listener] :
           {std::tuple{kV4, &owner4, &listener4}, std::tuple{kV6, &owner6, &listener6}}) {
        if (!(f & bit)) continue;
        const int other = (*owner)[p];
        if (other >= 0 && config.groups[static_cast<size_t>(other)].ports != g.ports)
          throw ConfigError(group_location(config, i, "redirect_from") + ": dialed port " +
                            std::to_string(p) + " is also redirected by " +
                            who(config, static_cast<size_t>(other)) +
                            " to another listener; a dialed port can go to one listener only");
        (*owner)[p] = static_cast<int>(i);
        const int l = (*listener)[p];
        if (l >= 0 && static_cast<size_t>(l) != i && config.groups[static_cast<size_t>(l)].ports != g.ports &&
            std::find(g.ports.begin(), g.ports.end(), p) == g.ports.end())
          throw ConfigError(group_location(config, i, "redirect_from") + ": dialed port " +
                            std::to_string(p) + " is the listening port of " +
                            who(config, static_cast<size_t>(l)) +
                            "; the firewall would redirect its connections away");
      }
    }
  }
}

} // namespace

std::string canonical_address(const std::string &addr) {
  in_addr v4{};
  in6_addr v6{};
  char buf[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1 && inet_ntop(AF_INET, &v4, buf, sizeof buf)) return buf;
  if (inet_pton(AF_INET6, addr.c_str(), &v6) == 1 && inet_ntop(AF_INET6, &v6, buf, sizeof buf)) return buf;
  return addr;
}

std::string user_problem(const std::string &user) {
  if (user.empty() || getpwnam(user.c_str())) return "";
  return "user: no such user \"" + user + "\" (create it, e.g. useradd --system " + user +
         ", or change the key)";
}

std::string public_ip_problem(const std::vector<std::string> &ips) {
  bool v4 = false, v6 = false;
  for (const auto &a : ips) {
    in_addr a4{};
    in6_addr a6{};
    bool *seen = inet_pton(AF_INET, a.c_str(), &a4) == 1    ? &v4
                 : inet_pton(AF_INET6, a.c_str(), &a6) == 1 ? &v6
                                                            : nullptr;
    if (!seen) return "public_ip: \"" + a + "\" is not an IPv4 or IPv6 address";
    if (*seen) return "public_ip: at most one IPv4 and one IPv6 address (\"" + a + "\" is a second one)";
    *seen = true;
  }
  return "";
}

std::string sources_problem(const std::vector<std::string> &sources) {
  for (const auto &cidr : sources) {
    std::string why;
    if (!valid_cidr(cidr, &why)) return "firewall.sources: \"" + cidr + "\" " + why;
  }
  return "";
}

bool valid_interface_name(const std::string &name, std::string *why) {
  constexpr size_t kMaxName = 15; // IFNAMSIZ - 1
  if (name.empty() || name.size() > kMaxName) {
    *why = "must be 1 to " + std::to_string(kMaxName) + " characters long";
    return false;
  }
  if (name == "." || name == ".." ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
          std::string::npos) {
    *why = "is not an interface name (expected letters, digits, '_', '.' and '-', such as eth0)";
    return false;
  }
  return true;
}

std::string interfaces_problem(const std::vector<std::string> &interfaces) {
  for (const auto &name : interfaces) {
    std::string why;
    if (!valid_interface_name(name, &why)) return "firewall.interfaces: \"" + name + "\" " + why;
  }
  return "";
}

bool split_host_port(const std::string &text, std::string *addr, uint16_t *port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  std::string a = text.substr(0, colon);
  const std::string p = text.substr(colon + 1);
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']')
    a = a.substr(1, a.size() - 2);
  else if (a.find(':') != std::string::npos)
    return false; // IPv6 needs brackets
  if (p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5) return false;
  const unsigned long n = std::stoul(p);
  in_addr v4{};
  in6_addr v6{};
  if (n == 0 || n > 65535) return false;
  if (inet_pton(AF_INET, a.c_str(), &v4) != 1 && inet_pton(AF_INET6, a.c_str(), &v6) != 1) return false;
  *addr = a;
  *port = static_cast<uint16_t>(n);
  return true;
}

std::string metrics_listen_problem(const std::string &listen) {
  std::string addr;
  uint16_t port = 0;
  if (!split_host_port(listen, &addr, &port))
    return "expected ADDRESS:PORT such as 127.0.0.1:9464 or [::1]:9464 (port 1-65535), got \"" + listen +
           "\"";
  return "";
}

bool valid_cidr(const std::string &cidr, std::string *why) {
  const auto slash = cidr.find('/');
  const std::string addr = cidr.substr(0, slash);
  in_addr v4{};
  in6_addr v6{};
  int max = 0;
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1)
    max = 32;
  else if (inet_pton(AF_INET6, addr.c_str(), &v6) == 1)
    max = 128;
  else {
    *why = "is not an IPv4 or IPv6 address or CIDR (expected e.g. 192.0.2.0/24)";
    return false;
  }
  if (slash == std::string::npos) return true;
  const std::string bits = cidr.substr(slash + 1);
  int n = -1;
  auto [p, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
  if (bits.empty() || ec != std::errc() || p != bits.data() + bits.size() || n < 0 || n > max) {
    *why = "has a bad prefix length (expected 0 to " + std::to_string(max) + ")";
    return false;
  }
  return true;
}

std::string plugin_location(const Config &config, int line, const char *section, size_t index,
                            const std::string &plugin) {
  return config.source + (line ? ":" + std::to_string(line) : "") + ": " + section + "[" +
         std::to_string(index) + "] (" + plugin + ")";
}

std::string group_location(const Config &config, size_t index, const char *key) {
  const auto &g = config.groups[index];
  std::string where = config.source;
  if (g.line > 0) where += ":" + std::to_string(g.line);
  return where + ": groups[" + std::to_string(index) + "]." + key;
}

void validate_config(const Config &config) {
  if (config.groups.empty() && !config.collect.enabled)
    throw ConfigError(config.source + ": groups: at least one group is required");
  if (config.outputs.empty()) throw ConfigError(config.source + ": outputs: at least one output is required");
  if (config.stats_interval.count() < 0)
    throw ConfigError(config.source + ": stats_interval: must not be negative");
  static const std::set<std::string> levels{"debug", "info", "warn", "error"};
  if (!levels.count(config.log.level))
    throw ConfigError(config.source + ": log.level: \"" + config.log.level +
                      "\" is not one of debug, info, warn, error");

  if (!config.metrics.listen.empty()) {
    std::string addr;
    uint16_t port = 0;
    split_host_port(config.metrics.listen, &addr, &port);
    for (size_t i = 0; i < config.groups.size(); ++i)
      for (uint16_t p : config.groups[i].ports)
        if (p == port)
          throw ConfigError(config.source + ": metrics.listen: port " + std::to_string(port) +
                            " is also a port of " + group_location(config, i, "ports") +
                            "; give the metrics their own port");
  }

  std::set<std::string> names;
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const auto &g = config.groups[i];
    if (!names.insert(g.name).second)
      throw ConfigError(group_location(config, i, "name") + ": group name \"" + g.name + "\" is used twice");
    if (g.ports.empty())
      throw ConfigError(group_location(config, i, "ports") + ": at least one port is required");
    for (const auto &a : g.listen) {
      in_addr v4{};
      in6_addr v6{};
      if (inet_pton(AF_INET, a.c_str(), &v4) != 1 && inet_pton(AF_INET6, a.c_str(), &v6) != 1)
        throw ConfigError(group_location(config, i, "listen") + ": \"" + a +
                          "\" is not an IPv4 or IPv6 address");
      if (inet_pton(AF_INET6, a.c_str(), &v6) == 1 && IN6_IS_ADDR_V4MAPPED(&v6))
        throw ConfigError(group_location(config, i, "listen") + ": \"" + a +
                          "\" is an IPv4-mapped IPv6 address, which cannot be bound; write the IPv4 address");
    }
    if (g.timeout.count() < 0)
      throw ConfigError(group_location(config, i, "timeout") + ": must not be negative");
    if (g.idle_timeout.count() < 0)
      throw ConfigError(group_location(config, i, "idle_timeout") + ": must not be negative");
    if (g.close_grace.count() < 0)
      throw ConfigError(group_location(config, i, "close_grace") + ": must not be negative");
    if (g.capture_bytes > kMaxCaptureBytes)
      throw ConfigError(group_location(config, i, "capture_bytes") + ": " + std::to_string(g.capture_bytes) +
                        " is above the limit of " + std::to_string(kMaxCaptureBytes));
    if (!g.redirect_from.empty() && (g.ports.size() != 1 || g.ports[0] == 0))
      throw ConfigError(group_location(config, i, "ports") +
                        ": a group with redirect_from needs exactly one fixed listener port");
  }
  validate_listeners(config);
  validate_dialed_ports(config);
  validate_host_keys(config);
}

} // namespace sink
