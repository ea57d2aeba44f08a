#pragma once
// The network side: `workers` network threads (NetworkWorker), each with its
// own event loop, listening sockets and connections; the signals that stop
// or reopen (on the first worker's loop); counters summed over the workers.
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "NetworkWorker.h"

namespace sink {

class Server {
public:
  // Creates the workers and their transport instances (PluginError).
  Server(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue);
  ~Server();
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Binds every listening socket of every worker, or none (BindError).
  void bind_all();
  // Runs until SIGINT/SIGTERM, then closes every connection as "shutdown".
  void run(std::function<void()> on_reopen);

  // One line of counters (also logged every stats_interval); `extra` adds the
  // output side.
  std::string stats_line() const;
  void set_stats_extra(std::function<std::string()> extra) { stats_extra_ = std::move(extra); }
  // Asked after each accept and before resuming (from every network
  // thread): true pauses accepting.
  void set_backpressure(std::function<bool()> full) { shared_.outputs_full = std::move(full); }
  size_t max_connections() const { return shared_.max_connections; }
  size_t workers() const { return workers_.size(); }

  // Counters by group name ("" = connections no group claimed), in config
  // order, summed over the workers. Any thread.
  std::vector<std::pair<std::string, GroupCounts>> group_counters() const;
  size_t open_connections() const { return shared_.open.load(std::memory_order_relaxed); }
  uint64_t accept_pauses() const;
  // Connections worker i accepted (how evenly the kernel spreads them).
  uint64_t worker_accepted(size_t i) const { return workers_[i]->accepted(); }
  // The first worker's loop: the metrics endpoint and the signals run there.
  event_base *base() { return workers_.front()->base(); }

private:
  static void on_signal(evutil_socket_t sig, short, void *self);
  static void on_stats_timer(evutil_socket_t, short, void *self);

  NetworkShared shared_;
  std::vector<std::unique_ptr<NetworkWorker>> workers_;
  std::vector<std::thread> threads_; // workers 1..N-1
  std::vector<EventPtr> signals_;
  EventPtr stats_timer_;
  std::function<void()> on_reopen_;
  std::function<std::string()> stats_extra_;
};

} // namespace sink
