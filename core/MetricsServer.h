#pragma once
// `metrics: {listen: ...}`: Prometheus text at /metrics and a health check
// at /healthz, served by libevent's evhttp on an event loop the caller runs
// (the network thread's), so reading the counters needs no locks there.
#include <event2/http.h>

#include <functional>
#include <memory>
#include <string>

#include "LibeventHandles.h"

namespace sink {

struct Health {
  bool ok = true;
  std::string why; // what is wrong, one line per problem
};

class MetricsServer {
public:
  // Binds listen ("ADDR:PORT"); throws BindError naming metrics.listen.
  MetricsServer(event_base *base, const std::string &listen, std::function<std::string()> metrics,
                std::function<Health()> health);
  MetricsServer(const MetricsServer &) = delete;
  MetricsServer &operator=(const MetricsServer &) = delete;
  const std::string &address() const { return listen_; }

private:
  static void on_request(evhttp_request *req, void *self);
  struct HttpFree {
    void operator()(evhttp *h) const { evhttp_free(h); }
  };
  std::string listen_;
  std::function<std::string()> metrics_;
  std::function<Health()> health_;
  std::unique_ptr<evhttp, HttpFree> http_;
};

// Builds Prometheus text exposition format.
class PrometheusText {
public:
  // A metric family: "# HELP" and "# TYPE" lines (type: counter or gauge).
  PrometheusText &family(const std::string &name, const char *type, const std::string &help);
  // One sample; labels as {{"group","web"},...}, values escaped here.
  PrometheusText &sample(const std::string &name, double value,
                         std::initializer_list<std::pair<const char *, std::string>> labels = {});
  const std::string &text() const { return text_; }

private:
  std::string text_;
};

} // namespace sink
