#pragma once
// The network side: one event_base, a listener per group address and port,
// the table of open connections, and the signals that stop or reopen.
#include <chrono>
#include <functional>
#include <list>
#include <memory>
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
#include "TransportGroup.h"

namespace sink {

// A listening socket could not be set up; exit code 1.
class BindError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class Server {
public:
  // Loads the transports and creates one instance per group (PluginError).
  Server(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue);
  ~Server();
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Binds every listening socket, or none (BindError).
  void bind_all();
  // Runs until SIGINT/SIGTERM, then closes every connection as "shutdown".
  void run(std::function<void()> on_reopen);

  // One line of counters (also logged every stats_interval); `extra` adds the
  // output side.
  std::string stats_line() const;
  void set_stats_extra(std::function<std::string()> extra) { stats_extra_ = std::move(extra); }
  // Asked after each accept and before resuming: true pauses accepting.
  void set_backpressure(std::function<bool()> full) { outputs_full_ = std::move(full); }
  size_t max_connections() const { return max_connections_; }

  // For Connection.
  Logger &logger() { return logger_; }
  // group: nullptr for a connection no group claimed.
  void count_closed(TransportGroup *group, sink_close_reason reason, uint64_t bytes);

  // Counters by group name ("" = connections no group claimed), in config
  // order. Network thread only (the metrics endpoint runs there too).
  std::vector<std::pair<std::string, GroupCounters>> group_counters() const;
  size_t open_connections() const { return connections_.size(); }
  uint64_t accept_pauses() const { return counters_.accept_pauses; }
  RecordQueue &queue() { return queue_; }
  RecordIdGenerator &ids() { return ids_; }
  const char *sensor() const { return config_.sensor.c_str(); }
  event_base *base() { return base_.get(); }
  bool log_connections() const { return log_connections_; }
  // The network thread's one read buffer (plain sockets are read into it).
  uint8_t *read_buffer(size_t *size) {
    *size = kReadBufferSize;
    return read_buffer_.get();
  }
  // Takes a finished connection's record; what one loop iteration produced
  // goes to the record thread together when the iteration ends.
  void hand_over(Record &&r);
  void add(std::unique_ptr<Connection> c);
  void remove(Connection &c);

private:
  // One listening socket and the groups it serves, picked by dialed port.
  struct Listener {
    Server *server;
    Endpoint local;
    bool fixed_local = false; // bound to one address: every connection's local address is `local`
    ListenerPtr lev;
    std::vector<TransportGroup *> groups; // in config order
    TransportGroup *fallback = nullptr;   // the group without redirect_from, if any
    std::vector<uint16_t> by_dialed_port; // 65536 entries: index into groups + 1; empty = always fallback
    // The group for a connection that dialed `port`, or nullptr.
    TransportGroup *pick(uint16_t port) const;
  };
  struct Counters {
    uint64_t accepted = 0;
    uint64_t closed[6] = {};
    uint64_t bytes = 0;
    uint64_t accept_pauses = 0;
  };
  static constexpr size_t kReadBufferSize = 256 * 1024;
  static void on_loop_tail(evutil_socket_t, short, void *self);
  // Hands staged records and log lines over now.
  void flush_staged();
  static void on_accept(evconnlistener *, evutil_socket_t fd, sockaddr *peer, int, void *listener);
  // Makes a connection for an accepted socket and starts it; nullptr when it
  // already ended (no group claims it, or the transport refused it).
  Connection *accept_connection(Listener &l, int fd, const sockaddr *peer);
  // Binds one listening socket for group (BindError) and keeps it.
  Listener *open_listener_for(TransportGroup &group, const std::string &addr, uint16_t port);
  // Records the configured public address instead of a private one.
  void apply_public_ip(Endpoint &dialed) const;
  static void on_accept_error(evconnlistener *lev, void *listener);
  static void on_signal(evutil_socket_t sig, short, void *self);
  void stop();
  // Stops accepting and timers, closes every connection as "shutdown".
  void close_everything();
  // Stops accepting (connection cap or no descriptors left) until
  // resume_accepting; warns at most once a minute.
  void pause_accepting(const std::string &why);
  void resume_accepting();
  static void on_resume_timer(evutil_socket_t, short, void *self);
  static void on_stats_timer(evutil_socket_t, short, void *self);

  const Config &config_;
  Logger &logger_;
  RecordQueue &queue_;
  bool log_connections_;
  EventBasePtr base_;
  std::vector<std::unique_ptr<TransportGroup>> groups_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::list<std::unique_ptr<Connection>> connections_;
  std::vector<EventPtr> signals_;
  std::function<void()> on_reopen_;
  std::function<std::string()> stats_extra_;
  std::function<bool()> outputs_full_;
  bool outputs_full() const { return outputs_full_ && outputs_full_(); }
  Counters counters_;
  GroupCounters unclaimed_counters_; // connections no group claimed
  RecordIdGenerator ids_;
  std::vector<Endpoint> public_ips_; // config public_ip, parsed
  size_t max_connections_ = 0;
  bool paused_ = false;
  EventPtr resume_timer_;
  EventPtr stats_timer_;
  EventPtr loop_tail_; // activated by the first record or log line of an iteration
  std::vector<Record> staged_;
  LogBatch log_batch_;
  std::unique_ptr<uint8_t[]> read_buffer_;
  std::chrono::steady_clock::time_point last_pause_warning_{};
  uint64_t pauses_unreported_ = 0;
};

} // namespace sink
