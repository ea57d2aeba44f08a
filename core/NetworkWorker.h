#pragma once
// One network thread: its own event_base, its own listening sockets (one per
// group address and port, joined to the others' by SO_REUSEPORT when there
// are several workers), its own transport instances, its open connections
// and their counters. Nothing on the per-connection path is shared with
// other workers except the connection cap (one atomic), the id generator and
// the once-per-loop-iteration hand-over of records and log lines.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "Config.h"
#include "Connection.h"
#include "LibeventHandles.h"
#include "Logger.h"
#include "PluginLoader.h"
#include "RecordId.h"
#include "RecordQueue.h"
#include "SocketWatchSet.h"
#include "TransportGroup.h"

namespace sink {

// A listening socket could not be set up; exit code 1.
class BindError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// What every worker shares: set up before the workers run.
struct NetworkShared {
  NetworkShared(const Config &c, Logger &l, RecordQueue &q) : config(c), logger(l), queue(q) {}
  const Config &config;
  Logger &logger;
  RecordQueue &queue;
  RecordIdGenerator ids;
  std::function<bool()> outputs_full; // true pauses accepting
  size_t max_connections = 0;
  std::atomic<size_t> open{0};             // connections open in all workers
  std::atomic<uint64_t> queued_at_stop{0}; // taken from listen queues at shutdown, all workers
  // "accepting paused" is said at most once a minute for all workers.
  std::mutex pause_warning_mutex;
  std::chrono::steady_clock::time_point last_pause_warning{};
  uint64_t pauses_unreported = 0;
  // Takes a slot under max_connections; false when none is left.
  bool reserve_slot() {
    size_t cur = open.load(std::memory_order_relaxed);
    while (cur < max_connections)
      if (open.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) return true;
    return false;
  }
};

class NetworkWorker {
public:
  // Loads the transports and creates this worker's instance of each group's
  // transport (PluginError).
  NetworkWorker(NetworkShared &shared, PluginLoader &loader, uint32_t index);
  ~NetworkWorker();
  NetworkWorker(const NetworkWorker &) = delete;
  NetworkWorker &operator=(const NetworkWorker &) = delete;

  // Binds every listening socket (BindError). `like`: the first worker, whose
  // sockets (and the ports they got) this one joins; nullptr for the first.
  // reuse_port: several workers will listen on each address and port.
  void bind_all(const NetworkWorker *like, bool reuse_port);
  // Runs the loop until stop() (from this thread) or request_stop().
  void run();
  // Closes every connection as "shutdown" (recording those still queued in
  // the kernel) and ends the loop. This worker's thread only.
  void stop();
  // Any thread: makes this worker stop() from its own thread.
  void request_stop();
  // Hands staged records and log lines over now (after the loop ended).
  void flush_staged();

  event_base *base() { return base_.get(); }
  SocketWatchSet &sockets() { return *sockets_; }
  uint32_t index() const { return index_; }
  const std::vector<std::unique_ptr<TransportGroup>> &groups() const { return groups_; }
  uint64_t accepted() const { return counters_.accepted.get(); }
  uint64_t closed(int reason) const { return counters_.closed[reason].get(); }
  uint64_t bytes() const { return counters_.bytes.get(); }
  uint64_t accept_pauses() const { return counters_.accept_pauses.get(); }
  const GroupCounters &unclaimed_counters() const { return unclaimed_counters_; }

  // For Connection.
  Logger &logger() { return shared_.logger; }
  RecordIdGenerator &ids() { return shared_.ids; }
  const char *sensor() const { return shared_.config.sensor.c_str(); }
  bool log_connections() const { return log_connections_; }
  // group: nullptr for a connection no group claimed.
  void count_closed(TransportGroup *group, sink_close_reason reason, uint64_t bytes);
  // The network thread's one read buffer (plain sockets are read into it).
  uint8_t *read_buffer(size_t *size) {
    *size = kReadBufferSize;
    return read_buffer_.get();
  }
  // Takes a finished connection's record; what one loop iteration produced
  // goes to the record thread together when the iteration ends.
  void hand_over(Record &&r);
  void remove(Connection &c);

private:
  // One recv asks for at most this much. Larger reads hold the socket lock
  // longer while the kernel copies, and incoming segments wait in its
  // backlog: measured, 64 KiB drains a loopback flood about 1.5x faster
  // than 256 KiB (and as fast as the floor).
  static constexpr size_t kReadBufferSize = 64 * 1024;
  // One listening socket and the groups it serves, picked by dialed port.
  struct Listener {
    NetworkWorker *worker;
    Endpoint local;
    std::string addr;         // as configured ("" = all addresses)
    bool fixed_local = false; // bound to one address: every connection's local address is `local`
    int fd = -1;
    EventPtr readable;
    std::vector<TransportGroup *> groups; // in config order
    TransportGroup *fallback = nullptr;   // the group without redirect_from, if any
    std::vector<uint16_t> by_dialed_port; // 65536 entries: index into groups + 1; empty = always fallback
    ~Listener();
    // The group for a connection that dialed `port`, or nullptr.
    TransportGroup *pick(uint16_t port) const;
  };
  static void on_listener_readable(evutil_socket_t fd, short, void *listener);
  static void on_loop_tail(evutil_socket_t, short, void *self);
  static void on_stop_request(evutil_socket_t, short, void *self);
  // Makes a connection for an accepted socket and starts it; nullptr when it
  // already ended (no group claims it, or the transport refused it).
  Connection *accept_connection(Listener &l, int fd, const sockaddr *peer);
  // Binds one listening socket for group (BindError) and keeps it.
  Listener *open_listener_for(TransportGroup &group, const std::string &addr, uint16_t port, bool reuse_port,
                              bool probe);
  // Records the configured public address instead of a private one.
  void apply_public_ip(Endpoint &dialed) const;
  void add(std::unique_ptr<Connection> c);
  // Stops accepting and timers, closes every connection as "shutdown".
  void close_everything();
  // Stops accepting (connection cap or no descriptors left) until
  // resume_accepting; warns at most once a minute.
  void pause_accepting(const std::string &why);
  void resume_accepting();
  static void on_resume_timer(evutil_socket_t, short, void *self);

  NetworkShared &shared_;
  const uint32_t index_;
  bool log_connections_;
  EventBasePtr base_;
  std::unique_ptr<SocketWatchSet> sockets_; // the sockets this thread reads itself; outlives connections_
  std::vector<std::unique_ptr<TransportGroup>> groups_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  // Open connections, in no particular order (removal swaps the last one into
  // the gap): no list node per connection.
  std::vector<std::unique_ptr<Connection>> connections_;
  struct Counters {
    RelaxedCounter accepted;
    RelaxedCounter closed[6];
    RelaxedCounter bytes;
    RelaxedCounter accept_pauses;
  };
  Counters counters_;
  GroupCounters unclaimed_counters_; // connections no group claimed
  std::vector<Endpoint> public_ips_; // config public_ip, parsed
  bool paused_ = false;
  bool stopped_ = false;
  EventPtr resume_timer_;
  EventPtr loop_tail_; // activated by the first record or log line of an iteration
  EventPtr stop_event_;
  int stop_fd_ = -1; // eventfd: request_stop() from another thread
  std::vector<Record> staged_;
  LogBatch log_batch_;
  std::unique_ptr<uint8_t[]> read_buffer_;
};

} // namespace sink
