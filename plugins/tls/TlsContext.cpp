#include "TlsContext.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include <openssl/err.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <stdexcept>

namespace sink::tls {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509 *x) const { X509_free(x); }
};

std::string last_error() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  return e ? openssl_reason(e) : "unknown error";
}

// One key and the self-signed certificate for it.
struct Identity {
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
  std::unique_ptr<X509, X509Free> cert;
};

Identity self_signed(std::unique_ptr<EVP_PKEY, PkeyFree> key, const char *what) {
  Identity id{std::move(key), std::unique_ptr<X509, X509Free>(X509_new())};
  // A random serial: the two certificates share the issuer name, and some
  // clients (Firefox) refuse two certificates with one issuer and serial.
  uint64_t serial = 0;
  if (!id.key || !id.cert || RAND_bytes(reinterpret_cast<unsigned char *>(&serial), sizeof serial) != 1)
    throw std::runtime_error(std::string("cannot generate a self-signed ") + what +
                             " certificate: " + last_error());
  X509 *cert = id.cert.get();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial >> 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -24 * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert, id.key.get());
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char *>("sink"), -1,
                             -1, 0);
  X509_set_issuer_name(cert, name);
  if (!X509_sign(cert, id.key.get(), EVP_sha256()))
    throw std::runtime_error(std::string("cannot sign a self-signed ") + what +
                             " certificate: " + last_error());
  return id;
}

// Two identities, made once per process and shared by every context (each
// SSL_CTX takes its own reference; keys and certificates are only read
// after this, which OpenSSL allows from any thread). ECDSA P-256 makes the
// handshake cheap for the clients that offer it (most of them); RSA-2048
// keeps the oldest clients, which speak only RSA. A function-local static:
// built once even when several threads ask, tried again if it threw.
const std::array<Identity, 2> &default_identities() {
  using Key = std::unique_ptr<EVP_PKEY, PkeyFree>;
  static const std::array<Identity, 2> ids{self_signed(Key(EVP_EC_gen("P-256")), "ECDSA P-256"),
                                           self_signed(Key(EVP_RSA_gen(2048)), "RSA-2048")};
  return ids;
}

void use_self_signed(SSL_CTX *ctx) {
  // One slot per key type: OpenSSL picks the certificate per handshake from
  // the client's signature algorithms (TLS 1.3) or cipher (TLS 1.2 and older).
  for (const Identity &id : default_identities())
    if (SSL_CTX_use_cert_and_key(ctx, id.cert.get(), id.key.get(), nullptr, 1) != 1)
      throw std::runtime_error("cannot install a self-signed certificate: " + last_error());
}

} // namespace

std::string openssl_reason(unsigned long code) {
  const char *r = ERR_reason_error_string(code);
  if (r) return r;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

SslCtxPtr make_server_context(const std::string &cert_file, const std::string &key_file) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("cannot create a TLS context: " + last_error());
  SSL_CTX *c = ctx.get();
  // Record old and odd clients too: TLS 1.0 up, every cipher OpenSSL has.
  SSL_CTX_set_security_level(c, 0);
  SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
  SSL_CTX_set_cipher_list(c, "ALL:@SECLEVEL=0");
  SSL_CTX_set_dh_auto(c, 1);
  SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_num_tickets(c, 0); // no TLS 1.3 NewSessionTicket
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS); // idle connections stay small
  SSL_CTX_set_quiet_shutdown(c, 1);              // never send close_notify
  if (cert_file.empty() && key_file.empty()) {
    use_self_signed(c);
    return ctx;
  }
  // Say what is wrong with the files in words (OpenSSL would say "system lib").
  for (const auto &[what, file] : {std::pair{"certificate", cert_file}, std::pair{"private key", key_file}})
    if (access(file.c_str(), R_OK) != 0)
      throw std::runtime_error(std::string("cannot read ") + what + " file \"" + file +
                               "\": " + std::strerror(errno));
  if (SSL_CTX_use_certificate_chain_file(c, cert_file.c_str()) != 1)
    throw std::runtime_error("\"" + cert_file + "\" is not a PEM certificate: " + last_error());
  const auto mismatch = [&] {
    ERR_clear_error();
    return std::runtime_error(
        "private key \"" + key_file + "\" does not belong to certificate \"" + cert_file +
        "\" (a different key, or a different key type such as EC for an RSA certificate)");
  };
  if (SSL_CTX_use_PrivateKey_file(c, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const int reason = ERR_GET_REASON(ERR_peek_last_error());
    if (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH) throw mismatch();
    throw std::runtime_error("\"" + key_file + "\" is not a PEM private key: " + last_error());
  }
  // An EC key next to an RSA certificate installs as a second identity with
  // no certificate: that is a mismatch too.
  if (SSL_CTX_check_private_key(c) != 1) throw mismatch();
  return ctx;
}

} // namespace sink::tls
