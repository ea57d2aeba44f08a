#pragma once
// What `metrics:` shows for a sensor (and, the output part, for the
// collector): counters of the network side, the journal, each output, and
// the kernel's own view (listen queue overflows, conntrack table).
#include <string>
#include <vector>

#include "Config.h"
#include "MetricsServer.h"
#include "OutputWorker.h"

namespace sink {

class Server;
class OutputDispatcher;
class Journal;

// Per-output families: written, failures, behind (records, seconds), lost, failing.
void add_output_metrics(PrometheusText &m, const std::vector<std::unique_ptr<OutputWorker>> &outputs);
// The kernel's listen-queue overflows/drops and conntrack size, where readable.
void add_kernel_metrics(PrometheusText &m);
// The Prometheus text for a running sensor. Network thread.
std::string sensor_metrics(const Server &server, const OutputDispatcher &outputs, const Journal *journal,
                           const std::string &sensor);
// 503 when an output's last write/flush failed or it is further behind
// than metrics.max_behind_records / max_behind.
// paused: no output can take records (journal full or failing): also 503.
Health outputs_health(const std::vector<std::unique_ptr<OutputWorker>> &outputs, const MetricsConfig &limits,
                      bool paused = false);
// A sensor's health: its outputs' (above), and 503 while a disk records or
// the journal go to is nearly full.
Health sensor_health(const OutputDispatcher &outputs, const MetricsConfig &limits);

} // namespace sink
