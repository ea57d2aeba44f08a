#pragma once
// JA3 and JA4 (TLS over TCP) client fingerprints, following their public
// specifications (salesforce/ja3; FoxIO JA4 technical details).
#include <string>

#include "ClientHello.h"

namespace sink::tls {

// "771,4865-4866,0-23-65281,29-23,0": version, ciphers, extensions,
// supported groups, point formats; decimal, GREASE removed.
std::string ja3_string(const ClientHello &h);
std::string md5_hex(const std::string &text);
std::string sha256_hex(const std::string &text);
// "t13d1516h2_8daaf6152771_e5627efa2ab1"
std::string ja4(const ClientHello &h);

// The parts of JA4 exposed for tests with the specification's vectors.
std::string ja4_cipher_hash(const ClientHello &h);
std::string ja4_extension_hash(const ClientHello &h);

} // namespace sink::tls
