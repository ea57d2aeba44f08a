// SocketWatchSet with real sockets and a real event loop: events reach the
// watch's owner, an ended watch gets nothing even when its slot is reused,
// and the peer's FIN shows as EV_CLOSED.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "LibeventHandles.h"
#include "SocketWatchSet.h"

using sink::SocketWatchSet;

namespace {

struct Seen {
  std::vector<std::pair<int, short>> calls; // (owner tag, what)
};
Seen *g_seen = nullptr;

void note(void *owner, short what) { g_seen->calls.emplace_back(*static_cast<int *>(owner), what); }

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0); }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

// One pass of the loop (EVLOOP_NONBLOCK alone keeps going while anything is ready).
void loop_once(event_base *base) { event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK); }

} // namespace

TEST(SocketWatchSet, EventsReachTheOwnerAndEndedWatchesGetNothing) {
  sink::EventBasePtr base(event_base_new());
  ASSERT_TRUE(base);
  Seen seen;
  g_seen = &seen;
  SocketWatchSet set(base.get(), note);
  Pair a, b;
  int tag_a = 1, tag_b = 2;

  const uint64_t id_a = set.watch(a.fd[0], &tag_a);
  ASSERT_NE(id_a, 0u);
  ASSERT_EQ(::write(a.fd[1], "x", 1), 1);
  loop_once(base.get());
  ASSERT_EQ(seen.calls.size(), 1u);
  EXPECT_EQ(seen.calls[0].first, 1);
  EXPECT_TRUE(seen.calls[0].second & EV_READ);
  EXPECT_FALSE(seen.calls[0].second & EV_CLOSED);

  // Ended without a close: a's socket is still in the kernel's set, and b
  // takes the same slot. a's readiness must not be delivered to b's owner.
  set.forget(id_a);
  const uint64_t id_b = set.watch(b.fd[0], &tag_b);
  ASSERT_NE(id_b, 0u);
  EXPECT_NE(id_b, id_a) << "a reused slot gets a new generation";
  EXPECT_EQ(set.watching(), 1u);
  seen.calls.clear();
  loop_once(base.get());
  EXPECT_TRUE(seen.calls.empty()) << "a is still readable, but its watch ended";

  // The peer's FIN on b: EV_READ and EV_CLOSED together.
  ::shutdown(b.fd[1], SHUT_WR);
  loop_once(base.get());
  ASSERT_EQ(seen.calls.size(), 1u);
  EXPECT_EQ(seen.calls[0].first, 2);
  EXPECT_EQ(seen.calls[0].second & (EV_READ | EV_CLOSED), EV_READ | EV_CLOSED);

  // unwatch takes an open socket out of the kernel's set: no more calls.
  set.unwatch(id_b, b.fd[0]);
  EXPECT_EQ(set.watching(), 0u);
  seen.calls.clear();
  loop_once(base.get());
  EXPECT_TRUE(seen.calls.empty());

  // Closing a watched socket takes it out of the set by itself.
  Pair c;
  int tag_c = 3;
  const uint64_t id_c = set.watch(c.fd[0], &tag_c);
  ASSERT_NE(id_c, 0u);
  set.forget(id_c);
  ::close(c.fd[0]);
  c.fd[0] = -1;
  ::close(c.fd[1]);
  c.fd[1] = -1;
  loop_once(base.get());
  EXPECT_TRUE(seen.calls.empty());
  g_seen = nullptr;
}

TEST(SocketWatchSet, ARefusedWatchReturnsZeroAndFreesItsSlot) {
  sink::EventBasePtr base(event_base_new());
  ASSERT_TRUE(base);
  SocketWatchSet set(base.get(), note);
  int tag = 0;
  EXPECT_EQ(set.watch(-1, &tag), 0u);
  EXPECT_EQ(set.watching(), 0u);
}
