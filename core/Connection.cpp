#include "Connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "GoText.h"
#include "RecordFormat.h"
#include "NetworkWorker.h"
#include "TextEncoding.h"

namespace sink {
namespace {

// Bounds what one bufferevent connection may buffer in user space; the read
// callback drains everything, so this is only reached within one read pass.
constexpr size_t kReadHighWatermark = 256 * 1024;
// A flood through a bufferevent (TLS) is read in chunks this large.
constexpr size_t kMaxSingleRead = 64 * 1024;
// One readable event reads at most this much from a plain socket before the
// loop serves other connections (a flood must not starve them).
constexpr size_t kReadPerEvent = 1024 * 1024;
// A network thread's log batch is written out once it holds this much, even
// within a loop iteration.
constexpr size_t kLogBatchLimit = 8 * 1024 * 1024;
// At a server-side close we read what the kernel still holds, up to this
// much, so it is counted and the close is less likely to become a RST.
constexpr size_t kFinalDrainLimit = 4 * 1024 * 1024;

int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// After our FIN (shutdown SHUT_WR): has the peer's FIN arrived too?
bool peer_finished(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return true;
  return info.tcpi_state != TCP_FIN_WAIT1 && info.tcpi_state != TCP_FIN_WAIT2;
}

// The kernel's view: after a RST the socket is CLOSED; after a FIN it waits
// in CLOSE_WAIT. Used when errno no longer says which.
bool peer_reset(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == TCP_CLOSE;
}

} // namespace

Connection::Connection(NetworkWorker &server, TransportGroup &group, int fd, const sockaddr *peer,
                       const Endpoint &local, uint16_t listen_port)
    : server_(server), group_(group), fd_(fd), listen_port_(listen_port), accept_unix_ns_(unix_now_ns()),
      accept_mono_(std::chrono::steady_clock::now()), local_(local), remote_(Endpoint::from_sockaddr(peer)) {
  server_.ids().next(id_);
}

Connection::~Connection() {
  stop_watching(true);
  deadline_.reset();
  session_end_wait_.reset();
  if (bev_)
    bev_.reset(); // closes the socket (BEV_OPT_CLOSE_ON_FREE, or the transport does)
  else if (fd_ >= 0)
    ::close(fd_); // never attached, or the transport refused it
  if (attached_ && group_.ops->conn_free) group_.ops->conn_free(group_.instance, conn_state_);
}

int Connection::socket_fd() const {
  if (bev_ && !reads_socket()) return bufferevent_getfd(bev_.get());
  return fd_;
}

bool Connection::start() {
  if (server_.log_connections()) log_open();
  // Until the client speaks only the thread's socket set watches the socket
  // (bytes, and the peer's FIN: a FIN that came with the data is seen in the
  // same callback, so a short connection ends without another trip through
  // epoll), plus the idle timer if the group has an idle timeout.
  watch_ = server_.sockets().watch(fd_, this);
  if (!watch_) {
    finish(SINK_CLOSE_ERROR, 0, "cannot watch the socket");
    return false;
  }
  if (group_.idle.tv_sec || group_.idle.tv_usec) {
    last_event_ = accept_mono_;
    idle_timer_.reset(evtimer_new(server_.base(), on_idle_timer, this));
    if (!idle_timer_ || evtimer_add(idle_timer_.get(), &group_.idle) != 0) {
      finish(SINK_CLOSE_ERROR, 0, "cannot arm the idle timer");
      return false;
    }
  }
  if (group_.deadline) {
    deadline_.reset(evtimer_new(server_.base(), on_deadline, this));
    evtimer_add(deadline_.get(), group_.deadline);
  }
  return true;
}

bool Connection::attach_transport() {
  if (attached_) return bev_ != nullptr;
  attached_ = true;
  bev_.reset(group_.ops->accept(group_.instance, server_.base(), fd_, &conn_state_));
  if (!bev_) return false;
  if (reads_socket()) return true; // the host reads the socket itself; the bufferevent stays off
  // The bufferevent reads from here on.
  stop_watching(false);
  bufferevent_setcb(bev_.get(), on_read, nullptr, on_event, this);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, kReadHighWatermark);
  bufferevent_set_max_single_read(bev_.get(), kMaxSingleRead);
  if (group_.idle.tv_sec || group_.idle.tv_usec) bufferevent_set_timeouts(bev_.get(), &group_.idle, nullptr);
  // Reading only: the transport may write its own handshake, we never write.
  bufferevent_enable(bev_.get(), EV_READ);
  return true;
}

void Connection::reject(std::string detail) {
  if (server_.log_connections()) log_open();
  ::close(fd_);
  fd_ = -1;
  unclaimed_ = true;
  finish(SINK_CLOSE_ERROR, 0, std::move(detail));
}

void Connection::take(const uint8_t *data, size_t len) {
  if (first_read_len_ == 0) first_read_len_ = len;
  const size_t cap = group_.config.capture_bytes;
  if (captured_.size() < cap) {
    const size_t n = std::min(len, cap - captured_.size());
    if (captured_.capacity() == 0) captured_.reserve(std::min(cap, std::max<size_t>(n, 256)));
    captured_.insert(captured_.end(), data, data + n);
  }
  total_ += len;
  if (server_.log_connections()) log_recv(data, len);
}

template <class Body> void Connection::log_line(Body &&body) {
  if (LogBatch *batch = Logger::thread_batch()) { // a network thread: into its batch
    batch->stamp_line();
    body(batch->lines);
    batch->lines.push_back('\n');
    // Many flooders in one loop iteration must not grow the batch without
    // bound (each read logs about four times its size): write it out early.
    if (batch->lines.size() >= kLogBatchLimit) server_.flush_staged();
    return;
  }
  LineBuffer line;
  body(line);
  server_.logger().plain(std::string(line.data(), line.size()));
}

void Connection::append_peers(LineBuffer &out, const char *arrow) const {
  local_.append_to(out);
  out.append(arrow);
  remote_.append_to(out);
}

void Connection::log_open() {
  log_line([&](LineBuffer &out) {
    out.append("Open:  ");
    append_peers(out, " <-- ");
  });
}

void Connection::log_recv(const uint8_t *data, size_t len) {
  // The original's line, formatted in one pass.
  log_line([&](LineBuffer &out) {
    out.append("Recv:  ");
    append_peers(out, " <-- ");
    char *p = out.room(2 + go_quote_room(len) + 2 * len + 32);
    char *const start = p;
    *p++ = ':';
    *p++ = ' ';
    p = go_quote_to(p, data, len);
    *p++ = ' ';
    *p++ = '(';
    static constexpr char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; ++i) {
      *p++ = kHex[data[i] >> 4];
      *p++ = kHex[data[i] & 0xf];
    }
    *p++ = ')';
    *p++ = ',';
    *p++ = ' ';
    p = std::to_chars(p, p + 24, len).ptr;
    std::memcpy(p, " bytes", 6);
    p += 6;
    out.advance(static_cast<size_t>(p - start));
  });
}

Connection::ReadEnd Connection::read_socket(size_t limit, size_t *got, bool peer_closed,
                                            TcpInfoFacts *fin_check) {
  size_t room = 0;
  uint8_t *buf = server_.read_buffer(&room);
  *got = 0;
  while (*got < limit) {
    const ssize_t n = ::recv(fd_, buf, std::min(room, limit - *got), 0);
    if (n > 0) {
      take(buf, static_cast<size_t>(n));
      *got += static_cast<size_t>(n);
      // A short read: the kernel had no more, unless the peer's FIN is in too
      // (then the next read returns 0 at once).
      if (static_cast<size_t>(n) < room) {
        if (!peer_closed) return ReadEnd::kDrained;
        // The record needs TCP_INFO anyway: it also says whether that read
        // took everything before the FIN, which saves the read of 0. A read
        // can stop short of the end at an urgent byte, so only the byte
        // count decides.
        if (fin_check) {
          *fin_check = read_tcp_info(fd_);
          if (all_read_before_fin(*fin_check, total_)) return ReadEnd::kEof;
          *fin_check = {};
        }
      }
      continue;
    }
    if (n == 0) return ReadEnd::kEof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadEnd::kDrained;
    return errno == ECONNRESET ? ReadEnd::kReset : ReadEnd::kError;
  }
  return ReadEnd::kMore;
}

void Connection::stop_watching(bool closing_now) {
  idle_timer_.reset();
  if (!watch_) return;
  if (closing_now)
    server_.sockets().forget(watch_);
  else
    server_.sockets().unwatch(watch_, fd_);
  watch_ = 0;
}

void Connection::on_idle_timer(evutil_socket_t, short, void *self) {
  auto *c = static_cast<Connection *>(self);
  // The timer is not pushed back at every read (that would cost a heap
  // operation per read): it fires at the first possible moment and waits
  // out whatever is left since the last event.
  const auto left = c->group_.config.idle_timeout - (std::chrono::steady_clock::now() - c->last_event_);
  if (left.count() > 0) {
    timeval tv = to_timeval(left + std::chrono::microseconds(1));
    evtimer_add(c->idle_timer_.get(), &tv);
    return;
  }
  c->close_by_server(SINK_CLOSE_IDLE_TIMEOUT, "i/o timeout");
}

void Connection::on_socket(void *self, short what) {
  auto *c = static_cast<Connection *>(self);
  if (c->idle_timer_) c->last_event_ = std::chrono::steady_clock::now();
  if (!c->attached_ && !c->attach_transport()) {
    c->finish(SINK_CLOSE_ERROR, 0,
              "transport " + std::string(c->group_.plugin_name) + " could not take the connection");
    return;
  }
  if (!c->reads_socket()) return; // the transport's bufferevent took over
  size_t got = 0;
  const int saved_errno = errno;
  TcpInfoFacts tcp_info;
  const bool want_tcp_info = c->group_.config.kernel_facts && !c->closing_;
  switch (c->read_socket(kReadPerEvent, &got, (what & EV_CLOSED) != 0, want_tcp_info ? &tcp_info : nullptr)) {
  case ReadEnd::kMore:
  case ReadEnd::kDrained: return;
  case ReadEnd::kEof:
    c->finish(SINK_CLOSE_CLIENT_FIN, BEV_EVENT_READING | BEV_EVENT_EOF, "", &tcp_info);
    return;
  case ReadEnd::kReset:
    c->finish(SINK_CLOSE_CLIENT_RST, BEV_EVENT_READING | BEV_EVENT_ERROR, "connection reset by peer");
    return;
  case ReadEnd::kError: {
    const int err = errno ? errno : saved_errno;
    if (c->closing_) {
      c->finish(SINK_CLOSE_TIMEOUT, BEV_EVENT_READING | BEV_EVENT_ERROR, "");
    } else if (peer_reset(c->fd_)) {
      c->finish(SINK_CLOSE_CLIENT_RST, BEV_EVENT_READING | BEV_EVENT_ERROR, "connection reset by peer");
    } else {
      c->finish(SINK_CLOSE_ERROR, BEV_EVENT_READING | BEV_EVENT_ERROR, std::strerror(err));
    }
    return;
  }
  }
}

void Connection::consume_input() {
  if (!bev_ || reads_socket()) return;
  evbuffer *in = bufferevent_get_input(bev_.get());
  size_t len = evbuffer_get_length(in);
  if (len == 0) return;
  // One contiguous chunk per callback: the first callback's bytes are the
  // first read, and a logged read is one line.
  take(evbuffer_pullup(in, static_cast<ev_ssize_t>(len)), len);
  evbuffer_drain(in, len);
}

size_t Connection::drain_socket() {
  if (!reads_socket() || fd_ < 0) return 0;
  size_t got = 0;
  read_socket(kFinalDrainLimit, &got, false);
  return got;
}

void Connection::on_read(bufferevent *, void *self) { static_cast<Connection *>(self)->consume_input(); }

void Connection::on_event(bufferevent *bev, short events, void *self) {
  auto *c = static_cast<Connection *>(self);
  if (c->closing_) {
    c->finish(SINK_CLOSE_TIMEOUT, events, ""); // the grace period ended early
  } else if (events & BEV_EVENT_EOF) {
    if (c->grace_after_session_end(bev)) return;
    c->finish(SINK_CLOSE_CLIENT_FIN, events, "");
  } else if (events & BEV_EVENT_ERROR) {
    int err = EVUTIL_SOCKET_ERROR();
    if (err == ECONNRESET)
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
  if (reads_socket() || grace.count() <= 0) return false;
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
  closing_ = Closing{SINK_CLOSE_CLIENT_FIN, "", elapsed_ns(), total_};
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
  const auto grace = group_.config.close_grace;
  if (grace.count() <= 0 || !reads_socket() || fd_ < 0 || !watch_) {
    finish(reason, 0, std::move(detail));
    return;
  }
  // The record keeps the original's duration (accept to deadline); bytes that
  // still arrive during the grace period count.
  closing_ = Closing{reason, std::move(detail), elapsed_ns(), total_};
  ::shutdown(fd_, SHUT_WR);
  idle_timer_.reset(); // no idle timeout in the grace period
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

void Connection::finish(sink_close_reason reason, short events, std::string detail,
                        const TcpInfoFacts *tcp_info) {
  if (closing_) { // we closed first; whatever ended the grace period
    reason = closing_->reason;
    detail = closing_->detail;
  }
  // The socket is closed below (or, through a transport's bufferevent,
  // within this loop iteration), which takes it out of the socket set.
  stop_watching(true);
  // A transport that never saw the socket (the client never spoke) gets it
  // now, so its conn_finish describes the connection as always.
  if (!unclaimed_ && !attached_) attach_transport();
  consume_input();
  const bool by_server = closing_ || reason == SINK_CLOSE_TIMEOUT || reason == SINK_CLOSE_IDLE_TIMEOUT ||
                         reason == SINK_CLOSE_SHUTDOWN;
  const size_t drained = by_server ? drain_socket() : 0;

  Record r;
  // Room for the extras unread_at_close, kernel facts (11) and a transport
  // such as tls (16) add, in one allocation rather than five.
  r.extras.reserve(1 + (group_.config.kernel_facts ? 11 : 0) + (group_.ops->conn_finish ? 16 : 0));
  r.first_read_len = first_read_len_;
  ExtraCollector extras(r, true);
  // Bytes still queued when we close make the kernel answer with a RST: say
  // so, since firewall rules may be hiding it. Asked before the transport's
  // own final drain and again just before close(); bytes that arrive
  // between that last look and close() still escape (the remaining race).
  const int fd = socket_fd();
  int queued_before = 0, queued_at_close = 0;
  // After a client ended its TLS session, what follows is drained as the
  // session's trailing bytes, not cut off by us: only a close we started
  // counts what the transport's drain finds.
  const bool we_closed = by_server && !(closing_ && closing_->reason == SINK_CLOSE_CLIENT_FIN);
  if (fd >= 0 && we_closed && !reads_socket()) ioctl(fd, FIONREAD, &queued_before);
  if (group_.ops->conn_finish && bev_ && !unclaimed_)
    group_.ops->conn_finish(group_.instance, conn_state_, bev_.get(), events, &reason, extras.writer());
  if (fd >= 0 && by_server) ioctl(fd, FIONREAD, &queued_at_close);
  if (!unclaimed_) {
    // A peer still sending through our grace period, without its FIN, is
    // answered with a RST by whatever it sends after close(), even when we
    // happened to have read everything at that instant.
    const bool still_sending =
        we_closed && closing_ && total_ > closing_->bytes_at_start && reads_socket() && !peer_finished(fd);
    const uint8_t unread = queued_before > 0 || queued_at_close > 0 || drained > 0 || still_sending;
    extras.add_typed("unread_at_close", SINK_VALUE_BOOL, &unread, 1);
  }
  if (!unclaimed_ && group_.config.kernel_facts) {
    add_syn_extras(syn_, extras);
    add_tcp_info_extras(tcp_info && tcp_info->ok ? *tcp_info : read_tcp_info(fd), syn_, extras);
  }
  r.duration_ns = closing_ ? closing_->duration_ns : elapsed_ns();
  r.accept_unix_ns = accept_unix_ns_;
  static const std::string kNoGroup;
  r.group = unclaimed_ ? &kNoGroup : &group_.config.name;
  r.transport = unclaimed_ ? "" : group_.plugin_name;
  if (server_.log_connections()) log_close(reason, detail, r.duration_ns);
  r.local = std::move(local_);
  r.remote = std::move(remote_);
  r.listen_port = listen_port_;
  r.sensor = server_.sensor();
  r.id = id_;
  r.payload = std::move(captured_);
  r.total_bytes = total_;
  r.close_reason = reason;
  r.close_detail = std::move(detail);

  server_.count_closed(unclaimed_ ? nullptr : &group_, reason, total_);
  server_.hand_over(std::move(r));
  server_.remove(*this); // destroys *this, closing the socket
}

void Connection::log_close(sink_close_reason reason, const std::string &detail, int64_t duration_ns) {
  const std::string secs = go_float(static_cast<double>(duration_ns) / 1e9);
  log_line([&](LineBuffer &out) {
    out.append("Close: ");
    if (reason == SINK_CLOSE_CLIENT_FIN) {
      append_peers(out, " <-- ");
      out.append(", by client after ");
      out.append(secs);
      out.append(" seconds");
    } else {
      append_peers(out, " --> ");
      out.append(", by server after ");
      out.append(secs);
      out.append(" seconds, due to ");
      if (reason == SINK_CLOSE_SHUTDOWN) {
        out.append("server shutdown");
      } else {
        out.append("read tcp ");
        append_peers(out, "->");
        out.append(reason == SINK_CLOSE_CLIENT_RST ? ": read: " : ": ");
        out.append(detail);
      }
    }
    out.append(". Received ");
    char *p = out.room(24);
    out.advance(static_cast<size_t>(std::to_chars(p, p + 24, total_).ptr - p));
    out.append(" bytes in total");
  });
}

} // namespace sink
