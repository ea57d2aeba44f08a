#include "ConfigValidation.h"

#include <arpa/inet.h>

#include <set>

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

} // namespace

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
  if (config.groups.empty()) throw ConfigError(config.source + ": groups: at least one group is required");
  if (config.outputs.empty()) throw ConfigError(config.source + ": outputs: at least one output is required");
  if (config.stats_interval.count() < 0)
    throw ConfigError(config.source + ": stats_interval: must not be negative");
  static const std::set<std::string> levels{"debug", "info", "warn", "error"};
  if (!levels.count(config.log.level))
    throw ConfigError(config.source + ": log.level: \"" + config.log.level +
                      "\" is not one of debug, info, warn, error");

  struct Taken {
    size_t group;
    Bind bind;
    uint16_t port;
  };
  std::vector<Taken> taken;
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

    std::vector<std::string> addrs = g.listen;
    if (addrs.empty()) addrs.push_back("");
    for (const auto &addr : addrs) {
      Bind b = classify(addr);
      for (uint16_t port : g.ports) {
        if (port == 0) continue; // ephemeral: never collides
        for (const auto &t : taken) {
          if (t.port != port || !overlaps(t.bind, b)) continue;
          const auto &other = config.groups[t.group];
          std::string who = t.group == i
                                ? "this group"
                                : "group \"" + other.name + "\"" +
                                      (other.line ? " (line " + std::to_string(other.line) + ")" : "");
          throw ConfigError(group_location(config, i, "ports") + ": port " + std::to_string(port) + " on " +
                            show(addr) + " is already taken by " + who + " on " + show(t.bind.addr));
        }
        taken.push_back({i, b, port});
      }
    }
  }
}

} // namespace sink
