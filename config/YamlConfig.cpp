#include "YamlConfig.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ConfigError.h"
#include "ConfigValidation.h"
#include "PortList.h"
#include "YamlStructure.h"

namespace sink {
namespace {

// Builds error messages of the form "file:line: key: what".
class Reader {
public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node &at, const std::string &key, const std::string &what) const {
    std::string where = source_;
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    throw ConfigError(where + ": " + key + ": " + what);
  }

  void expect_map(const YAML::Node &n, const std::string &key) const {
    if (!n.IsMap()) fail(n, key, "expected a mapping");
  }

  // Rejects keys outside `allowed`, so a typo never silently does nothing.
  void only_keys(const YAML::Node &map, const std::string &key, const std::set<std::string> &allowed) const {
    for (auto it = map.begin(); it != map.end(); ++it) {
      auto k = it->first.as<std::string>();
      if (!allowed.count(k)) {
        std::string list;
        for (const auto &a : allowed)
          list += (list.empty() ? "" : ", ") + a;
        fail(it->first, key.empty() ? k : key + "." + k, "unknown key (expected one of " + list + ")");
      }
    }
  }

  std::string scalar(const YAML::Node &n, const std::string &key) const {
    if (!n.IsScalar()) fail(n, key, "expected a single value");
    return n.Scalar();
  }

  // One rule everywhere, plugin options included: true or false, in any
  // letter case (yes/no/on/off are refused: they mean other things elsewhere).
  bool boolean(const YAML::Node &n, const std::string &key) const {
    auto s = scalar(n, key);
    if (auto b = parse_bool(s)) return *b;
    fail(n, key, "expected true or false, got \"" + s + "\"");
  }
  static std::optional<bool> parse_bool(std::string s) {
    for (auto &c : s)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == "true") return true;
    if (s == "false") return false;
    return std::nullopt;
  }

  Duration duration(const YAML::Node &n, const std::string &key) const {
    auto s = scalar(n, key);
    std::string why;
    auto d = parse_go_duration(s, &why);
    if (!d) fail(n, key, "invalid duration \"" + s + "\" (expected " + why + ")");
    return *d;
  }

  // Bytes: a plain integer or one with a binary suffix (KiB, MiB, GiB, TiB).
  uint64_t bytes(const YAML::Node &n, const std::string &key) const {
    const auto s = scalar(n, key);
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    const std::string unit(p, s.data() + s.size());
    int shift = -1;
    if (unit.empty() || unit == "B") shift = 0;
    if (unit == "KiB") shift = 10;
    if (unit == "MiB") shift = 20;
    if (unit == "GiB") shift = 30;
    if (unit == "TiB") shift = 40;
    if (s.empty() || p == s.data() || ec != std::errc() || shift < 0 || v > (UINT64_MAX >> shift))
      fail(n, key,
           "expected a size in bytes such as 1073741824 or 1GiB (units B, KiB, MiB, GiB, TiB), got \"" + s +
               "\"");
    return v << shift;
  }

  size_t size(const YAML::Node &n, const std::string &key) const {
    auto s = scalar(n, key);
    size_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size())
      fail(n, key, "expected a non-negative integer, got \"" + s + "\"");
    return v;
  }

  // A value or a non-empty list of values (an empty list would silently
  // mean "the default", e.g. listen: [] listening everywhere).
  std::vector<std::string> strings(const YAML::Node &n, const std::string &key) const {
    std::vector<std::string> out;
    if (n.IsSequence() && n.size() == 0)
      fail(n, key, "an empty list is not allowed (leave the key out for the default)");
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i)
        out.push_back(scalar(n[i], key + "[" + std::to_string(i) + "]"));
    } else {
      out.push_back(scalar(n, key));
    }
    return out;
  }

  std::vector<uint16_t> ports(const YAML::Node &n, const std::string &key) const {
    std::vector<uint16_t> out;
    std::string why;
    if (n.IsSequence() && n.size() == 0 && key != "firewall.exclude_ports")
      fail(n, key, "an empty list is not allowed");
    if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i)
        if (!append_port_spec(scalar(n[i], key), out, &why)) fail(n[i], key, why);
    } else {
      auto parsed = parse_port_list(scalar(n, key), &why);
      if (!parsed) fail(n, key, why);
      out = *parsed;
    }
    return out;
  }

  // A YAML subtree as JSON, for plugin options. Quoted scalars stay strings;
  // plain ones become bools/numbers when they read as such.
  nlohmann::json to_json(const YAML::Node &n) const {
    if (n.IsMap()) {
      auto obj = nlohmann::json::object();
      for (auto it = n.begin(); it != n.end(); ++it)
        obj[it->first.as<std::string>()] = to_json(it->second);
      return obj;
    }
    if (n.IsSequence()) {
      auto arr = nlohmann::json::array();
      for (const auto &e : n)
        arr.push_back(to_json(e));
      return arr;
    }
    if (n.IsNull()) return nullptr;
    const std::string &s = n.Scalar();
    if (n.Tag() == "!") return s; // quoted
    if (auto b = parse_bool(s)) return *b;
    int64_t i = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
    if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) return i;
    double d = 0;
    auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (!s.empty() && ec2 == std::errc() && p2 == s.data() + s.size()) return d;
    return s;
  }

  const std::string &source() const { return source_; }

private:
  std::string source_;
};

GroupConfig read_group(const Reader &r, const YAML::Node &n, size_t index) {
  const std::string key = "groups[" + std::to_string(index) + "]";
  r.expect_map(n, key);
  GroupConfig g;
  g.line = n.Mark().line + 1;
  if (n["transport"]) g.transport = r.scalar(n["transport"], key + ".transport");
  // A group may carry one options block named after its transport (tls: ...).
  r.only_keys(n, key,
              {"name", "transport", "listen", "ports", "redirect_from", "transparent", "kernel_facts",
               "timeout", "idle_timeout", "capture_bytes", "close_grace", g.transport});
  if (!n["name"]) r.fail(n, key + ".name", "missing required key");
  g.name = r.scalar(n["name"], key + ".name");
  if (g.name.empty()) r.fail(n["name"], key + ".name", "must not be empty");
  if (!n["ports"]) r.fail(n, key + ".ports", "missing required key");
  g.ports = r.ports(n["ports"], key + ".ports");
  if (g.ports.empty()) r.fail(n["ports"], key + ".ports", "at least one port is required");
  if (n["listen"]) g.listen = r.strings(n["listen"], key + ".listen");
  if (n["redirect_from"]) {
    g.redirect_from = r.ports(n["redirect_from"], key + ".redirect_from");
    if (g.redirect_from.empty())
      r.fail(n["redirect_from"], key + ".redirect_from", "at least one port is required");
    if (std::find(g.redirect_from.begin(), g.redirect_from.end(), 0) != g.redirect_from.end())
      r.fail(n["redirect_from"], key + ".redirect_from", "port 0 cannot be dialed (expected ports 1-65535)");
    if (g.ports.size() != 1 || g.ports[0] == 0)
      r.fail(
          n["ports"], key + ".ports",
          "a group with redirect_from needs exactly one fixed listener port for the firewall to redirect to "
          "(got " +
              std::to_string(g.ports.size()) + (g.ports.size() == 1 ? " port: 0" : " ports") + ")");
  }
  if (n["transparent"]) g.transparent = r.boolean(n["transparent"], key + ".transparent");
  if (n["kernel_facts"]) g.kernel_facts = r.boolean(n["kernel_facts"], key + ".kernel_facts");
  // Timeouts below a millisecond would be silently meaningless: refuse them.
  auto timeout = [&](const char *name, Duration &out) {
    if (!n[name]) return;
    out = r.duration(n[name], key + "." + name);
    if (out.count() > 0 && out < std::chrono::milliseconds(1))
      r.fail(n[name], key + "." + name, "must be at least 1ms (or 0 for none)");
  };
  timeout("timeout", g.timeout);
  timeout("idle_timeout", g.idle_timeout);
  timeout("close_grace", g.close_grace);
  if (n["capture_bytes"]) g.capture_bytes = r.size(n["capture_bytes"], key + ".capture_bytes");
  if (n[g.transport]) {
    r.expect_map(n[g.transport], key + "." + g.transport);
    g.transport_options = r.to_json(n[g.transport]);
  }
  return g;
}

// One `- plugin: NAME` entry with its options (outputs, analyzers).
OutputConfig read_plugin_entry(const Reader &r, const YAML::Node &o, const char *section, size_t i) {
  const std::string key = std::string(section) + "[" + std::to_string(i) + "]";
  r.expect_map(o, key);
  if (!o["plugin"]) r.fail(o, key + ".plugin", "missing required key");
  OutputConfig oc;
  oc.line = o.Mark().line + 1;
  oc.plugin = r.scalar(o["plugin"], key + ".plugin");
  oc.options = r.to_json(o);
  oc.options.erase("plugin");
  if (std::string(section) == "outputs" && o["name"]) {
    // The journal keeps each output's position under this name.
    oc.name = r.scalar(o["name"], key + ".name");
    if (oc.name.empty() || oc.name.size() > 200 ||
        oc.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") !=
            std::string::npos ||
        oc.name.front() == '.')
      r.fail(o["name"], key + ".name",
             "expected a name of letters, digits, '-', '_' and '.' ('#' is kept for the default names, "
             "PLUGIN#INDEX)");
    oc.options.erase("name");
  }
  return oc;
}

Config read_config(const YAML::Node &root, const std::string &source) {
  Reader r(source);
  Config c;
  c.source = source;
  if (!root.IsDefined() || root.IsNull()) throw ConfigError(source + ": the file is empty");
  r.expect_map(root, "(top level)");
  r.only_keys(root, "",
              {"log", "plugin_path", "groups", "outputs", "analyzers", "stats_interval", "max_connections",
               "output_backlog", "record_queue", "user", "public_ip", "firewall", "sensor", "journal",
               "metrics", "collect", "workers"});
  if (auto col = root["collect"]) {
    // A collector: records come from a stream, not from connections.
    r.expect_map(col, "collect");
    c.collect.enabled = true;
    c.collect.line = col.Mark().line + 1;
    c.collect.options = r.to_json(col);
    for (const char *key : {"groups", "analyzers", "journal", "firewall", "public_ip", "max_connections",
                            "record_queue", "user", "workers"})
      if (root[key])
        r.fail(
            root[key], key,
            "not used by a collector (a config with collect: reads records from a stream; remove the key)");
  }
  // Records go through the journal unless a YAML config says otherwise.
  c.journal.enabled = true;
  if (auto j = root["journal"]) {
    c.journal.line = j.Mark().line + 1;
    if (j.IsScalar()) {
      c.journal.enabled = r.boolean(j, "journal");
      if (c.journal.enabled) j = YAML::Node(); // `journal: true`: the defaults
    }
    if (j.IsDefined() && !j.IsScalar()) {
      r.expect_map(j, "journal");
      r.only_keys(j, "journal", {"dir", "max_bytes"});
      if (j["dir"]) {
        c.journal.dir = r.scalar(j["dir"], "journal.dir");
        if (c.journal.dir.empty())
          r.fail(j["dir"], "journal.dir", "must not be empty (leave the key out for the default)");
      }
      if (j["max_bytes"]) {
        c.journal.max_bytes = r.bytes(j["max_bytes"], "journal.max_bytes");
        if (c.journal.max_bytes < (uint64_t(1) << 20))
          r.fail(j["max_bytes"], "journal.max_bytes", "must be at least 1MiB");
      }
    }
  }
  if (auto m = root["metrics"]) {
    r.expect_map(m, "metrics");
    r.only_keys(m, "metrics", {"listen", "max_behind_records", "max_behind"});
    if (!m["listen"]) r.fail(m, "metrics.listen", "missing required key (e.g. 127.0.0.1:9464)");
    c.metrics.listen = r.scalar(m["listen"], "metrics.listen");
    if (auto p = metrics_listen_problem(c.metrics.listen); !p.empty())
      r.fail(m["listen"], "metrics.listen", p);
    if (m["max_behind_records"]) {
      c.metrics.max_behind_records = r.size(m["max_behind_records"], "metrics.max_behind_records");
      if (c.metrics.max_behind_records == 0)
        r.fail(m["max_behind_records"], "metrics.max_behind_records", "must be at least 1");
    }
    if (m["max_behind"]) {
      c.metrics.max_behind = r.duration(m["max_behind"], "metrics.max_behind");
      if (c.metrics.max_behind < std::chrono::seconds(1))
        r.fail(m["max_behind"], "metrics.max_behind", "must be at least 1s");
    }
  }
  if (root["sensor"]) {
    c.sensor = r.scalar(root["sensor"], "sensor");
    if (c.sensor.empty() || c.sensor.size() > 253 ||
        c.sensor.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
            std::string::npos)
      r.fail(root["sensor"], "sensor",
             "expected a name of letters, digits, '-' and '_' (it becomes part of stream subjects)");
  }
  if (root["user"]) {
    c.user = r.scalar(root["user"], "user");
    if (c.user.empty())
      r.fail(root["user"], "user", "must not be empty (leave the key out to stay as started)");
    if (auto p = user_problem(c.user); !p.empty()) r.fail(root["user"], "user", p.substr(6));
  }
  if (auto pub = root["public_ip"]) {
    c.public_ip = r.strings(pub, "public_ip");
    if (auto p = public_ip_problem(c.public_ip); !p.empty()) r.fail(pub, "public_ip", p.substr(11));
  }
  if (auto fw = root["firewall"]) {
    r.expect_map(fw, "firewall");
    r.only_keys(fw, "firewall", {"exclude_ports", "sources", "interfaces"});
    if (fw["exclude_ports"]) {
      c.firewall.exclude_ports.clear();
      if (!(fw["exclude_ports"].IsSequence() && fw["exclude_ports"].size() == 0))
        c.firewall.exclude_ports = r.ports(fw["exclude_ports"], "firewall.exclude_ports");
    }
    if (fw["sources"]) {
      c.firewall.sources = r.strings(fw["sources"], "firewall.sources");
      if (auto p = sources_problem(c.firewall.sources); !p.empty())
        r.fail(fw["sources"], "firewall.sources", p.substr(18));
    }
    if (auto ifs = fw["interfaces"]) {
      c.firewall.interfaces = r.strings(ifs, "firewall.interfaces");
      for (size_t i = 0; i < c.firewall.interfaces.size(); ++i) {
        std::string why;
        const auto &name = c.firewall.interfaces[i];
        if (!valid_interface_name(name, &why))
          r.fail(ifs.IsSequence() ? ifs[i] : ifs, "firewall.interfaces", "\"" + name + "\" " + why);
      }
    }
  }
  if (root["stats_interval"]) {
    c.stats_interval = r.duration(root["stats_interval"], "stats_interval");
    if (c.stats_interval.count() > 0 && c.stats_interval < std::chrono::seconds(1))
      r.fail(root["stats_interval"], "stats_interval", "must be at least 1s (or 0 for no stats lines)");
  }
  if (root["max_connections"]) c.max_connections = r.size(root["max_connections"], "max_connections");
  if (root["workers"]) {
    c.workers = r.size(root["workers"], "workers");
    if (c.workers == 0 || c.workers > 1024)
      r.fail(root["workers"], "workers",
             "must be from 1 to 1024 network threads (leave it out for one per CPU)");
  }
  if (root["record_queue"]) {
    c.record_queue = r.size(root["record_queue"], "record_queue");
    if (c.record_queue == 0) r.fail(root["record_queue"], "record_queue", "must be at least 1");
  }
  if (root["output_backlog"]) {
    c.output_backlog = r.size(root["output_backlog"], "output_backlog");
    if (c.output_backlog == 0)
      r.fail(root["output_backlog"], "output_backlog",
             "must be at least 1 (records an output may have waiting)");
  }

  if (auto log = root["log"]) {
    r.expect_map(log, "log");
    r.only_keys(log, "log", {"path", "level", "connections"});
    if (log["path"]) c.log.path = r.scalar(log["path"], "log.path");
    if (log["level"]) c.log.level = r.scalar(log["level"], "log.level");
    if (log["connections"]) c.log.connections = r.boolean(log["connections"], "log.connections");
  }
  if (auto pp = root["plugin_path"]) c.plugin_path = r.strings(pp, "plugin_path");

  auto groups = root["groups"];
  if (!groups && c.collect.enabled) {
    c.journal.enabled = false; // the stream is the collector's journal
  } else {
    if (!groups) r.fail(root, "groups", "missing required key");
    if (!groups.IsSequence() || groups.size() == 0)
      r.fail(groups, "groups", "expected a non-empty list of groups");
    for (size_t i = 0; i < groups.size(); ++i)
      c.groups.push_back(read_group(r, groups[i], i));
  }

  auto outputs = root["outputs"];
  if (!outputs) r.fail(root, "outputs", "missing required key");
  if (!outputs.IsSequence() || outputs.size() == 0)
    r.fail(outputs, "outputs", "expected a non-empty list of outputs");
  for (size_t i = 0; i < outputs.size(); ++i) {
    c.outputs.push_back(read_plugin_entry(r, outputs[i], "outputs", i));
    for (size_t j = 0; j < i; ++j)
      if (!c.outputs[i].name.empty() && c.outputs[j].name == c.outputs[i].name)
        r.fail(outputs[i]["name"], "outputs[" + std::to_string(i) + "].name",
               "\"" + c.outputs[i].name + "\" is already the name of outputs[" + std::to_string(j) + "]");
  }
  if (auto analyzers = root["analyzers"]) {
    if (!analyzers.IsSequence() || analyzers.size() == 0)
      r.fail(analyzers, "analyzers", "expected a non-empty list of analyzers (or no analyzers key)");
    for (size_t i = 0; i < analyzers.size(); ++i)
      c.analyzers.push_back(read_plugin_entry(r, analyzers[i], "analyzers", i));
  }
  validate_config(c);
  return c;
}

YAML::Node parse_text(const std::string &text, const std::string &source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception &e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
}

} // namespace

Config parse_yaml_config(const std::string &text, const std::string &source) {
  check_yaml_structure(text, source);
  try {
    return read_config(parse_text(text, source), source);
  } catch (const YAML::Exception &e) {
    // e.g. a mapping used as a key: still the user's input, still one line.
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ": unexpected structure: " + e.msg);
  }
}

Config load_yaml_config(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw ConfigError(path + ": is a directory, not a config file (give the path of a .yaml file)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read config file: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  Config c = parse_yaml_config(ss.str(), path);
  const auto dir = std::filesystem::absolute(path, ec).parent_path();
  if (!ec) c.config_dir = dir.lexically_normal().string();
  return c;
}

namespace {
void emit_json(YAML::Emitter &out, const nlohmann::json &j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      emit_json(out, it.value());
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto &e : j)
      emit_json(out, e);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << YAML::DoubleQuoted << j.get<std::string>();
  } else if (j.is_null()) {
    out << YAML::Null;
  } else {
    out << j.dump();
  }
}
void emit_plugin_entries(YAML::Emitter &out, const char *section, const std::vector<OutputConfig> &entries) {
  out << YAML::Key << section << YAML::Value << YAML::BeginSeq;
  for (const auto &o : entries) {
    out << YAML::BeginMap << YAML::Key << "plugin" << YAML::Value << o.plugin;
    if (!o.name.empty()) out << YAML::Key << "name" << YAML::Value << o.name;
    for (auto it = o.options.begin(); it != o.options.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      emit_json(out, it.value());
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}
} // namespace

std::string render_yaml_config(const Config &c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "log" << YAML::Value << YAML::BeginMap;
  if (!c.log.path.empty()) out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << c.log.path;
  out << YAML::Key << "level" << YAML::Value << c.log.level;
  out << YAML::Key << "connections" << YAML::Value << c.log.connections;
  out << YAML::EndMap;
  if (!c.plugin_path.empty()) {
    out << YAML::Key << "plugin_path" << YAML::Value << YAML::BeginSeq;
    for (const auto &p : c.plugin_path)
      out << YAML::DoubleQuoted << p;
    out << YAML::EndSeq;
  }
  out << YAML::Key << "stats_interval" << YAML::Value << format_go_duration(c.stats_interval);
  if (c.max_connections) out << YAML::Key << "max_connections" << YAML::Value << c.max_connections;
  if (c.workers) out << YAML::Key << "workers" << YAML::Value << c.workers;
  out << YAML::Key << "output_backlog" << YAML::Value << c.output_backlog;
  if (!c.collect.enabled) out << YAML::Key << "record_queue" << YAML::Value << c.record_queue;
  if (!c.sensor.empty()) out << YAML::Key << "sensor" << YAML::Value << YAML::DoubleQuoted << c.sensor;
  if (!c.user.empty()) out << YAML::Key << "user" << YAML::Value << YAML::DoubleQuoted << c.user;
  if (!c.public_ip.empty()) {
    out << YAML::Key << "public_ip" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto &a : c.public_ip)
      out << YAML::DoubleQuoted << a;
    out << YAML::EndSeq;
  }
  if (!c.collect.enabled) {
    out << YAML::Key << "firewall" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "exclude_ports" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (uint16_t p : c.firewall.exclude_ports)
      out << p;
    out << YAML::EndSeq;
    if (!c.firewall.sources.empty()) {
      out << YAML::Key << "sources" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const auto &s : c.firewall.sources)
        out << YAML::DoubleQuoted << s;
      out << YAML::EndSeq;
    }
    if (!c.firewall.interfaces.empty()) {
      out << YAML::Key << "interfaces" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const auto &name : c.firewall.interfaces)
        out << YAML::DoubleQuoted << name;
      out << YAML::EndSeq;
    }
    out << YAML::EndMap;
  }
  if (!c.collect.enabled) out << YAML::Key << "groups" << YAML::Value << YAML::BeginSeq;
  for (const auto &g : c.groups) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << g.name;
    out << YAML::Key << "transport" << YAML::Value << g.transport;
    if (!g.listen.empty()) {
      out << YAML::Key << "listen" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const auto &a : g.listen)
        out << YAML::DoubleQuoted << a;
      out << YAML::EndSeq;
    }
    out << YAML::Key << "ports" << YAML::Value << YAML::DoubleQuoted << format_port_list(g.ports);
    if (!g.redirect_from.empty())
      out << YAML::Key << "redirect_from" << YAML::Value << YAML::DoubleQuoted
          << format_port_list(g.redirect_from);
    if (g.transparent) out << YAML::Key << "transparent" << YAML::Value << true;
    out << YAML::Key << "kernel_facts" << YAML::Value << g.kernel_facts;
    out << YAML::Key << "timeout" << YAML::Value << format_go_duration(g.timeout);
    out << YAML::Key << "idle_timeout" << YAML::Value << format_go_duration(g.idle_timeout);
    out << YAML::Key << "close_grace" << YAML::Value << format_go_duration(g.close_grace);
    out << YAML::Key << "capture_bytes" << YAML::Value << g.capture_bytes;
    if (!g.transport_options.empty()) {
      out << YAML::Key << g.transport << YAML::Value;
      emit_json(out, g.transport_options);
    }
    out << YAML::EndMap;
  }
  if (!c.collect.enabled) out << YAML::EndSeq;
  if (c.collect.enabled) {
    // A collector has no journal of its own (the stream is one).
  } else if (!c.journal.enabled) {
    out << YAML::Key << "journal" << YAML::Value << false;
  } else {
    out << YAML::Key << "journal" << YAML::Value << YAML::BeginMap;
    if (!c.journal.dir.empty())
      out << YAML::Key << "dir" << YAML::Value << YAML::DoubleQuoted << c.journal.dir;
    out << YAML::Key << "max_bytes" << YAML::Value << c.journal.max_bytes;
    out << YAML::EndMap;
  }
  if (!c.metrics.listen.empty()) {
    out << YAML::Key << "metrics" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "listen" << YAML::Value << YAML::DoubleQuoted << c.metrics.listen;
    out << YAML::Key << "max_behind_records" << YAML::Value << c.metrics.max_behind_records;
    out << YAML::Key << "max_behind" << YAML::Value << format_go_duration(c.metrics.max_behind);
    out << YAML::EndMap;
  }
  if (c.collect.enabled) {
    out << YAML::Key << "collect" << YAML::Value;
    emit_json(out, c.collect.options);
  }
  emit_plugin_entries(out, "outputs", c.outputs);
  if (!c.analyzers.empty()) emit_plugin_entries(out, "analyzers", c.analyzers);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

} // namespace sink
