#include "NetworkWorker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>

#include "ConfigValidation.h"
#include "KernelFacts.h"
#include "OwnedFd.h"

namespace sink {
namespace {

// At shutdown, at most this many connections per listener are taken from
// the kernel's queue (SOMAXCONN is 4096).
constexpr size_t kMaxAcceptAtShutdown = 65536;
// Connections accepted per readable listener before other events get a turn.
constexpr int kAcceptBurst = 64;
// How long accepting pauses after the process ran out of descriptors.
constexpr timeval kAcceptRetry{0, 100 * 1000};
// A loop iteration that finishes this many records hands them over early,
// which bounds what waits here (a shutdown closes every connection at once).
constexpr size_t kStageLimit = 1024;

struct ListenAddress {
  sockaddr_storage ss{};
  socklen_t len = 0;
  bool dual = false;
};

ListenAddress listen_address(const std::string &addr, uint16_t port) {
  ListenAddress a;
  auto *in4 = reinterpret_cast<sockaddr_in *>(&a.ss);
  auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.ss);
  if (!addr.empty() && inet_pton(AF_INET, addr.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
  } else {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (!addr.empty()) inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr);
    a.dual = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    a.len = sizeof(sockaddr_in6);
  }
  return a;
}

// SO_REUSEPORT lets any process of the same user join a port's group, so a
// second sink on the same port would bind and quietly take half the
// connections. Before the first worker binds, a plain socket tries the
// address: if something listens there, that fails as without workers.
bool port_is_free(const ListenAddress &a, int *err) {
  OwnedFd s{::socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (s.fd < 0) return true; // the real bind reports it
  int one = 1, zero = 0;
  setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a.ss.ss_family == AF_INET6)
    setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, a.dual ? &zero : &one, sizeof one);
  if (::bind(s.fd, reinterpret_cast<const sockaddr *>(&a.ss), a.len) == 0) return true;
  *err = errno;
  return errno != EADDRINUSE;
}

// Opens a listening socket on addr ("" = all IPv4 and IPv6) and port;
// transparent sockets accept connections to any address (TPROXY).
int open_listener(const std::string &addr, uint16_t port, bool transparent, bool save_syn, bool reuse_port,
                  bool probe, std::string *why) {
  const ListenAddress a = listen_address(addr, port);
  OwnedFd s{::socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (s.fd < 0 && addr.empty() && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
    // No IPv6 on this host: all addresses means all IPv4 addresses.
    return open_listener("0.0.0.0", port, transparent, save_syn, reuse_port, probe, why);
  }
  if (s.fd < 0) {
    *why = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1, zero = 0;
  setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) {
    int err = 0;
    if (probe && port != 0 && !port_is_free(a, &err)) {
      *why = std::strerror(err);
      return -1;
    }
    if (setsockopt(s.fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      *why = std::string("SO_REUSEPORT: ") + std::strerror(errno);
      return -1;
    }
  }
  // The kernel keeps each client's SYN for us to read after accept.
  if (save_syn) enable_saved_syn(s.fd);
  if (a.ss.ss_family == AF_INET6)
    setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, a.dual ? &zero : &one, sizeof one);
  if (transparent) {
    // One flag on the socket covers IPv4 and IPv6 (IPV6_TRANSPARENT sets the same bit).
    const int rc = a.ss.ss_family == AF_INET6 ? setsockopt(s.fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                                              : setsockopt(s.fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
    if (rc != 0) {
      *why = std::string("transparent: cannot set IP_TRANSPARENT (it needs CAP_NET_ADMIN: run as root, or "
                         "grant the capability): ") +
             std::strerror(errno);
      return -1;
    }
  }
  if (::bind(s.fd, reinterpret_cast<const sockaddr *>(&a.ss), a.len) != 0) {
    *why = std::strerror(errno);
    return -1;
  }
  if (::listen(s.fd, SOMAXCONN) != 0) {
    *why = std::string("listen: ") + std::strerror(errno);
    return -1;
  }
  return s.release();
}

// Timers must not fire early: ask for the precise monotonic clock rather
// than the coarse one libevent prefers.
event_base *make_base() {
  std::unique_ptr<event_config, void (*)(event_config *)> cfg(event_config_new(), event_config_free);
  if (!cfg) return nullptr;
  event_config_set_flag(cfg.get(), EVENT_BASE_FLAG_PRECISE_TIMER);
  return event_base_new_with_config(cfg.get());
}

std::string upper(std::string s) {
  for (auto &c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Each distinct value once, in first-seen order, joined by sep.
std::string join_distinct(const std::vector<std::string> &values, const std::string &sep) {
  std::vector<std::string> seen;
  std::string out;
  for (const auto &v : values) {
    if (std::find(seen.begin(), seen.end(), v) != seen.end()) continue;
    out += (seen.empty() ? "" : sep) + v;
    seen.push_back(v);
  }
  return out;
}

// The original's "TCP server is listening on ..." line; a socket shared by
// groups of several transports names each ("TCP and TLS server").
std::string listening_line(const std::vector<TransportGroup *> &groups, const Endpoint &local) {
  std::vector<std::string> transports, timeouts;
  for (const auto *g : groups) {
    transports.push_back(upper(g->plugin_name));
    timeouts.push_back(format_go_duration(g->config.timeout));
  }
  return join_distinct(transports, " and ") + " server is listening on " + local.to_string() +
         ", timeout value: " + join_distinct(timeouts, " / ");
}

} // namespace

NetworkWorker::NetworkWorker(NetworkShared &shared, PluginLoader &loader, uint32_t index)
    : shared_(shared), index_(index), log_connections_(shared.config.log.connections), base_(make_base()) {
  const Config &config = shared_.config;
  if (!base_) throw std::runtime_error("cannot create an event base");
  sockets_ = std::make_unique<SocketWatchSet>(base_.get(), Connection::on_socket);
  read_buffer_ = std::make_unique_for_overwrite<uint8_t[]>(kReadBufferSize);
  // Activated from a callback, it joins the end of the active queue: it runs
  // once the iteration's other callbacks have, at the same priority.
  loop_tail_.reset(event_new(base_.get(), -1, 0, on_loop_tail, this));
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ >= 0) stop_event_.reset(event_new(base_.get(), stop_fd_, EV_READ, on_stop_request, this));
  if (!loop_tail_ || !stop_event_ || event_add(stop_event_.get(), nullptr) != 0)
    throw std::runtime_error("cannot create the network thread's events");
  log_batch_.on_first_line = [](void *self) {
    auto *w = static_cast<NetworkWorker *>(self);
    if (w->staged_.empty()) event_active(w->loop_tail_.get(), EV_TIMEOUT, 0);
  };
  log_batch_.on_first_line_arg = this;
  for (const auto &ip : config.public_ip) {
    Endpoint e;
    e.ip = canonical_address(ip);
    e.v6 = ip.find(':') != std::string::npos;
    public_ips_.push_back(e);
  }
  for (size_t i = 0; i < config.groups.size(); ++i) {
    const auto &g = config.groups[i];
    const std::string where = plugin_location(config, g.line, "groups", i, g.transport);
    const LoadedPlugin *p = &loader.load_for(where, g.transport, SINK_PLUGIN_TRANSPORT);
    auto group =
        std::make_unique<TransportGroup>(g, *p->descriptor, shared_.logger, where, config.config_dir, index_);
    if (g.timeout.count() > 0) {
      // Every connection of a group has the same timeout: a common-timeout
      // queue makes adding and firing these timers O(1).
      timeval tv = to_timeval(g.timeout);
      group->deadline = event_base_init_common_timeout(base_.get(), &tv);
    }
    groups_.push_back(std::move(group));
  }
}

NetworkWorker::~NetworkWorker() {
  close_everything();
  stop_event_.reset();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

NetworkWorker::Listener::~Listener() {
  readable.reset();
  if (fd >= 0) ::close(fd);
}

void NetworkWorker::close_everything() {
  // Connections the kernel already completed wait in the listen queues:
  // from the client's side they reached the sink, so each gets a record.
  size_t queued = 0;
  for (auto &l : listeners_) {
    for (size_t n = 0; n < kMaxAcceptAtShutdown; ++n) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      const int c = ::accept4(l->fd, reinterpret_cast<sockaddr *>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break; // empty (EAGAIN), or out of descriptors
      ++queued;
      shared_.open.fetch_add(1, std::memory_order_relaxed); // beyond the cap: it must get its record
      if (Connection *conn = accept_connection(*l, c, reinterpret_cast<sockaddr *>(&peer)))
        conn->finish(SINK_CLOSE_SHUTDOWN, 0, "server shutdown");
    }
  }
  shared_.queued_at_stop.fetch_add(queued, std::memory_order_relaxed); // said once for all workers
  listeners_.clear();                                                  // stop accepting
  resume_timer_.reset();
  while (!connections_.empty())
    connections_.back()->finish(SINK_CLOSE_SHUTDOWN, 0, "server shutdown");
  flush_staged();
}

void NetworkWorker::hand_over(Record &&r) {
  staged_.push_back(std::move(r));
  if (staged_.size() >= kStageLimit)
    flush_staged();
  else if (staged_.size() == 1 && log_batch_.lines.empty())
    event_active(loop_tail_.get(), EV_TIMEOUT, 0);
}

void NetworkWorker::on_loop_tail(evutil_socket_t, short, void *self) {
  static_cast<NetworkWorker *>(self)->flush_staged();
}

void NetworkWorker::flush_staged() {
  // Log lines first: a record's Close line is on disk before the record.
  if (Logger::thread_batch() == &log_batch_) shared_.logger.flush_thread_batch();
  shared_.queue.push_all(staged_);
}

void NetworkWorker::bind_all(const NetworkWorker *like, bool reuse_port) {
  resume_timer_.reset(evtimer_new(base_.get(), on_resume_timer, this));
  if (like) {
    // Join the first worker's sockets, on the ports they got.
    auto mine = [&](const TransportGroup *g) -> TransportGroup & {
      size_t i = 0;
      while (like->groups_[i].get() != g)
        ++i;
      return *groups_[i];
    };
    for (const auto &other : like->listeners_) {
      Listener *l =
          open_listener_for(mine(other->groups.front()), other->addr, other->local.port, reuse_port, false);
      for (auto *g : other->groups)
        l->groups.push_back(&mine(g));
      if (other->fallback) l->fallback = &mine(other->fallback);
    }
  } else {
    // Groups that name the same listen list and port share one socket and
    // are told apart after accept by the port the client dialed.
    std::map<std::pair<std::string, uint16_t>, Listener *> shared;
    for (auto &group : groups_) {
      const auto &g = group->config;
      std::vector<std::string> addrs;
      for (const auto &a : g.listen)
        addrs.push_back(canonical_address(a));
      if (addrs.empty()) addrs.push_back("");
      for (const auto &addr : addrs) {
        for (uint16_t port : g.ports) {
          Listener *l = nullptr;
          if (auto it = shared.find({addr, port}); port != 0 && it != shared.end()) l = it->second;
          if (!l) l = open_listener_for(*group, addr, port, reuse_port, true);
          if (port != 0) shared[{addr, port}] = l;
          l->groups.push_back(group.get());
          if (g.redirect_from.empty()) l->fallback = group.get();
        }
      }
    }
    if (index_ == 0)
      for (const auto &l : listeners_)
        shared_.logger.plain(listening_line(l->groups, l->local));
  }
  for (auto &l : listeners_) {
    bool routed = false;
    for (auto *g : l->groups)
      routed = routed || !g->config.redirect_from.empty();
    if (!routed) continue;
    l->by_dialed_port.assign(65536, 0);
    for (size_t i = 0; i < l->groups.size(); ++i)
      for (uint16_t p : l->groups[i]->config.redirect_from)
        l->by_dialed_port[p] = static_cast<uint16_t>(i + 1);
  }
}

NetworkWorker::Listener *NetworkWorker::open_listener_for(TransportGroup &group, const std::string &addr,
                                                          uint16_t port, bool reuse_port, bool probe) {
  const auto &g = group.config;
  std::string why;
  // A listener may serve several groups: save SYNs if any group wants them.
  bool save_syn = false;
  for (const auto &other : shared_.config.groups)
    save_syn = save_syn || other.kernel_facts;
  const int fd = open_listener(addr, port, g.transparent, save_syn, reuse_port, probe, &why);
  std::string shown = addr.empty() ? "all addresses" : addr;
  if (fd < 0)
    throw BindError("cannot listen on " + shown + " port " + std::to_string(port) + " (group \"" + g.name +
                    "\"): " + why);
  auto l = std::make_unique<Listener>();
  l->fd = fd;
  l->worker = this;
  l->addr = addr;
  l->local = local_endpoint(fd);
  l->fixed_local = !g.transparent && l->local.ip != "0.0.0.0" && l->local.ip != "::" && !l->local.ip.empty();
  l->readable.reset(event_new(base_.get(), fd, EV_READ | EV_PERSIST, on_listener_readable, l.get()));
  if (!l->readable || event_add(l->readable.get(), nullptr) != 0)
    throw BindError("cannot watch " + shown + " port " + std::to_string(port));
  listeners_.push_back(std::move(l));
  return listeners_.back().get();
}

TransportGroup *NetworkWorker::Listener::pick(uint16_t port) const {
  if (!by_dialed_port.empty())
    if (uint16_t i = by_dialed_port[port]) return groups[i - 1];
  return fallback;
}

void NetworkWorker::on_listener_readable(evutil_socket_t fd, short, void *arg) {
  auto *l = static_cast<Listener *>(arg);
  NetworkWorker *w = l->worker;
  for (int i = 0; i < kAcceptBurst && !w->paused_; ++i) {
    // A slot first, so the connection cap holds exactly across workers.
    if (!w->shared_.reserve_slot()) {
      w->pause_accepting("reached the connection limit of " + std::to_string(w->shared_.max_connections));
      return;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int c = ::accept4(fd, reinterpret_cast<sockaddr *>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      const int err = errno;
      w->shared_.open.fetch_sub(1, std::memory_order_relaxed);
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) return;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // The pending connection stays queued in the kernel; pause rather
        // than spin on the same error.
        w->pause_accepting(std::string("accept: ") + std::strerror(err));
        return;
      }
      w->shared_.logger.warn("accept on " + l->local.to_string() + ": " + std::strerror(err));
      return;
    }
    w->accept_connection(*l, c, reinterpret_cast<sockaddr *>(&peer));
    if (w->listeners_.empty()) return; // a connection's end stopped everything
    if (w->shared_.outputs_full && w->shared_.outputs_full())
      w->pause_accepting("no output can take more records (the journal is full, or without one every output "
                         "is output_backlog records behind); new connections wait in the kernel");
  }
}

Connection *NetworkWorker::accept_connection(Listener &l, int fd, const sockaddr *peer) {
  ++counters_.accepted;
  // A listener on one address (not transparent) accepts only connections
  // to that address and port: no need to ask the kernel.
  const Endpoint local = l.fixed_local ? l.local : local_endpoint(fd);
  Endpoint dialed = dialed_endpoint(fd, local);
  TransportGroup *group = l.pick(dialed.port);
  ++(group ? group->counters : unclaimed_counters_).accepted;
  apply_public_ip(dialed);
  auto conn =
      std::make_unique<Connection>(*this, group ? *group : *l.groups.front(), fd, peer, dialed, l.local.port);
  Connection &c = *conn;
  if (group && group->config.kernel_facts) c.set_syn(read_saved_syn(fd));
  add(std::move(conn));
  if (!group) {
    c.reject("no group claims dialed port " + std::to_string(dialed.port) + " on listener " +
             l.local.to_string() + " (add the port to a group's redirect_from, or add a group without one)");
    return nullptr;
  }
  return c.start() ? &c : nullptr;
}

void NetworkWorker::apply_public_ip(Endpoint &dialed) const {
  for (const auto &p : public_ips_)
    if (p.v6 == dialed.v6 && dialed.ip != "127.0.0.1" && dialed.ip != "::1") dialed.ip = p.ip;
}

void NetworkWorker::pause_accepting(const std::string &why) {
  const bool new_pause = !paused_;
  if (new_pause) {
    paused_ = true;
    ++counters_.accept_pauses;
    for (auto &l : listeners_)
      event_del(l->readable.get());
  }
  // Retry even if no connection closes (another process may free descriptors).
  if (resume_timer_) evtimer_add(resume_timer_.get(), &kAcceptRetry);
  std::lock_guard<std::mutex> lock(shared_.pause_warning_mutex);
  if (new_pause) ++shared_.pauses_unreported;
  auto now = std::chrono::steady_clock::now();
  if (now - shared_.last_pause_warning >= std::chrono::minutes(1)) {
    shared_.logger.warn("accepting paused: " + why + " (" +
                        std::to_string(shared_.open.load(std::memory_order_relaxed)) + " open; " +
                        std::to_string(shared_.pauses_unreported) + " pauses since the last warning)");
    shared_.last_pause_warning = now;
    shared_.pauses_unreported = 0;
  }
}

void NetworkWorker::resume_accepting() {
  if (!paused_ || shared_.open.load(std::memory_order_relaxed) >= shared_.max_connections ||
      (shared_.outputs_full && shared_.outputs_full()))
    return;
  paused_ = false;
  if (resume_timer_) evtimer_del(resume_timer_.get());
  for (auto &l : listeners_)
    event_add(l->readable.get(), nullptr);
}

void NetworkWorker::on_resume_timer(evutil_socket_t, short, void *self) {
  auto *w = static_cast<NetworkWorker *>(self);
  w->resume_accepting();
  if (w->paused_) evtimer_add(w->resume_timer_.get(), &kAcceptRetry);
}

void NetworkWorker::add(std::unique_ptr<Connection> c) {
  c->table_index = connections_.size();
  connections_.push_back(std::move(c));
}

void NetworkWorker::remove(Connection &c) {
  const size_t i = c.table_index;
  if (i + 1 != connections_.size()) {
    std::swap(connections_[i], connections_.back());
    connections_[i]->table_index = i;
  }
  connections_.pop_back(); // destroys c
  shared_.open.fetch_sub(1, std::memory_order_relaxed);
  if (paused_) resume_accepting(); // a descriptor is free again
}

void NetworkWorker::count_closed(TransportGroup *group, sink_close_reason reason, uint64_t bytes) {
  ++counters_.closed[static_cast<int>(reason) % 6];
  counters_.bytes += bytes;
  auto &g = group ? group->counters : unclaimed_counters_;
  ++g.closed[static_cast<int>(reason) % 6];
  g.bytes += bytes;
}

void NetworkWorker::run() {
  // This thread's log lines are written once per loop iteration, with its records.
  Logger::set_thread_batch(&log_batch_);
  event_base_dispatch(base_.get());
  flush_staged();
  Logger::set_thread_batch(nullptr);
}

void NetworkWorker::stop() {
  if (stopped_) return;
  stopped_ = true;
  close_everything();
  event_base_loopexit(base_.get(), nullptr);
}

void NetworkWorker::request_stop() {
  const uint64_t one = 1;
  if (stop_fd_ >= 0 && ::write(stop_fd_, &one, sizeof one) < 0) {
    // The counter cannot overflow from a handful of requests; nothing to do.
  }
}

void NetworkWorker::on_stop_request(evutil_socket_t fd, short, void *self) {
  uint64_t n = 0;
  if (::read(fd, &n, sizeof n) < 0) {
    // Spurious wake-up: the request is still the reason we are here.
  }
  static_cast<NetworkWorker *>(self)->stop();
}

} // namespace sink
