#pragma once
// Owning handles for libevent objects.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <memory>

namespace sink {

struct EventBaseFree {
  void operator()(event_base *b) const { event_base_free(b); }
};
struct EventFree {
  void operator()(event *e) const { event_free(e); }
};
struct BufferEventFree {
  void operator()(bufferevent *b) const { bufferevent_free(b); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;
using EventPtr = std::unique_ptr<event, EventFree>;
using BufferEventPtr = std::unique_ptr<bufferevent, BufferEventFree>;

} // namespace sink
