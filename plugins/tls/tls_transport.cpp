// plugins/tls: a TLS sink on libevent's bufferevent_openssl. The handshake is
// the measurement: every connection records what the client offered (SNI,
// ALPN, JA3, JA4) and the raw bytes it sent, even when the handshake fails.
#include <sink/plugin.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/err.h>

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "PluginOptions.h"
#include "ClientHello.h"
#include "Fingerprint.h"
#include "RecordFormat.h"
#include "TlsContext.h"

namespace {

using sink::tls::ClientHelloReader;

struct TlsTransport {
  sink::tls::SslCtxPtr ctx;
  size_t raw_limit;
};

// Per connection: what arrived on the wire before decryption.
struct EventFree {
  void operator()(event *e) const { event_free(e); }
};

struct TlsConnection {
  size_t raw_limit;
  int fd = -1;
  bufferevent *bev = nullptr; // owned by the host
  // Until the client sends its first byte the socket is not given to
  // OpenSSL: a started handshake holds ~33 KB of buffers per connection,
  // and silent connections are most of what a sink sees.
  std::unique_ptr<event, EventFree> first_byte;
  bool attached = false;
  std::vector<uint8_t> raw;
  size_t first_read_len = 0; // what the kernel held when the client first spoke
  ClientHelloReader hello;
  int read_errno = 0; // errno of the last failed socket read (a reset shows here)
  // Set once the handshake completed; what it negotiated is kept, since a
  // later protocol error leaves the SSL object in an error state.
  bool handshake_done = false;
  // The write side now discards. libevent finds the socket to close through
  // the write BIO (and closes it only after its own deferred clean-up), so
  // conn_finish puts the socket BIO back before the bufferevent is freed.
  bool writes_discarded = false;
  std::string version, cipher;
  size_t drained_after_handshake = 0;

  // After a failed or unfinished handshake OpenSSL stops reading, so the rest
  // of a probe (an HTTP request, say) is still in the kernel: read it as raw
  // bytes, and so close with a FIN rather than a RST.
  size_t drain_socket(int fd) {
    uint8_t buf[16384];
    size_t total = 0;
    while (total < kDrainLimit) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      observe(buf, static_cast<size_t>(n));
      total += static_cast<size_t>(n);
    }
    return total;
  }
  static constexpr size_t kDrainLimit = 1024 * 1024;

  void observe(const uint8_t *data, size_t len) {
    if (raw.size() < raw_limit) raw.insert(raw.end(), data, data + std::min(len, raw_limit - raw.size()));
    hello.feed(data, len);
  }
};

// Sees every successful read of the socket BIO, before OpenSSL parses it.
long observe_raw_reads(BIO *bio, int oper, const char *data, size_t, int, long, int ret, size_t *processed) {
  if (oper != (BIO_CB_READ | BIO_CB_RETURN)) return ret;
  auto *conn = reinterpret_cast<TlsConnection *>(BIO_get_callback_arg(bio));
  if (!conn) return ret;
  if (ret > 0 && processed && *processed > 0)
    conn->observe(reinterpret_cast<const uint8_t *>(data), *processed);
  else if (ret < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    // libevent reports only SSL_ERROR_SYSCALL for a socket error; keep errno.
    conn->read_errno = errno;
  return ret;
}

// Once the handshake is done nothing more may leave the sink: OpenSSL's
// later writes (alerts for bad records, a no_renegotiation warning) go to a
// BIO that discards them. The socket BIO keeps reading (SSL_set_bio gave it
// one reference per direction, so replacing the write side is safe).
void on_ssl_info(const SSL *ssl, int where, int) {
  if (!(where & SSL_CB_HANDSHAKE_DONE)) return;
  auto *conn = static_cast<TlsConnection *>(SSL_get_app_data(ssl));
  if (!conn || conn->handshake_done) return;
  conn->handshake_done = true;
  conn->version = SSL_get_version(ssl);
  conn->cipher = SSL_get_cipher_name(ssl);
  if (BIO *discard = BIO_new(BIO_s_null())) {
    SSL_set0_wbio(const_cast<SSL *>(ssl), discard);
    conn->writes_discarded = true;
  }
}

// The client spoke: hand the socket to OpenSSL and start the handshake.
void attach_on_first_byte(evutil_socket_t, short, void *arg) {
  auto *conn = static_cast<TlsConnection *>(arg);
  conn->first_byte.reset();
  // OpenSSL reads a record header first; the first data packet as the
  // kernel received it is what a peek sees now.
  static thread_local uint8_t peek[65536];
  const ssize_t n = ::recv(conn->fd, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) conn->first_read_len = static_cast<size_t>(n);
  if (bufferevent_setfd(conn->bev, conn->fd) != 0) return;
  conn->attached = true; // from here the bufferevent owns and closes fd
  BIO *rbio = SSL_get_rbio(bufferevent_openssl_get_ssl(conn->bev));
  if (rbio) {
    BIO_set_callback_ex(rbio, observe_raw_reads);
    BIO_set_callback_arg(rbio, reinterpret_cast<char *>(conn));
  }
  // Reading was enabled before there was a socket; arm it now.
  bufferevent_enable(conn->bev, EV_READ);
}

int tls_create(const sink_create_args *args, void **instance) noexcept {
  try {
    sink::plugin::PluginOptions opts(args->config_json);
    opts.only({"cert", "key"});
    std::string cert = sink::plugin::resolve_option_path(*args, opts.string("cert", ""));
    std::string key = sink::plugin::resolve_option_path(*args, opts.string("key", ""));
    if (cert.empty() != key.empty())
      throw sink::plugin::OptionError("tls.cert and tls.key must be given together (or neither, for a "
                                      "self-signed certificate)");
    auto t = std::make_unique<TlsTransport>(
        TlsTransport{sink::tls::make_server_context(cert, key), args->capture_bytes});
    // Every network thread creates its own instance: say it once a process.
    static std::atomic<bool> self_signed_told{false};
    if (cert.empty() && args->host && args->host->log && !self_signed_told.exchange(true))
      args->host->log(args->host_ctx, SINK_LOG_INFO,
                      "no tls.cert/tls.key configured: using in-memory self-signed certificates (CN=sink), "
                      "ECDSA P-256 for clients that offer ECDSA (the cheaper handshake) and RSA-2048 for "
                      "RSA-only clients");
    *instance = t.release();
    return SINK_OK;
  } catch (const std::exception &e) {
    sink::plugin::set_create_error(args, std::string("tls transport: ") + e.what());
    return SINK_ERR_CONFIG;
  }
}

bufferevent *tls_accept(void *instance, event_base *base, int fd, void **conn_state) noexcept {
  try {
    auto *t = static_cast<TlsTransport *>(instance);
    SSL *ssl = SSL_new(t->ctx.get());
    if (!ssl) return nullptr;
    auto conn = std::make_unique<TlsConnection>();
    conn->raw_limit = t->raw_limit;
    conn->fd = fd;
    SSL_set_app_data(ssl, conn.get());
    SSL_set_info_callback(ssl, on_ssl_info);
    bufferevent *bev =
        bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
      SSL_free(ssl);
      return nullptr;
    }
    // A peer that just closes (no close_notify) has finished, not failed.
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    conn->bev = bev;
    conn->first_byte.reset(event_new(base, fd, EV_READ, attach_on_first_byte, conn.get()));
    if (!conn->first_byte || event_add(conn->first_byte.get(), nullptr) != 0) {
      bufferevent_free(bev);
      return nullptr;
    }
    *conn_state = conn.release(); // freed in tls_conn_free
    return bev;
  } catch (...) {
    return nullptr;
  }
}

// Comma-joined, keeping empty entries (["", "z"] -> ",z").
std::string join(const std::vector<std::string> &items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i)
    out += (i ? "," : "") + items[i];
  return out;
}

void tls_conn_finish(void *, void *state, bufferevent *bev, short events, sink_close_reason *reason,
                     const sink_extra_writer *w) noexcept {
  try {
    auto *conn = static_cast<TlsConnection *>(state);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    const bool done = conn->handshake_done;
    // Whatever is still in the kernel (the rest of a probe after a failed
    // handshake, bytes after close_notify) is read as raw bytes, so it is
    // kept and the close is a FIN rather than a RST.
    if (conn->fd >= 0) {
      const size_t n = conn->drain_socket(conn->fd);
      if (done) conn->drained_after_handshake += n;
    }
    if (conn->writes_discarded && ssl) {
      if (BIO *socket_bio = SSL_get_rbio(ssl); socket_bio && BIO_up_ref(socket_bio) == 1) {
        SSL_set0_wbio(ssl, socket_bio);
        conn->writes_discarded = false;
      }
    }
    unsigned long first = 0, e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
      if (!first) first = e;
    if (!first && (events & BEV_EVENT_ERROR)) first = ERR_peek_error();
    ERR_clear_error();
    // libevent records SSL_ERROR_* codes (library 0) next to real OpenSSL errors.
    const bool socket_error = first && ERR_GET_LIB(first) == 0;
    std::string error = !first         ? ""
                        : socket_error ? (conn->read_errno ? std::strerror(conn->read_errno) : "")
                                       : sink::tls::openssl_reason(first);
    // A TLS protocol failure is the handshake failing (or, after it, a bad
    // record); a socket error (a reset) is the client going away. Our own
    // timeouts and shutdown stay as they are.
    const bool protocol_error = first && ERR_GET_LIB(first) == ERR_LIB_SSL;
    const bool ours =
        *reason == SINK_CLOSE_TIMEOUT || *reason == SINK_CLOSE_IDLE_TIMEOUT || *reason == SINK_CLOSE_SHUTDOWN;
    if (!ours && conn->read_errno == ECONNRESET)
      *reason = SINK_CLOSE_CLIENT_RST;
    else if (!ours && protocol_error)
      *reason = SINK_CLOSE_ERROR;
    // Peer-controlled text goes in with its length: a NUL or invalid UTF-8
    // is kept (as bytes where it is not text), never cut.
    auto add = [&](const char *k, const std::string &v) { sink_add_string(w, k, v.data(), v.size()); };
    add("tls.handshake", done ? "ok" : protocol_error ? "failed" : "incomplete");
    add("tls.error", error);
    add("tls.version", done ? conn->version : "");
    add("tls.cipher", done ? conn->cipher : "");
    const auto &hello = conn->hello.hello();
    std::string sni = hello ? hello->sni : "";
    if (sni.empty() && ssl && !hello) {
      const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
      if (name) sni = name;
    }
    add("tls.sni", sni);
    add("tls.alpn", hello ? join(hello->alpn) : "");
    std::string ja3 = hello ? sink::tls::ja3_string(*hello) : "";
    add("tls.ja3", ja3);
    add("tls.ja3_hash", hello ? sink::tls::md5_hex(ja3) : "");
    add("tls.ja4", hello ? sink::tls::ja4(*hello) : "");
    add("tls.hello_format", conn->hello.format());
    add("tls.hello_error", conn->hello.error_at_end());
    sink_add_int(w, "tls.trailing_bytes", static_cast<int64_t>(conn->drained_after_handshake));
    add("tls.raw_hex", sink::text::hex(conn->raw.data(), conn->raw.size()));
    w->set_wire(w->ctx, conn->raw.data(), conn->raw.size(), conn->first_read_len);
  } catch (...) {
    // Extras are best effort; the record itself is the host's.
  }
}

void tls_conn_free(void *, void *state) noexcept {
  if (!state) return;
  std::unique_ptr<TlsConnection> owned(static_cast<TlsConnection *>(state));
  owned->first_byte.reset();
  if (!owned->attached && owned->fd >= 0) ::close(owned->fd); // never handed to the bufferevent
}

void tls_destroy(void *instance) noexcept {
  std::unique_ptr<TlsTransport> owned(static_cast<TlsTransport *>(instance));
}

const sink_transport_ops kOps{
    sizeof(sink_transport_ops),
    tls_create,
    tls_accept,
    tls_conn_finish,
    tls_conn_free,
    tls_destroy,
    0, // reads_plain_socket: bytes must go through OpenSSL
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    1, // needs ABI 1.1 (set_wire)
    SINK_PLUGIN_TRANSPORT,
    "tls",
    "1.0.0",
    "TLS 1.0-1.3 via OpenSSL; records SNI, ALPN, JA3, JA4 and raw bytes",
    nullptr,
    &kOps,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
