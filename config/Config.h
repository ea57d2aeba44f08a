#pragma once
// The in-memory configuration. YAML is the source of truth; the legacy flag
// shim builds the same structure.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "Duration.h"

namespace sink {

struct LogConfig {
  std::string path;           // empty = stderr
  std::string level = "info"; // debug, info, warn, error
  bool connections = false;   // the original's Open:/Recv:/Close: lines
};

struct GroupConfig {
  std::string name;
  std::string transport = "tcp";
  std::vector<std::string> listen; // empty = all IPv4 and IPv6 addresses
  std::vector<uint16_t> ports;
  // Dialed ports a firewall redirects to this group's one listener port;
  // after accept the host picks the group by the port the client dialed.
  // Empty: the group takes what no other group on its listener claims.
  std::vector<uint16_t> redirect_from;
  bool transparent = false;                   // IP_TRANSPARENT listeners, for TPROXY
  bool kernel_facts = true;                   // the client's SYN and TCP_INFO as tcp.* extras (legacy: off)
  Duration timeout = std::chrono::minutes(1); // 0 = no absolute deadline
  Duration idle_timeout{0};                   // 0 = off
  size_t capture_bytes = 2048;
  // After a server-side close (deadline, idle) we stop sending, keep reading
  // this long, then close: a close with unread data makes the kernel send RST.
  Duration close_grace = std::chrono::seconds(1); // 0 = close at once
  nlohmann::json transport_options = nlohmann::json::object();
  int line = 0; // 1-based line in the config file, 0 if generated
};

// An `outputs:` or `analyzers:` entry: a plugin and its options.
struct OutputConfig {
  std::string plugin;                                // bare name or path
  std::string name;                                  // outputs: `name:`, "" = PLUGIN#INDEX
  nlohmann::json options = nlohmann::json::object(); // everything but "plugin"
  int line = 0;
};

// What `sink firewall` needs beyond the groups.
struct FirewallConfig {
  std::vector<uint16_t> exclude_ports{22}; // never redirected (SSH keeps working)
  std::vector<std::string> sources;        // CIDRs; empty = every source
  std::vector<std::string> interfaces;     // arriving on these only; empty = every interface
};

// The crash-safe record journal (core/Journal.h).
struct JournalConfig {
  bool enabled = false; // YAML configs: on unless `journal: false`; legacy flags: off
  std::string dir;      // "" = $STATE_DIRECTORY, else ./sink-journal (set at start)
  uint64_t max_bytes = uint64_t(1) << 30;
  int line = 0; // of the journal: key, for messages
};

// Prometheus metrics and /healthz over HTTP.
struct MetricsConfig {
  std::string listen; // "ADDR:PORT"; "" = off
  // /healthz answers 503 when an output is further behind than this.
  uint64_t max_behind_records = 100000;
  Duration max_behind = std::chrono::minutes(5);
};

// `sink collect`: read records from a JetStream stream and hand them to the
// outputs. The options are the nats output's connection options plus the
// consumer's (checked by the collector at start).
struct CollectConfig {
  bool enabled = false;
  nlohmann::json options = nlohmann::json::object();
  int line = 0;
};

struct Config {
  std::string source = "<built-in>"; // file name, for messages
  // This sensor's name in every record; "" = the host name (set at start).
  std::string sensor;
  LogConfig log;
  std::vector<std::string> plugin_path; // empty = beside the binary
  std::vector<GroupConfig> groups;
  std::vector<OutputConfig> outputs;
  std::vector<OutputConfig> analyzers; // run on every record, in order, before outputs
  // Absolute directory of the config file; the working directory for flags
  // and the built-in config. Plugins get it as create args' config_dir.
  std::string config_dir;
  Duration stats_interval = std::chrono::minutes(1); // 0 = off
  size_t max_connections = 0;                        // 0 = from the open-file limit
  size_t workers = 0;                                // network threads; 0 = one per CPU
  // Records one output may have waiting. Beyond it a lagging output skips
  // its oldest (counted lost for it alone) while another output keeps up;
  // when every output is this far behind, accepting pauses instead.
  size_t output_backlog = 100000;
  // Finished records waiting for the record thread (analyzers) before the
  // network thread waits for it.
  size_t record_queue = 16384;
  std::string user;                   // switch to this user once everything is open; "" = stay
  std::vector<std::string> public_ip; // at most one IPv4 and one IPv6: recorded instead of the socket's
  FirewallConfig firewall;
  JournalConfig journal;
  MetricsConfig metrics;
  CollectConfig collect; // enabled: a collector config (no groups)
};

// Largest capture_bytes we accept: bounds memory per connection.
inline constexpr size_t kMaxCaptureBytes = 16 * 1024 * 1024;

} // namespace sink
