#include "MetricsServer.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <cmath>
#include <cstring>

#include "ConfigValidation.h"
#include "Server.h"
#include "TextEncoding.h"

namespace sink {

MetricsServer::MetricsServer(event_base *base, const std::string &listen,
                             std::function<std::string()> metrics, std::function<Health()> health)
    : listen_(listen), metrics_(std::move(metrics)), health_(std::move(health)), http_(evhttp_new(base)) {
  std::string addr;
  uint16_t port = 0;
  if (!http_ || !split_host_port(listen, &addr, &port))
    throw BindError("metrics.listen: cannot serve on \"" + listen + "\"");
  if (!evhttp_bind_socket_with_handle(http_.get(), addr.c_str(), port))
    throw BindError("metrics.listen: cannot listen on " + listen + ": " + std::strerror(errno));
  evhttp_set_allowed_methods(http_.get(), EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_gencb(http_.get(), &MetricsServer::on_request, this);
  // Scrapers are few and send little: a client that sends nothing, or
  // endless headers, must not hold a slot or memory.
  evhttp_set_timeout(http_.get(), 10);
  evhttp_set_max_headers_size(http_.get(), 8192);
  evhttp_set_max_body_size(http_.get(), 1024);
}

void MetricsServer::on_request(evhttp_request *req, void *arg) {
  auto *self = static_cast<MetricsServer *>(arg);
  const char *uri = evhttp_request_get_uri(req);
  std::string path = uri ? uri : "/";
  path = path.substr(0, path.find('?'));
  struct BufferFree {
    void operator()(evbuffer *b) const { evbuffer_free(b); }
  };
  std::unique_ptr<evbuffer, BufferFree> body(evbuffer_new());
  if (!body) return evhttp_send_error(req, HTTP_INTERNAL, nullptr);
  auto *headers = evhttp_request_get_output_headers(req);
  if (path == "/metrics") {
    const std::string text = self->metrics_();
    evbuffer_add(body.get(), text.data(), text.size());
    evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", body.get());
  } else if (path == "/healthz") {
    const Health h = self->health_();
    const std::string text = h.ok ? "ok\n" : h.why;
    evbuffer_add(body.get(), text.data(), text.size());
    evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
    evhttp_send_reply(req, h.ok ? HTTP_OK : 503, h.ok ? "OK" : "Service Unavailable", body.get());
  } else {
    evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics or /healthz");
  }
}

PrometheusText &PrometheusText::family(const std::string &name, const char *type, const std::string &help) {
  text_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  return *this;
}

PrometheusText &PrometheusText::sample(const std::string &name, double value,
                                       std::initializer_list<std::pair<const char *, std::string>> labels) {
  text_ += name;
  if (labels.size()) {
    text_ += '{';
    bool first = true;
    for (const auto &[k, v] : labels) {
      text_ += (first ? "" : ",") + std::string(k) + "=\"";
      for (char ch : v) {
        if (ch == '\\' || ch == '"') text_ += '\\';
        if (ch == '\n') {
          text_ += "\\n";
          continue;
        }
        text_ += ch;
      }
      text_ += '"';
      first = false;
    }
    text_ += '}';
  }
  text_ += ' ';
  if (std::floor(value) == value && std::fabs(value) < 1e15)
    text_ += std::to_string(static_cast<long long>(value));
  else
    text_ += text::plain_decimal(value);
  text_ += '\n';
  return *this;
}

} // namespace sink
