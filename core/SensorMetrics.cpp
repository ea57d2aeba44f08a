#include "SensorMetrics.h"

#include <fstream>
#include <sstream>

#include "Journal.h"
#include "OutputDispatcher.h"
#include "Server.h"

namespace sink {
namespace {

// TcpExt counters from /proc/net/netstat: a header line of names, then one
// of values.
std::vector<std::pair<std::string, std::string>> tcp_ext() {
  std::ifstream in("/proc/net/netstat");
  std::string names, values;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream n(names), v(values);
    std::vector<std::pair<std::string, std::string>> out;
    std::string a, b;
    while (n >> a && v >> b)
      out.emplace_back(a, b);
    return out;
  }
  return {};
}

bool read_number(const char *path, double *value) {
  std::ifstream in(path);
  return static_cast<bool>(in >> *value);
}

} // namespace

void add_output_metrics(PrometheusText &m, const std::vector<std::unique_ptr<OutputWorker>> &outputs) {
  auto each = [&](const char *name, const char *type, const char *help, auto value) {
    m.family(name, type, help);
    for (const auto &o : outputs) {
      std::string label = o->label();
      if (label.rfind("output ", 0) == 0) label = label.substr(7);
      m.sample(name, static_cast<double>(value(*o)), {{"output", label}});
    }
  };
  each("sink_output_written_total", "counter", "Records the output confirmed (successful flush).",
       [](const OutputWorker &o) { return o.written(); });
  each("sink_output_failures_total", "counter", "Failed write or flush calls.",
       [](const OutputWorker &o) { return o.failures(); });
  each("sink_output_behind_records", "gauge", "Records the output has not confirmed yet.",
       [](const OutputWorker &o) { return o.outstanding(); });
  each("sink_output_behind_seconds", "gauge",
       "While records wait: seconds since the output last confirmed any.",
       [](const OutputWorker &o) { return o.seconds_behind(); });
  each("sink_output_lost_total", "counter",
       "Records lost for this output (skipped while it lagged, or poison records).",
       [](const OutputWorker &o) { return o.lost(); });
  each("sink_output_set_aside_total", "counter",
       "Records the output refused for good, set aside in the dead-letter file.",
       [](const OutputWorker &o) { return o.set_aside(); });
  each("sink_output_failing", "gauge", "1 while the output's last write or flush failed.",
       [](const OutputWorker &o) { return o.failing() ? 1 : 0; });
}

void add_kernel_metrics(PrometheusText &m) {
  for (const auto &[name, value] : tcp_ext()) {
    const char *metric = name == "ListenOverflows" ? "sink_kernel_listen_overflows_total"
                         : name == "ListenDrops"   ? "sink_kernel_listen_drops_total"
                                                   : nullptr;
    if (!metric) continue;
    m.family(metric, "counter", "TcpExt " + name + " from /proc/net/netstat (this network namespace).");
    m.sample(metric, std::stod(value));
  }
  double v = 0;
  if (read_number("/proc/sys/net/netfilter/nf_conntrack_count", &v)) {
    m.family("sink_conntrack_entries", "gauge", "Entries in the conntrack table.");
    m.sample("sink_conntrack_entries", v);
  }
  if (read_number("/proc/sys/net/netfilter/nf_conntrack_max", &v)) {
    m.family("sink_conntrack_max", "gauge", "Size limit of the conntrack table.");
    m.sample("sink_conntrack_max", v);
  }
}

std::string sensor_metrics(const Server &server, const OutputDispatcher &outputs, const Journal *journal,
                           const std::string &sensor) {
  PrometheusText m;
  m.family("sink_info", "gauge", "Constant 1, labelled with the sensor name.");
  m.sample("sink_info", 1, {{"sensor", sensor}});
  const auto groups = server.group_counters();
  m.family("sink_connections_accepted_total", "counter", "Connections accepted, by group (\"\": no group).");
  for (const auto &[g, c] : groups)
    m.sample("sink_connections_accepted_total", static_cast<double>(c.accepted), {{"group", g}});
  m.family("sink_connections_closed_total", "counter", "Connections closed, by group and close reason.");
  for (const auto &[g, c] : groups)
    for (int r = 0; r < 6; ++r)
      m.sample("sink_connections_closed_total", static_cast<double>(c.closed[r]),
               {{"group", g}, {"reason", sink_close_reason_name(static_cast<sink_close_reason>(r))}});
  m.family("sink_received_bytes_total", "counter", "Application bytes received, by group.");
  for (const auto &[g, c] : groups)
    m.sample("sink_received_bytes_total", static_cast<double>(c.bytes), {{"group", g}});
  m.family("sink_worker_connections_accepted_total", "counter",
           "Connections accepted, by network thread (workers:).");
  for (size_t i = 0; i < server.workers(); ++i)
    m.sample("sink_worker_connections_accepted_total", static_cast<double>(server.worker_accepted(i)),
             {{"worker", std::to_string(i)}});
  m.family("sink_connections_open", "gauge", "Connections open now.");
  m.sample("sink_connections_open", static_cast<double>(server.open_connections()));
  m.family("sink_accept_pauses_total", "counter",
           "Times accepting paused (connection limit, no descriptors, or no room for records).");
  m.sample("sink_accept_pauses_total", static_cast<double>(server.accept_pauses()));
  m.family("sink_record_queue_depth", "gauge", "Finished records not yet journalled / handed to outputs.");
  m.sample("sink_record_queue_depth", static_cast<double>(outputs.queued()));
  if (journal) {
    m.family("sink_journal_records", "gauge", "Records in the journal.");
    m.sample("sink_journal_records", static_cast<double>(journal->records()));
    m.family("sink_journal_bytes", "gauge", "Bytes of journal on disk.");
    m.sample("sink_journal_bytes", static_cast<double>(journal->bytes()));
    m.family("sink_journal_max_bytes", "gauge", "journal.max_bytes.");
    m.sample("sink_journal_max_bytes", static_cast<double>(journal->max_bytes()));
  }
  add_output_metrics(m, outputs.outputs());
  const auto disks = outputs.disks();
  m.family("sink_disk_free_bytes", "gauge", "Free bytes on the disk an output or the journal writes to.");
  for (const auto &d : disks)
    m.sample("sink_disk_free_bytes", static_cast<double>(d.free_bytes), {{"use", d.what}, {"dir", d.dir}});
  m.family("sink_disk_low", "gauge", "1 while that disk has less than 10% (or 10 GiB) free.");
  for (const auto &d : disks)
    m.sample("sink_disk_low", d.low ? 1 : 0, {{"use", d.what}, {"dir", d.dir}});
  add_kernel_metrics(m);
  return m.text();
}

Health sensor_health(const OutputDispatcher &outputs, const MetricsConfig &limits) {
  Health h = outputs_health(outputs.outputs(), limits, outputs.every_output_full());
  for (const auto &d : outputs.disks())
    if (d.low) {
      h.ok = false;
      h.why += "disk: \"" + d.dir + "\" (" + d.what + ") has " + std::to_string(d.free_bytes) + " of " +
               std::to_string(d.size_bytes) + " bytes free\n";
    }
  return h;
}

Health outputs_health(const std::vector<std::unique_ptr<OutputWorker>> &outputs, const MetricsConfig &limits,
                      bool paused) {
  Health h;
  if (paused) {
    h.ok = false;
    h.why += "records: nothing can take them (journal full or failing, or every output's backlog full); "
             "accepting is paused\n";
  }
  const double max_seconds = std::chrono::duration<double>(limits.max_behind).count();
  for (const auto &o : outputs) {
    std::string why;
    if (o->failing())
      why = "its last write or flush failed";
    else if (o->outstanding() > limits.max_behind_records)
      why = std::to_string(o->outstanding()) + " records behind (limit " +
            std::to_string(limits.max_behind_records) + ")";
    else if (o->seconds_behind() > max_seconds)
      why = "no record confirmed for " + std::to_string(static_cast<long long>(o->seconds_behind())) +
            " s while records wait (limit " + std::to_string(static_cast<long long>(max_seconds)) + " s)";
    if (why.empty()) continue;
    h.ok = false;
    h.why += o->label() + ": " + why + "\n";
  }
  return h;
}

} // namespace sink
