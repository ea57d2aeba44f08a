#include "CommandLine.h"

#include <charconv>
#include <functional>
#include <map>

#include "ConfigValidation.h"
#include "PortList.h"
#include "YamlConfig.h"

namespace sink {
namespace {

// Values of the original's flags, with its defaults.
struct LegacyFlags {
  std::string ip;
  std::string ports = "12345";
  Duration timeout = std::chrono::minutes(1);
  long long buff_size = 2048;
  bool flush = true;
  bool header = false;
  std::string out;
  std::string log;
  bool tls = false;
  std::string tls_cert = "server.crt";
  std::string tls_key = "server.key";
};

std::optional<bool> parse_go_bool(const std::string &s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") return false;
  return std::nullopt;
}

struct FlagSpec {
  bool is_bool;
  bool legacy; // one of the original's flags (cannot mix with -config)
  std::function<void(const std::string &flag, const std::string &value)> set;
};

[[noreturn]] void bad_value(const std::string &flag, const std::string &value, const std::string &why) {
  throw UsageError("invalid value \"" + value + "\" for flag -" + flag + ": " + why);
}

Config build_legacy_config(const LegacyFlags &f) {
  Config c;
  c.source = "command line";
  c.log.path = f.log;
  c.log.connections = true;
  // The original's log has its own lines only: ours (plugins, limits, stats)
  // go to debug, warnings and errors still show.
  c.log.level = "warn";
  GroupConfig g;
  g.kernel_facts = false; // the original's records only
  g.name = "default";
  g.transport = f.tls ? "tls" : "tcp";
  if (!f.ip.empty()) g.listen.push_back(f.ip);
  std::string why;
  auto ports = parse_port_list(f.ports, &why);
  if (!ports) bad_value("p", f.ports, why);
  g.ports = *ports;
  g.timeout = f.timeout;
  g.capture_bytes = static_cast<size_t>(f.buff_size);
  if (f.tls) g.transport_options = {{"cert", f.tls_cert}, {"key", f.tls_key}};
  c.groups.push_back(std::move(g));
  OutputConfig out;
  out.plugin = "csv";
  out.options = {{"path", f.out.empty() ? "-" : f.out}, {"header", f.header}, {"flush", f.flush}};
  c.outputs.push_back(std::move(out));
  return c;
}

} // namespace

Config legacy_default_config() { return build_legacy_config(LegacyFlags{}); }

CommandLine parse_command_line(const std::vector<std::string> &args) {
  LegacyFlags f;
  CommandLine cl;
  std::string config_path;
  std::string first_legacy;
  bool help = false, print_config = false, version = false;
  std::string user;

  auto str = [](std::string &dst) { return [&dst](const std::string &, const std::string &v) { dst = v; }; };
  auto boolean = [](bool &dst) {
    return [&dst](const std::string &flag, const std::string &v) {
      auto b = parse_go_bool(v);
      if (!b)
        throw UsageError("invalid boolean value \"" + v + "\" for -" + flag + ": expected true or false");
      dst = *b;
    };
  };
  const std::map<std::string, FlagSpec> flags{
      {"ip", {false, true, str(f.ip)}},
      {"p",
       {false, true,
        [&](const std::string &flag, const std::string &v) {
          std::string why;
          if (!parse_port_list(v, &why)) bad_value(flag, v, why);
          f.ports = v;
        }}},
      {"timeout",
       {false, true,
        [&](const std::string &flag, const std::string &v) {
          std::string why;
          auto d = parse_go_duration(v, &why);
          if (!d) bad_value(flag, v, "expected " + why);
          if (d->count() < 0) bad_value(flag, v, "must not be negative");
          f.timeout = *d;
        }}},
      {"buffSize",
       {false, true,
        [&](const std::string &flag, const std::string &v) {
          long long n = 0;
          auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
          if (v.empty() || ec != std::errc() || p != v.data() + v.size())
            bad_value(flag, v, "expected an integer");
          if (n < 0 || static_cast<unsigned long long>(n) > kMaxCaptureBytes)
            bad_value(flag, v, "expected 0 to " + std::to_string(kMaxCaptureBytes));
          f.buff_size = n;
        }}},
      {"flush", {true, true, boolean(f.flush)}},
      {"header", {true, true, boolean(f.header)}},
      {"out", {false, true, str(f.out)}},
      {"log", {false, true, str(f.log)}},
      {"tls", {true, true, boolean(f.tls)}},
      {"tlsCert", {false, true, str(f.tls_cert)}},
      {"tlsKey", {false, true, str(f.tls_key)}},
      {"h", {true, false, boolean(help)}},
      {"help", {true, false, boolean(help)}},
      {"config", {false, false, str(config_path)}},
      {"print-config", {true, false, boolean(print_config)}},
      {"version", {true, false, boolean(version)}},
      {"user", {false, false, str(user)}},
  };

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg == "--") {
      if (i + 1 < args.size()) throw UsageError("unexpected argument \"" + args[i + 1] + "\"");
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      // Go's flag package would silently stop here, so "-flush false" would
      // ignore every flag after it. Refuse instead.
      std::string hint;
      if (i > 0 && (arg == "true" || arg == "false"))
        hint = " (boolean flags take the form " + args[i - 1] + "=" + arg + ")";
      throw UsageError("unexpected argument \"" + arg + "\"" + hint);
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    if (name.empty() || name[0] == '-' || name[0] == '=') throw UsageError("bad flag syntax: " + arg);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto it = flags.find(name);
    if (it == flags.end()) throw UsageError("flag provided but not defined: -" + name);
    const FlagSpec &spec = it->second;
    if (!value) {
      if (spec.is_bool) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) throw UsageError("flag needs an argument: -" + name);
        value = args[++i];
      }
    }
    if (spec.legacy && first_legacy.empty()) first_legacy = name;
    spec.set(name, *value);
  }

  if (help) {
    cl.action = CommandLine::Action::kHelp;
    return cl;
  }
  if (version) {
    cl.action = CommandLine::Action::kVersion;
    return cl;
  }
  if (!config_path.empty()) {
    if (!first_legacy.empty())
      throw UsageError("flag -" + first_legacy +
                       " cannot be combined with -config (put it in the config file)");
    cl.config = load_yaml_config(config_path);
  } else {
    cl.config = build_legacy_config(f);
    validate_config(cl.config);
  }
  if (!user.empty()) {
    cl.config.user = user; // --user overrides the config's user:
    validate_config(cl.config);
  }
  if (print_config) cl.action = CommandLine::Action::kPrintConfig;
  return cl;
}

std::string usage_text(const std::string &program) {
  return "Usage:\n"
         "    " +
         program +
         " [OPTION]...\n"
         "    " +
         program +
         " -config FILE.yaml\n"
         "    " +
         program +
         " firewall --config FILE.yaml [--iptables] [--apply | --remove]\n"
         "    " +
         program +
         " collect --config FILE.yaml\n"
         "\n"
         "Description:\n"
         "    Sink server accepts TCP (or TLS with -tls option) handshakes and data packets. "
         "It never sends any data back to server. When timeout, the sink server closes the connection. "
         "By default, print CSV results to stdout and log to stderr.\n"
         "\n"
         "Examples:\n"
         "    Listening on port 3000, 4000, 4001, and 4002 of 127.0.0.1 as a TCP server. "
         "Close each TCP connection after 5 seconds (if the client has not closed it yet):\n"
         "\t" +
         program +
         " -ip 127.0.0.1 -p 3000,4000-4002 -timeout 5s\n"
         "\n"
         "    Listening on port 4000 of 0.0.0.0 as a TLS server. Write CSV output, including the header, "
         "to ouptput.csv. Log to log.txt.\n"
         "\t" +
         program +
         " -tls -tlsCert ./server.crt -tlsKey ./server.key -p 4000 -header=true "
         "-out output.csv -log log.txt\n"
         "\n"
         "    Run several port groups and outputs (CSV, JSON Lines) from a YAML file:\n"
         "\t" +
         program +
         " -config config/examples/basic.yaml\n"
         "\n"
         "Subcommands (each takes -h):\n"
         "    firewall  print the nftables (or iptables) rules a config needs; --apply loads them into "
         "table inet sink, --remove deletes it.\n"
         "    collect   read records from a NATS JetStream stream (the config's collect: block) and hand "
         "them to its outputs.\n"
         "\n"
         "YAML config keys (sink.yaml(5)):\n"
         "    log (path, level, connections), groups (name, transport, listen, ports, redirect_from, "
         "transparent, kernel_facts, timeout, idle_timeout, close_grace, capture_bytes), outputs, "
         "analyzers, plugin_path, user, sensor, public_ip, firewall (exclude_ports, sources, interfaces), "
         "journal (dir, max_bytes), metrics (listen, max_behind_records, max_behind), collect, "
         "stats_interval, max_connections, workers, output_backlog, record_queue.\n"
         "\n"
         "Notes:\n"
         "    The CSV field \"len\" records the total number of bytes received in a connection.\n"
         "    The CSV field is called \"truncatedPayload\" because it only keeps the first -buffSize bytes "
         "of payload for each connection, which may not be complete. When len <= -buffSize, the payload "
         "is complete without being truncated.\n"
         "\n"
         "Options:\n"
         "  -buffSize int\n"
         "    \tSet recv buffer size. This is also the max number of bytes to keep in CSV's "
         "truncatedPayload field. (default 2048)\n"
         "  -config string\n"
         "    \tread the configuration from this YAML file (cannot be combined with the options below "
         "except -print-config).\n"
         "  -flush\n"
         "    \tflush after every output. (default true)\n"
         "  -header\n"
         "    \tprint CSV header.\n"
         "  -ip string\n"
         "    \tIP address to listen on. (default listen on 0.0.0.0 and ::/0)\n"
         "  -log string\n"
         "    \tlog to file.  (default stderr)\n"
         "  -out string\n"
         "    \toutput csv file.  (default stdout)\n"
         "  -p string\n"
         "    \tcomma-separated list of ports to listen on. eg. 3000,4000-4002 (default \"12345\")\n"
         "  -print-config\n"
         "    \tprint the configuration these options make, as YAML, and exit.\n"
         "  -timeout duration\n"
         "    \ttimeout value. (default 1m0s)\n"
         "  -tls\n"
         "    \tlisten with TLS.\n"
         "  -tlsCert string\n"
         "    \tspecify TLS certificate file (PEM) for listening. (default \"server.crt\")\n"
         "  -tlsKey string\n"
         "    \tspecify TLS private key (PEM) for listening. (default \"server.key\")\n"
         "  -user string\n"
         "    \tafter binding and opening every file, switch to this user and drop all privileges.\n"
         "  -version\n"
         "    \tprint sink's version, the plugin ABI and the libevent and OpenSSL versions, and exit.\n";
}

} // namespace sink
