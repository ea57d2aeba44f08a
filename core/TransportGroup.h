#pragma once
// A config group at run time on one network thread: its limits, its
// transport plugin instance (one per group per network thread, so a
// transport is never called from two threads) and the timer settings its
// connections share.
#include <sink/plugin.h>

#include <sys/time.h>

#include <atomic>
#include <memory>
#include <string>

#include "Config.h"
#include "HostApi.h"

namespace sink {

inline timeval to_timeval(Duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

// A counter one thread writes and others read (metrics, stats): no lock and
// no locked read-modify-write on the connection path.
class RelaxedCounter {
public:
  void operator++() { *this += 1; }
  void operator+=(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

// Connections of one group on one network thread.
struct GroupCounters {
  RelaxedCounter accepted;
  RelaxedCounter closed[6];
  RelaxedCounter bytes;
};

// The same, summed over the network threads, for the metrics.
struct GroupCounts {
  uint64_t accepted = 0;
  uint64_t closed[6] = {};
  uint64_t bytes = 0;
  void add(const GroupCounters &c) {
    accepted += c.accepted.get();
    for (int r = 0; r < 6; ++r)
      closed[r] += c.closed[r].get();
    bytes += c.bytes.get();
  }
};

struct TransportGroup {
  TransportGroup(const GroupConfig &cfg, const sink_plugin_descriptor &plugin, Logger &logger,
                 const std::string &where, const std::string &config_dir, uint32_t worker);
  ~TransportGroup();
  TransportGroup(const TransportGroup &) = delete;
  TransportGroup &operator=(const TransportGroup &) = delete;

  const GroupConfig &config;
  const char *const plugin_name; // e.g. "tcp"; outlives the group, so records carry it
  const sink_transport_ops *ops;
  std::unique_ptr<sink_host_ctx> ctx;
  void *instance = nullptr;
  const timeval *deadline = nullptr; // libevent common timeout; nullptr = none
  timeval idle{};                    // zero = no idle timeout
  size_t max_single_read = 0;
  GroupCounters counters;
};

} // namespace sink
