#pragma once
// One accepted connection: reads and counts everything, keeps the first
// capture_bytes, and at its end builds exactly one record.
//
// A silent connection costs its descriptor, an entry in the network thread's
// socket set (SocketWatchSet) and a deadline:
// the transport is handed the socket when the client first makes it
// readable (bytes, FIN or RST), or at the close when it never does. Plain
// socket transports are then read by the host itself, straight into the
// network thread's one read buffer; others (TLS) through their bufferevent.
#include <sink/plugin.h>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "Endpoint.h"
#include "KernelFacts.h"
#include "LibeventHandles.h"
#include "TransportGroup.h"

namespace sink {

class NetworkWorker;

class Connection {
public:
  // local: the address the client dialed (see dialed_endpoint).
  Connection(NetworkWorker &server, TransportGroup &group, int fd, const sockaddr *peer,
             const Endpoint &local, uint16_t listen_port);
  ~Connection();
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;

  // Watches the socket and arms the deadline. Returns false when that failed:
  // the connection is then finished (and destroyed).
  bool start();
  // The client's SYN, read right after accept (groups with kernel_facts).
  void set_syn(const SynFacts &syn) { syn_ = syn; }
  // No group takes the connection: close it and record why. Destroys *this.
  void reject(std::string detail);
  // Ends the connection: final drain, record, close. Destroys *this.
  // `tcp_info`: a TCP_INFO reading taken after the last read, if one was.
  void finish(sink_close_reason reason, short events, std::string detail,
              const TcpInfoFacts *tcp_info = nullptr);
  // A close we start (deadline, idle): stop sending, keep reading for the
  // group's close_grace, then finish. Destroys *this, now or later.
  void close_by_server(sink_close_reason reason, std::string detail);
  uint64_t bytes() const { return total_; }

  size_t table_index = 0; // this connection's place in its NetworkWorker's table

  // The socket is readable (EV_READ) and/or the peer's FIN is in (EV_CLOSED):
  // the network thread's SocketWatchSet calls this while the host reads.
  static void on_socket(void *self, short what);

private:
  static void on_idle_timer(evutil_socket_t, short, void *self);
  // Stops the host's watch on the socket; `closing_now`: it is closed before
  // the loop looks again, so the kernel drops it from the set by itself.
  void stop_watching(bool closing_now);
  static void on_read(bufferevent *bev, void *self);
  static void on_event(bufferevent *bev, short events, void *self);
  static void on_deadline(evutil_socket_t, short, void *self);
  static void on_session_end_wait(evutil_socket_t, short, void *self);

  // Hands the socket to the transport (once). False when it refused.
  bool attach_transport();
  // Plain socket transports: reads what the kernel has (up to limit bytes).
  // Returns false when the connection ended (and *this is destroyed) unless
  // at_close, where EOF and errors are left for the caller.
  enum class ReadEnd { kMore, kDrained, kEof, kReset, kError };
  // peer_closed: the peer's FIN has arrived (read on to the end).
  // With `fin_check`, a short read after the peer's FIN asks TCP_INFO whether
  // anything is left rather than reading again (the reading is kept there).
  ReadEnd read_socket(size_t limit, size_t *got, bool peer_closed, TcpInfoFacts *fin_check = nullptr);
  void consume_input(); // bufferevent transports
  // After a transport's session ended with the TCP connection still open:
  // waits close_grace for more bytes. True when the wait started.
  bool grace_after_session_end(bufferevent *bev);
  void take(const uint8_t *data, size_t len);
  // Reads what the kernel still holds at a close we start; returns how much.
  size_t drain_socket();
  // Legacy connection lines, as the original wrote them. On a network
  // thread body appends straight into the thread's log batch.
  template <class Body> void log_line(Body &&body);
  void append_peers(LineBuffer &out, const char *arrow) const;
  void log_open();
  void log_recv(const uint8_t *data, size_t len);
  void log_close(sink_close_reason reason, const std::string &detail, int64_t duration_ns);
  int64_t elapsed_ns() const;
  bool reads_socket() const { return group_.ops->reads_plain_socket != 0; }
  int socket_fd() const;

  // Set while in the close grace period: what the record will say.
  struct Closing {
    sink_close_reason reason;
    std::string detail;
    int64_t duration_ns;
    uint64_t bytes_at_start; // bytes read when the grace period began
  };
  std::optional<Closing> closing_;

  NetworkWorker &server_;
  TransportGroup &group_;
  int fd_;
  uint16_t listen_port_;
  bool unclaimed_ = false; // no group takes it: the record names none
  bool attached_ = false;  // the transport has the socket (bev_ may be null only if it refused)
  std::array<char, 37> id_;
  int64_t accept_unix_ns_;
  std::chrono::steady_clock::time_point accept_mono_;
  Endpoint local_, remote_;
  uint64_t watch_ = 0;  // SocketWatchSet id while the host reads the socket
  EventPtr idle_timer_; // the group's idle timeout, while the host reads the socket
  std::chrono::steady_clock::time_point last_event_{}; // the idle timeout counts from here
  EventPtr deadline_;
  BufferEventPtr bev_;
  EventPtr session_end_wait_; // after a transport's session ended (see grace_after_session_end)
  void *conn_state_ = nullptr;
  std::vector<uint8_t> captured_;
  uint64_t total_ = 0;
  size_t first_read_len_ = 0;
  SynFacts syn_;
};

} // namespace sink
