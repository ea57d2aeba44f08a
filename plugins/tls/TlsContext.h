#pragma once
// The OpenSSL server context of one TLS group: accepts every protocol
// version OpenSSL can still speak, and sends nothing beyond the handshake
// (no session tickets, no renegotiation, no close_notify).
#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace sink::tls {

struct SslCtxFree {
  void operator()(SSL_CTX *c) const { SSL_CTX_free(c); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// With cert and key empty, uses two in-memory self-signed identities made
// once per process: ECDSA P-256 for clients that offer ECDSA, RSA-2048 for
// RSA-only clients.
// Throws std::runtime_error naming the file and OpenSSL's reason.
SslCtxPtr make_server_context(const std::string &cert_file, const std::string &key_file);

// OpenSSL's reason string for an error code ("wrong version number").
std::string openssl_reason(unsigned long code);

} // namespace sink::tls
