// plugins/tcp: plain TCP. The socket bufferevent reads straight from the
// kernel; the host does the rest.
#include <sink/plugin.h>

#include <event2/bufferevent.h>

#include "PluginOptions.h"

namespace {

int tcp_create(const sink_create_args *args, void **instance) noexcept {
  try {
    sink::plugin::PluginOptions(args->config_json).only({});
  } catch (const std::exception &e) {
    sink::plugin::set_create_error(args, std::string("tcp transport: ") + e.what());
    return SINK_ERR_CONFIG;
  }
  *instance = nullptr;
  return SINK_OK;
}

bufferevent *tcp_accept(void *, event_base *base, int fd, void **conn_state) noexcept {
  *conn_state = nullptr;
  return bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
}

void tcp_destroy(void *) noexcept {}

const sink_transport_ops kOps{
    sizeof(sink_transport_ops),
    tcp_create,
    tcp_accept,
    nullptr, // conn_finish: the host's classification is exact for TCP
    nullptr, // conn_free
    tcp_destroy,
    1, // reads_plain_socket
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    0, // needs nothing newer than ABI 1.0
    SINK_PLUGIN_TRANSPORT,
    "tcp",
    "1.0.0",
    "plain TCP",
    nullptr,
    &kOps,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
