#include "Server.h"

#include "KernelFacts.h"

#include "ConfigValidation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include <cctype>
#include <csignal>
#include <cstring>

namespace sink {
namespace {

// At shutdown, at most this many connections per listener are taken from
// the kernel's queue (SOMAXCONN is 4096).
constexpr size_t kMaxAcceptAtShutdown = 65536;
// Fewer simultaneous connections than this is worth a warning.
constexpr size_t kFewConnections = 256;
// How long accepting pauses after the process ran out of descriptors.
constexpr timeval kAcceptRetry{0, 100 * 1000};

// Owns a socket until it is handed to libevent.
struct SocketGuard {
  int fd;
  ~SocketGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

// Opens a listening socket on addr ("" = all IPv4 and IPv6) and port;
// transparent sockets accept connections to any address (TPROXY).
int open_listener(const std::string &addr, uint16_t port, bool transparent, bool save_syn, std::string *why) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  bool dual = false;
  auto *in4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *in6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (!addr.empty() && inet_pton(AF_INET, addr.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (!addr.empty()) inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr);
    dual = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  SocketGuard s{::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (s.fd < 0 && addr.empty() && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
    // No IPv6 on this host: all addresses means all IPv4 addresses.
    return open_listener("0.0.0.0", port, transparent, save_syn, why);
  }
  if (s.fd < 0) {
    *why = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1, zero = 0;
  setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // The kernel keeps each client's SYN for us to read after accept.
  if (save_syn) enable_saved_syn(s.fd);
  if (ss.ss_family == AF_INET6) setsockopt(s.fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &zero : &one, sizeof one);
  if (transparent) {
    // One flag on the socket covers IPv4 and IPv6 (IPV6_TRANSPARENT sets the same bit).
    const int rc = ss.ss_family == AF_INET6 ? setsockopt(s.fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                                            : setsockopt(s.fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
    if (rc != 0) {
      *why = std::string("transparent: cannot set IP_TRANSPARENT (it needs CAP_NET_ADMIN: run as root, or "
                         "grant the capability): ") +
             std::strerror(errno);
      return -1;
    }
  }
  if (::bind(s.fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
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

} // namespace

Server::Server(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue)
    : config_(config), logger_(logger), queue_(queue), log_connections_(config.log.connections),
      base_(make_base()) {
  if (!base_) throw std::runtime_error("cannot create an event base");
  read_buffer_ = std::make_unique_for_overwrite<uint8_t[]>(kReadBufferSize);
  // Activated from a callback, it joins the end of the active queue: it runs
  // once the iteration's other callbacks have, at the same priority.
  loop_tail_.reset(event_new(base_.get(), -1, 0, on_loop_tail, this));
  if (!loop_tail_) throw std::runtime_error("cannot create an event");
  log_batch_.on_first_line = [](void *self) {
    auto *s = static_cast<Server *>(self);
    if (s->staged_.empty()) event_active(s->loop_tail_.get(), EV_TIMEOUT, 0);
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
    auto group = std::make_unique<TransportGroup>(g, *p->descriptor, logger, where, config.config_dir, 0);
    if (g.timeout.count() > 0) {
      // Every connection of a group has the same timeout: a common-timeout
      // queue makes adding and firing these timers O(1).
      timeval tv = to_timeval(g.timeout);
      group->deadline = event_base_init_common_timeout(base_.get(), &tv);
    }
    groups_.push_back(std::move(group));
  }
}

Server::~Server() {
  close_everything();
  signals_.clear();
}

void Server::close_everything() {
  // Connections the kernel already completed wait in the listen queues:
  // from the client's side they reached the sink, so each gets a record.
  size_t queued = 0;
  for (auto &l : listeners_) {
    const int fd = evconnlistener_get_fd(l->lev.get());
    for (size_t n = 0; n < kMaxAcceptAtShutdown; ++n) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      const int c = ::accept4(fd, reinterpret_cast<sockaddr *>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break; // empty (EAGAIN), or out of descriptors
      ++queued;
      if (Connection *conn = accept_connection(*l, c, reinterpret_cast<sockaddr *>(&peer)))
        conn->finish(SINK_CLOSE_SHUTDOWN, 0, "server shutdown");
    }
  }
  if (queued) logger_.info("recorded " + std::to_string(queued) + " connections still queued in the kernel");
  listeners_.clear(); // stop accepting
  stats_timer_.reset();
  resume_timer_.reset();
  while (!connections_.empty())
    connections_.front()->finish(SINK_CLOSE_SHUTDOWN, 0, "server shutdown");
  flush_staged();
}

namespace {
// A loop iteration that finishes this many records hands them over early,
// which bounds what waits here (a shutdown closes every connection at once).
constexpr size_t kStageLimit = 1024;
} // namespace

void Server::hand_over(Record &&r) {
  staged_.push_back(std::move(r));
  if (staged_.size() >= kStageLimit)
    flush_staged();
  else if (staged_.size() == 1 && log_batch_.lines.empty())
    event_active(loop_tail_.get(), EV_TIMEOUT, 0);
}

void Server::on_loop_tail(evutil_socket_t, short, void *self) { static_cast<Server *>(self)->flush_staged(); }

void Server::flush_staged() {
  // Log lines first: a record's Close line is on disk before the record.
  logger_.flush_thread_batch();
  queue_.push_all(staged_);
}

void Server::bind_all() {
  resume_timer_.reset(evtimer_new(base_.get(), on_resume_timer, this));
  // Descriptors not for connections: listeners, outputs, log, libevent, a margin.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  size_t listeners = 0;
  for (auto &g : groups_)
    listeners += g->config.ports.size() * std::max<size_t>(1, g->config.listen.size());
  const size_t reserve = 64 + listeners + 2 * config_.outputs.size();
  const size_t by_limit = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX
                          : rl.rlim_cur > reserve + 1  ? rl.rlim_cur - reserve
                                                       : 1;
  max_connections_ = config_.max_connections ? std::min(config_.max_connections, by_limit) : by_limit;
  if (by_limit < kFewConnections && max_connections_ == by_limit)
    logger_.warn("the open-file limit (" + std::to_string(rl.rlim_cur) + ") leaves room for only " +
                 std::to_string(by_limit) + " connections at once after " + std::to_string(listeners) +
                 " listeners and " + std::to_string(reserve - listeners) +
                 " reserved descriptors: raise it (ulimit -n, or LimitNOFILE= in the systemd unit)");

  // Groups that name the same listen list and port share one socket and are
  // told apart after accept by the port the client dialed.
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
        if (!l) l = open_listener_for(*group, addr, port);
        if (port != 0) shared[{addr, port}] = l;
        l->groups.push_back(group.get());
        if (g.redirect_from.empty()) l->fallback = group.get();
      }
    }
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

Server::Listener *Server::open_listener_for(TransportGroup &group, const std::string &addr, uint16_t port) {
  const auto &g = group.config;
  std::string why;
  // A listener may serve several groups: save SYNs if any group wants them.
  bool save_syn = false;
  for (const auto &other : config_.groups)
    save_syn = save_syn || other.kernel_facts;
  int fd = open_listener(addr, port, g.transparent, save_syn, &why);
  std::string shown = addr.empty() ? "all addresses" : addr;
  if (fd < 0)
    throw BindError("cannot listen on " + shown + " port " + std::to_string(port) + " (group \"" + g.name +
                    "\"): " + why);
  auto l = std::make_unique<Listener>();
  l->server = this;
  l->local = local_endpoint(fd);
  l->fixed_local = !g.transparent && l->local.ip != "0.0.0.0" && l->local.ip != "::" && !l->local.ip.empty();
  l->lev.reset(evconnlistener_new(base_.get(), on_accept, l.get(),
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd));
  if (!l->lev) {
    ::close(fd);
    throw BindError("cannot watch " + shown + " port " + std::to_string(port));
  }
  evconnlistener_set_error_cb(l->lev.get(), on_accept_error);
  logger_.plain(upper(group.plugin_name) + " server is listening on " + l->local.to_string() +
                ", timeout value: " + format_go_duration(g.timeout));
  listeners_.push_back(std::move(l));
  return listeners_.back().get();
}

TransportGroup *Server::Listener::pick(uint16_t port) const {
  if (!by_dialed_port.empty())
    if (uint16_t i = by_dialed_port[port]) return groups[i - 1];
  return fallback;
}

void Server::on_accept(evconnlistener *, evutil_socket_t fd, sockaddr *peer, int, void *arg) {
  auto *l = static_cast<Listener *>(arg);
  Server *s = l->server;
  s->accept_connection(*l, fd, peer);
  if (s->connections_.size() >= s->max_connections_)
    s->pause_accepting("reached the connection limit of " + std::to_string(s->max_connections_));
  else if (s->outputs_full())
    s->pause_accepting(
        "no output can take more records (the journal is full, or without one every output is output_backlog "
        "records behind); new connections wait in the kernel");
}

Connection *Server::accept_connection(Listener &l, int fd, const sockaddr *peer) {
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

void Server::apply_public_ip(Endpoint &dialed) const {
  for (const auto &p : public_ips_)
    if (p.v6 == dialed.v6 && dialed.ip != "127.0.0.1" && dialed.ip != "::1") dialed.ip = p.ip;
}

void Server::on_accept_error(evconnlistener *, void *arg) {
  auto *l = static_cast<Listener *>(arg);
  int err = EVUTIL_SOCKET_ERROR();
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
    // The pending connection stays queued in the kernel; pause rather than
    // spin on the same error.
    l->server->pause_accepting(std::string("accept: ") + std::strerror(err));
    return;
  }
  l->server->logger_.warn("accept on " + l->local.to_string() + ": " + std::strerror(err));
}

void Server::pause_accepting(const std::string &why) {
  if (!paused_) {
    paused_ = true;
    ++counters_.accept_pauses;
    ++pauses_unreported_;
    for (auto &l : listeners_)
      evconnlistener_disable(l->lev.get());
  }
  // Retry even if no connection closes (another process may free descriptors).
  if (resume_timer_) evtimer_add(resume_timer_.get(), &kAcceptRetry);
  auto now = std::chrono::steady_clock::now();
  if (now - last_pause_warning_ >= std::chrono::minutes(1)) {
    logger_.warn("accepting paused: " + why + " (" + std::to_string(connections_.size()) + " open; " +
                 std::to_string(pauses_unreported_) + " pauses since the last warning)");
    last_pause_warning_ = now;
    pauses_unreported_ = 0;
  }
}

void Server::resume_accepting() {
  if (!paused_ || connections_.size() >= max_connections_ || outputs_full()) return;
  paused_ = false;
  if (resume_timer_) evtimer_del(resume_timer_.get());
  for (auto &l : listeners_)
    evconnlistener_enable(l->lev.get());
}

void Server::on_resume_timer(evutil_socket_t, short, void *self) {
  auto *s = static_cast<Server *>(self);
  s->resume_accepting();
  if (s->paused_) evtimer_add(s->resume_timer_.get(), &kAcceptRetry);
}

void Server::add(std::unique_ptr<Connection> c) {
  connections_.push_front(std::move(c));
  connections_.front()->table_slot = connections_.begin();
}

void Server::remove(Connection &c) {
  connections_.erase(c.table_slot);
  if (paused_) resume_accepting(); // a descriptor is free again
}

void Server::count_closed(TransportGroup *group, sink_close_reason reason, uint64_t bytes) {
  ++counters_.closed[static_cast<int>(reason) % 6];
  counters_.bytes += bytes;
  auto &g = group ? group->counters : unclaimed_counters_;
  ++g.closed[static_cast<int>(reason) % 6];
  g.bytes += bytes;
}

std::vector<std::pair<std::string, GroupCounters>> Server::group_counters() const {
  std::vector<std::pair<std::string, GroupCounters>> out;
  for (const auto &g : groups_)
    out.emplace_back(g->config.name, g->counters);
  out.emplace_back("", unclaimed_counters_);
  return out;
}

std::string Server::stats_line() const {
  uint64_t closed = 0;
  std::string by_reason;
  for (int r = 0; r < 6; ++r) {
    closed += counters_.closed[r];
    by_reason += std::string(r ? " " : "") + sink_close_reason_name(static_cast<sink_close_reason>(r)) + "=" +
                 std::to_string(counters_.closed[r]);
  }
  std::string line = "stats: open=" + std::to_string(connections_.size()) +
                     " accepted=" + std::to_string(counters_.accepted) + " closed=" + std::to_string(closed) +
                     " (" + by_reason + ") bytes=" + std::to_string(counters_.bytes) +
                     " accept_pauses=" + std::to_string(counters_.accept_pauses);
  if (stats_extra_) line += " " + stats_extra_();
  return line;
}

void Server::on_stats_timer(evutil_socket_t, short, void *self) {
  auto *s = static_cast<Server *>(self);
  s->logger_.info(s->stats_line());
}

void Server::on_signal(evutil_socket_t sig, short, void *self) {
  auto *s = static_cast<Server *>(self);
  if (sig == SIGHUP) {
    s->logger_.info("SIGHUP: reopening log and output files");
    if (s->on_reopen_) s->on_reopen_();
    return;
  }
  s->logger_.info(std::string("received ") + strsignal(static_cast<int>(sig)) + ", closing " +
                  std::to_string(s->connections_.size()) + " open connections");
  s->stop();
}

void Server::stop() {
  close_everything();
  event_base_loopexit(base_.get(), nullptr);
}

void Server::run(std::function<void()> on_reopen) {
  on_reopen_ = std::move(on_reopen);
  if (config_.stats_interval.count() > 0) {
    stats_timer_.reset(event_new(base_.get(), -1, EV_PERSIST, on_stats_timer, this));
    timeval tv = to_timeval(config_.stats_interval);
    evtimer_add(stats_timer_.get(), &tv);
  }
  sigset_t held;
  sigemptyset(&held);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    signals_.emplace_back(evsignal_new(base_.get(), sig, on_signal, this));
    evsignal_add(signals_.back().get(), nullptr);
    sigaddset(&held, sig);
  }
  // main() held these during start-up; what arrived meanwhile is handled now.
  pthread_sigmask(SIG_UNBLOCK, &held, nullptr);
  // This thread's log lines are written once per loop iteration, with its records.
  Logger::set_thread_batch(&log_batch_);
  event_base_dispatch(base_.get());
  flush_staged();
  Logger::set_thread_batch(nullptr);
}

} // namespace sink
