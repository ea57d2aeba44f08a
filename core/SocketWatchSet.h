#pragma once
// The sockets a network thread reads itself, in an epoll set of their own
// that the thread's event loop watches as one descriptor. Closing a socket
// takes it out of the set, so a connection's end costs no epoll_ctl (a
// libevent event would delete it first). A watch is named by an id (slot and
// generation): an event for a watch that has ended is dropped, never handed
// to whoever holds that slot now.
#include <cstdint>
#include <vector>

#include "LibeventHandles.h"
#include "OwnedFd.h"

namespace sink {

class SocketWatchSet {
public:
  // handler(owner, what): what holds EV_READ and/or EV_CLOSED (the peer's
  // FIN is in), as a libevent read event with EV_CLOSED would.
  using Handler = void (*)(void *owner, short what);
  SocketWatchSet(event_base *base, Handler handler); // throws std::runtime_error
  SocketWatchSet(const SocketWatchSet &) = delete;
  SocketWatchSet &operator=(const SocketWatchSet &) = delete;

  // Watches fd for bytes and the peer's FIN (level-triggered) on behalf of
  // owner. Returns the watch id, or 0 when the kernel refused.
  uint64_t watch(int fd, void *owner);
  // Ends a watch whose socket is closed before this thread's loop looks
  // again: no system call. The descriptor must have no copies.
  void forget(uint64_t id);
  // Ends a watch on a socket that stays open (someone else reads it now).
  void unwatch(uint64_t id, int fd);
  size_t watching() const { return slots_.size() - free_.size(); }

private:
  struct Slot {
    void *owner = nullptr;
    uint32_t generation = 0;
  };
  static void on_ready(evutil_socket_t, short, void *self);
  Slot *find(uint64_t id);

  Handler handler_;
  OwnedFd epoll_;
  EventPtr ready_; // freed before epoll_ is closed
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
};

} // namespace sink
