#include "Connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "GoText.h"
#include "RecordFormat.h"
#include "Server.h"

namespace sink {
namespace {

// Bounds what one connection may buffer in user space; the read callback
// drains everything, so this is only reached within one read pass.
constexpr size_t kReadHighWatermark = 256 * 1024;
// A flood is read in chunks this large.
constexpr size_t kMaxSingleRead = 64 * 1024;
// At a server-side close we read what the kernel still holds, up to this
// much, so it is counted and the close is less likely to become a RST.
constexpr size_t kFinalDrainLimit = 4 * 1024 * 1024;

int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace

Connection::Connection(Server &server, TransportGroup &group, int fd, const sockaddr *peer,
                       const Endpoint &local, uint16_t listen_port)
    : server_(server), group_(group), fd_(fd), local_(local), remote_(Endpoint::from_sockaddr(peer)),
      listen_port_(listen_port), accept_unix_ns_(unix_now_ns()),
      accept_mono_(std::chrono::steady_clock::now()) {
  server_.ids().next(id_);
}

Connection::~Connection() {
  bev_.reset();
  if (group_.ops->conn_free) group_.ops->conn_free(group_.instance, conn_state_);
}

bool Connection::start() {
  if (server_.log_connections())
    server_.logger().plain("Open:  " + local_.to_string() + " <-- " + remote_.to_string());
  bev_.reset(group_.ops->accept(group_.instance, server_.base(), fd_, &conn_state_));
  if (!bev_) {
    ::close(fd_);
    fd_ = -1;
    finish(SINK_CLOSE_ERROR, 0,
           "transport " + std::string(group_.plugin_name) + " could not take the connection");
    return false;
  }
  bufferevent_setcb(bev_.get(), on_read, nullptr, on_event, this);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, kReadHighWatermark);
  // With connection logging on, read like the original: at most capture_bytes
  // per read, one Recv line each.
  size_t single = kMaxSingleRead;
  if (server_.log_connections() && group_.config.capture_bytes > 0) single = group_.config.capture_bytes;
  bufferevent_set_max_single_read(bev_.get(), single);
  if (group_.idle.tv_sec || group_.idle.tv_usec) bufferevent_set_timeouts(bev_.get(), &group_.idle, nullptr);
  // Reading only: the transport may write its own handshake, we never write.
  bufferevent_enable(bev_.get(), EV_READ);
  if (group_.deadline) {
    deadline_.reset(evtimer_new(server_.base(), on_deadline, this));
    evtimer_add(deadline_.get(), group_.deadline);
  }
  return true;
}

void Connection::reject(std::string detail) {
  if (server_.log_connections())
    server_.logger().plain("Open:  " + local_.to_string() + " <-- " + remote_.to_string());
  ::close(fd_);
  fd_ = -1;
  unclaimed_ = true;
  finish(SINK_CLOSE_ERROR, 0, std::move(detail));
}

size_t Connection::capture_room(size_t len) const {
  const size_t cap = group_.config.capture_bytes;
  return captured_.size() < cap ? std::min(len, cap - captured_.size()) : 0;
}

void Connection::take(const uint8_t *data, size_t len) {
  if (first_read_len_ == 0) first_read_len_ = len;
  captured_.insert(captured_.end(), data, data + capture_room(len));
  total_ += len;
  if (server_.log_connections())
    server_.logger().plain("Recv:  " + local_.to_string() + " <-- " + remote_.to_string() + ": " +
                           go_quote(data, len) + " (" + text::hex(data, len) + "), " + std::to_string(len) +
                           " bytes");
}

void Connection::consume_input() {
  if (!bev_) return;
  evbuffer *in = bufferevent_get_input(bev_.get());
  size_t len = evbuffer_get_length(in);
  if (len == 0) return;
  if (server_.log_connections()) {
    // One contiguous chunk per read, as the original logged it.
    take(evbuffer_pullup(in, static_cast<ev_ssize_t>(len)), len);
    evbuffer_drain(in, len);
    return;
  }
  // One read per callback: the first callback's bytes are the first read.
  if (first_read_len_ == 0) first_read_len_ = len;
  // Copy only what is still wanted; count the rest without touching it.
  if (const size_t n = capture_room(len)) {
    const size_t old = captured_.size();
    captured_.resize(old + n);
    evbuffer_copyout(in, captured_.data() + old, n);
  }
  total_ += len;
  evbuffer_drain(in, len);
}

size_t Connection::drain_socket() {
  if (!bev_ || !group_.ops->reads_plain_socket) return 0;
  int fd = bufferevent_getfd(bev_.get());
  if (fd < 0) return 0;
  uint8_t buf[16384];
  size_t drained = 0;
  while (drained < kFinalDrainLimit) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    take(buf, static_cast<size_t>(n));
    drained += static_cast<size_t>(n);
  }
  return drained;
}

void Connection::on_read(bufferevent *, void *self) { static_cast<Connection *>(self)->consume_input(); }

namespace {
// The kernel's view: after a RST the socket is CLOSED; after a FIN it waits
// in CLOSE_WAIT. Used when errno no longer says which.
bool peer_reset(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == TCP_CLOSE;
}
} // namespace

void Connection::on_event(bufferevent *bev, short events, void *self) {
  auto *c = static_cast<Connection *>(self);
  if (c->closing_) {
    c->finish(SINK_CLOSE_TIMEOUT, events, ""); // the grace period ended early
  } else if (events & BEV_EVENT_EOF) {
    if (c->grace_after_session_end(bev)) return;
    c->finish(SINK_CLOSE_CLIENT_FIN, events, "");
  } else if (events & BEV_EVENT_ERROR) {
    int err = EVUTIL_SOCKET_ERROR();
    if (err == ECONNRESET || (c->group_.ops->reads_plain_socket && peer_reset(bufferevent_getfd(bev))))
      c->finish(SINK_CLOSE_CLIENT_RST, events, "connection reset by peer");
    else
      c->finish(SINK_CLOSE_ERROR, events, err ? std::strerror(err) : "transport error");
  } else if (events & BEV_EVENT_TIMEOUT) {
    c->close_by_server(SINK_CLOSE_IDLE_TIMEOUT, "i/o timeout");
  }
}

bool Connection::grace_after_session_end(bufferevent *bev) {
  // A transport that decrypts can end its session (TLS close_notify) while
  // the TCP connection stays open and the peer may still send. Closing now
  // would answer such bytes with a RST. Wait until the socket has something
  // (more bytes, or the peer's FIN) or close_grace passes, then finish: the
  // transport drains what arrived.
  const auto grace = group_.config.close_grace;
  if (group_.ops->reads_plain_socket || grace.count() <= 0) return false;
  const int fd = bufferevent_getfd(bev);
  tcp_info info{};
  socklen_t len = sizeof info;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || info.tcpi_state != TCP_ESTABLISHED)
    return false; // the peer's FIN is in too: nothing more can come
  int queued = 0;
  if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0) return false; // already here: drain it now
  timeval tv = to_timeval(grace);
  session_end_wait_.reset(event_new(server_.base(), fd, EV_READ, on_session_end_wait, this));
  if (!session_end_wait_ || event_add(session_end_wait_.get(), &tv) != 0) return false;
  closing_ = Closing{SINK_CLOSE_CLIENT_FIN, "", elapsed_ns()};
  bufferevent_disable(bev, EV_READ);
  bufferevent_set_timeouts(bev, nullptr, nullptr);
  return true;
}

void Connection::on_session_end_wait(evutil_socket_t, short, void *self) {
  // Readable (bytes or FIN) or the grace is over: either way, finish now.
  static_cast<Connection *>(self)->finish(SINK_CLOSE_CLIENT_FIN, 0, "");
}

int64_t Connection::elapsed_ns() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - accept_mono_)
      .count();
}

void Connection::close_by_server(sink_close_reason reason, std::string detail) {
  consume_input();
  drain_socket();
  const int fd = bev_ ? bufferevent_getfd(bev_.get()) : -1;
  const auto grace = group_.config.close_grace;
  if (grace.count() <= 0 || !group_.ops->reads_plain_socket || fd < 0) {
    finish(reason, 0, std::move(detail));
    return;
  }
  // The record keeps the original's duration (accept to deadline); bytes that
  // still arrive during the grace period count.
  closing_ = Closing{reason, std::move(detail), elapsed_ns()};
  ::shutdown(fd, SHUT_WR);
  bufferevent_set_timeouts(bev_.get(), nullptr, nullptr);
  bufferevent_enable(bev_.get(), EV_READ); // an idle timeout disabled reading
  if (!deadline_) deadline_.reset(evtimer_new(server_.base(), on_deadline, this));
  timeval tv = to_timeval(grace);
  evtimer_add(deadline_.get(), &tv);
}

void Connection::on_deadline(evutil_socket_t, short, void *self) {
  auto *c = static_cast<Connection *>(self);
  if (c->closing_) { // the grace period is over
    c->finish(SINK_CLOSE_TIMEOUT, 0, "");
    return;
  }
  // libevent schedules from its cached loop time, which can be a little older
  // than our accept timestamp. The deadline is accept + timeout exactly, so
  // wait out any remainder.
  auto left = c->group_.config.timeout - (std::chrono::steady_clock::now() - c->accept_mono_);
  if (left.count() > 0) {
    timeval tv = to_timeval(left + std::chrono::microseconds(1));
    evtimer_add(c->deadline_.get(), &tv);
    return;
  }
  c->close_by_server(SINK_CLOSE_TIMEOUT, "i/o timeout");
}

void Connection::finish(sink_close_reason reason, short events, std::string detail) {
  if (closing_) { // we closed first; whatever ended the grace period
    reason = closing_->reason;
    detail = closing_->detail;
  }
  consume_input();
  const bool by_server = closing_ || reason == SINK_CLOSE_TIMEOUT || reason == SINK_CLOSE_IDLE_TIMEOUT ||
                         reason == SINK_CLOSE_SHUTDOWN;
  const size_t drained = by_server ? drain_socket() : 0;

  Record r;
  r.first_read_len = first_read_len_;
  ExtraCollector extras(r, true);
  // Bytes still queued when we close make the kernel answer with a RST: say
  // so, since firewall rules may be hiding it. Asked before the transport's
  // own final drain and again just before close(); bytes that arrive
  // between that last look and close() still escape (the remaining race).
  const int fd = bev_ ? bufferevent_getfd(bev_.get()) : -1;
  int queued_before = 0, queued_at_close = 0;
  // After a client ended its TLS session, what follows is drained as the
  // session's trailing bytes, not cut off by us: only a close we started
  // counts what the transport's drain finds.
  const bool we_closed = by_server && !(closing_ && closing_->reason == SINK_CLOSE_CLIENT_FIN);
  if (fd >= 0 && we_closed) ioctl(fd, FIONREAD, &queued_before);
  if (group_.ops->conn_finish && bev_)
    group_.ops->conn_finish(group_.instance, conn_state_, bev_.get(), events, &reason, extras.writer());
  if (fd >= 0 && by_server) ioctl(fd, FIONREAD, &queued_at_close);
  if (!unclaimed_) {
    const uint8_t unread = queued_before > 0 || queued_at_close > 0 || drained > 0;
    extras.add_typed("unread_at_close", SINK_VALUE_BOOL, &unread, 1);
  }
  if (!unclaimed_ && group_.config.kernel_facts) {
    add_syn_extras(syn_, extras);
    add_tcp_info_extras(fd, extras);
  }
  r.duration_ns = closing_ ? closing_->duration_ns : elapsed_ns();
  r.accept_unix_ns = accept_unix_ns_;
  static const std::string kNoGroup;
  r.group = unclaimed_ ? &kNoGroup : &group_.config.name;
  r.transport = unclaimed_ ? "" : group_.plugin_name;
  r.local = local_;
  r.remote = remote_;
  r.listen_port = listen_port_;
  r.sensor = server_.sensor();
  r.id = id_;
  r.payload = std::move(captured_);
  r.total_bytes = total_;
  r.close_reason = reason;
  r.close_detail = std::move(detail);
  if (server_.log_connections()) log_close(reason, r.close_detail, r.duration_ns);

  server_.count_closed(unclaimed_ ? nullptr : &group_, reason, total_);
  deadline_.reset();
  session_end_wait_.reset();
  bev_.reset(); // closes the socket
  server_.queue().push(std::move(r));
  server_.remove(*this); // destroys *this
}

void Connection::log_close(sink_close_reason reason, const std::string &detail, int64_t duration_ns) {
  const std::string secs = go_float(static_cast<double>(duration_ns) / 1e9);
  const std::string tail = ". Received " + std::to_string(total_) + " bytes in total";
  if (reason == SINK_CLOSE_CLIENT_FIN) {
    server_.logger().plain("Close: " + local_.to_string() + " <-- " + remote_.to_string() +
                           ", by client after " + secs + " seconds" + tail);
    return;
  }
  std::string why;
  switch (reason) {
  case SINK_CLOSE_SHUTDOWN: why = "server shutdown"; break;
  case SINK_CLOSE_CLIENT_RST:
    why = "read tcp " + local_.to_string() + "->" + remote_.to_string() + ": read: " + detail;
    break;
  default: why = "read tcp " + local_.to_string() + "->" + remote_.to_string() + ": " + detail; break;
  }
  server_.logger().plain("Close: " + local_.to_string() + " --> " + remote_.to_string() +
                         ", by server after " + secs + " seconds, due to " + why + tail);
}

} // namespace sink
