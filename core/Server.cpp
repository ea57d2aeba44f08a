#include "Server.h"

#include "ThreadName.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>

namespace sink {
namespace {
// Fewer simultaneous connections than this is worth a warning.
constexpr size_t kFewConnections = 256;

// Descriptors per network thread the default leaves room for: its epoll and
// wake-up descriptors and listeners, and above all its share of connections.
constexpr size_t kDescriptorsPerDefaultWorker = 64;

size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return static_cast<size_t>(CPU_COUNT(&set));
  const unsigned cpus = std::thread::hardware_concurrency();
  return cpus ? cpus : 1;
}

size_t worker_count(const Config &config) {
  if (config.workers) return config.workers;
  // One per CPU this process may run on (a cpuset, taskset or systemd
  // CPUAffinity= leaves fewer than the host has), but a low open-file limit
  // on a many-core host must not be spent on threads rather than connections.
  size_t n = usable_cpus();
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    n = std::min<size_t>(n, std::max<size_t>(1, rl.rlim_cur / kDescriptorsPerDefaultWorker));
  return n;
}
} // namespace

Server::Server(const Config &config, PluginLoader &loader, Logger &logger, RecordQueue &queue)
    : shared_(config, logger, queue) {
  const size_t n = worker_count(config);
  for (size_t i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<NetworkWorker>(shared_, loader, static_cast<uint32_t>(i)));
}

Server::~Server() {
  for (auto &t : threads_) // only after a failed run(): ask, then wait
    if (t.joinable()) {
      for (auto &w : workers_)
        w->request_stop();
      t.join();
    }
  signals_.clear();
  stats_timer_.reset();
  workers_.clear();
}

void Server::bind_all() {
  const Config &config = shared_.config;
  // Descriptors not for connections: listeners, outputs, log, libevent, a margin.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  size_t listeners = 0;
  for (const auto &g : config.groups)
    listeners += g.ports.size() * std::max<size_t>(1, g.listen.size());
  listeners *= workers_.size();
  const size_t reserve = 64 + listeners + 2 * config.outputs.size() + 4 * workers_.size();
  const size_t by_limit = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX
                          : rl.rlim_cur > reserve + 1  ? rl.rlim_cur - reserve
                                                       : 1;
  shared_.max_connections = config.max_connections ? std::min(config.max_connections, by_limit) : by_limit;
  if (by_limit < kFewConnections && shared_.max_connections == by_limit)
    shared_.logger.warn("the open-file limit (" + std::to_string(rl.rlim_cur) + ") leaves room for only " +
                        std::to_string(by_limit) + " connections at once after " + std::to_string(listeners) +
                        " listeners and " + std::to_string(reserve - listeners) +
                        " reserved descriptors: raise it (ulimit -n, or LimitNOFILE= in the systemd unit)");
  // Several workers share each address and port through SO_REUSEPORT: the
  // kernel spreads new connections over their sockets.
  const bool reuse_port = workers_.size() > 1;
  for (auto &w : workers_)
    w->bind_all(w == workers_.front() ? nullptr : workers_.front().get(), reuse_port);
}

uint64_t Server::accept_pauses() const {
  uint64_t n = 0;
  for (const auto &w : workers_)
    n += w->accept_pauses();
  return n;
}

std::vector<std::pair<std::string, GroupCounts>> Server::group_counters() const {
  std::vector<std::pair<std::string, GroupCounts>> out;
  const auto &first = workers_.front()->groups();
  for (size_t i = 0; i < first.size(); ++i) {
    GroupCounts c;
    for (const auto &w : workers_)
      c.add(w->groups()[i]->counters);
    out.emplace_back(first[i]->config.name, c);
  }
  GroupCounts unclaimed;
  for (const auto &w : workers_)
    unclaimed.add(w->unclaimed_counters());
  out.emplace_back("", unclaimed);
  return out;
}

std::string Server::stats_line() const {
  uint64_t accepted = 0, bytes = 0, closed_by[6] = {};
  for (const auto &w : workers_) {
    accepted += w->accepted();
    bytes += w->bytes();
    for (int r = 0; r < 6; ++r)
      closed_by[r] += w->closed(r);
  }
  uint64_t closed = 0;
  std::string by_reason;
  for (int r = 0; r < 6; ++r) {
    closed += closed_by[r];
    by_reason += std::string(r ? " " : "") + sink_close_reason_name(static_cast<sink_close_reason>(r)) + "=" +
                 std::to_string(closed_by[r]);
  }
  std::string line = "stats: open=" + std::to_string(open_connections()) +
                     " accepted=" + std::to_string(accepted) + " closed=" + std::to_string(closed) + " (" +
                     by_reason + ") bytes=" + std::to_string(bytes) +
                     " accept_pauses=" + std::to_string(accept_pauses());
  if (stats_extra_) line += " " + stats_extra_();
  return line;
}

void Server::on_stats_timer(evutil_socket_t, short, void *self) {
  auto *s = static_cast<Server *>(self);
  s->shared_.logger.info(s->stats_line());
}

void Server::on_signal(evutil_socket_t sig, short, void *self) {
  auto *s = static_cast<Server *>(self);
  if (sig == SIGHUP) {
    s->shared_.logger.info("SIGHUP: reopening log and output files");
    if (s->on_reopen_) s->on_reopen_();
    return;
  }
  s->shared_.logger.info(std::string("received ") + strsignal(static_cast<int>(sig)) + ", closing " +
                         std::to_string(s->open_connections()) + " open connections");
  s->stats_timer_.reset();
  // Every worker records what it holds and what waits in its listen queues;
  // run() returns once all have.
  for (size_t i = 1; i < s->workers_.size(); ++i)
    s->workers_[i]->request_stop();
  s->workers_.front()->stop();
}

void Server::run(std::function<void()> on_reopen) {
  on_reopen_ = std::move(on_reopen);
  event_base *base = workers_.front()->base();
  const Config &config = shared_.config;
  if (config.stats_interval.count() > 0) {
    stats_timer_.reset(event_new(base, -1, EV_PERSIST, on_stats_timer, this));
    timeval tv = to_timeval(config.stats_interval);
    evtimer_add(stats_timer_.get(), &tv);
  }
  sigset_t held;
  sigemptyset(&held);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    signals_.emplace_back(evsignal_new(base, sig, on_signal, this));
    evsignal_add(signals_.back().get(), nullptr);
    sigaddset(&held, sig);
  }
  // The other workers keep these signals blocked (inherited from main(),
  // which held them during start-up); only this thread takes them.
  for (size_t i = 1; i < workers_.size(); ++i)
    threads_.emplace_back([w = workers_[i].get(), i] {
      name_this_thread("sink-net" + std::to_string(i));
      w->run();
    });
  // What arrived meanwhile is handled now.
  pthread_sigmask(SIG_UNBLOCK, &held, nullptr);
  if (workers_.size() > 1) name_this_thread("sink-net0");
  workers_.front()->run();
  for (auto &t : threads_)
    t.join();
  threads_.clear();
  if (const uint64_t queued = shared_.queued_at_stop.load())
    shared_.logger.info("recorded " + std::to_string(queued) + " connections still queued in the kernel");
}

} // namespace sink
