#include "SocketWatchSet.h"

#include <sys/epoll.h>

#include <stdexcept>

namespace sink {

namespace {
// Events taken per look; more stay ready (level-triggered) for the next one.
constexpr int kEventsPerLook = 256;

uint64_t make_id(uint32_t slot, uint32_t generation) {
  return static_cast<uint64_t>(generation) << 32 | (static_cast<uint64_t>(slot) + 1);
}
} // namespace

SocketWatchSet::SocketWatchSet(event_base *base, Handler handler)
    : handler_(handler), epoll_(epoll_create1(EPOLL_CLOEXEC)) {
  if (epoll_.fd < 0) throw std::runtime_error("cannot create the network thread's socket set");
  ready_.reset(event_new(base, epoll_.fd, EV_READ | EV_PERSIST, on_ready, this));
  if (!ready_ || event_add(ready_.get(), nullptr) != 0)
    throw std::runtime_error("cannot watch the network thread's socket set");
}

uint64_t SocketWatchSet::watch(int fd, void *owner) {
  uint32_t slot;
  if (free_.empty()) {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  Slot &s = slots_[slot];
  s.owner = owner;
  const uint64_t id = make_id(slot, s.generation);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = id;
  if (epoll_ctl(epoll_.fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    forget(id);
    return 0;
  }
  return id;
}

SocketWatchSet::Slot *SocketWatchSet::find(uint64_t id) {
  const uint64_t slot = (id & 0xffffffffu) - 1;
  if (id == 0 || slot >= slots_.size()) return nullptr;
  Slot &s = slots_[slot];
  return s.owner && s.generation == static_cast<uint32_t>(id >> 32) ? &s : nullptr;
}

void SocketWatchSet::forget(uint64_t id) {
  Slot *s = find(id);
  if (!s) return;
  s->owner = nullptr;
  ++s->generation;
  free_.push_back(static_cast<uint32_t>(s - slots_.data()));
}

void SocketWatchSet::unwatch(uint64_t id, int fd) {
  if (!find(id)) return;
  epoll_event ev{};
  epoll_ctl(epoll_.fd, EPOLL_CTL_DEL, fd, &ev);
  forget(id);
}

void SocketWatchSet::on_ready(evutil_socket_t, short, void *self) {
  auto *set = static_cast<SocketWatchSet *>(self);
  epoll_event events[kEventsPerLook];
  const int n = epoll_wait(set->epoll_.fd, events, kEventsPerLook, 0);
  for (int i = 0; i < n; ++i) {
    // A handler may end other watches (a stop closes everything): look each
    // one up afresh.
    Slot *s = set->find(events[i].data.u64);
    if (!s) continue;
    const uint32_t e = events[i].events;
    // A hang-up or error is a read too: the read says what happened.
    short what = e & (EPOLLIN | EPOLLHUP | EPOLLERR) ? EV_READ : 0;
    if (e & EPOLLRDHUP) what |= EV_CLOSED;
    set->handler_(s->owner, what);
  }
}

} // namespace sink
