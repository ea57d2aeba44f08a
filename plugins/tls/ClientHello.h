#pragma once
// The TLS ClientHello as it arrived on the wire, parsed by us rather than
// through OpenSSL's getters, which hide GREASE and unknown extensions and
// say nothing about a hello OpenSSL refused.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sink::tls {

struct ClientHello {
  uint16_t legacy_version = 0; // ClientHello.client_version
  std::vector<uint16_t> ciphers;
  std::vector<uint16_t> extensions;           // in wire order, GREASE included
  std::vector<uint16_t> groups;               // supported_groups (10)
  std::vector<uint8_t> point_formats;         // ec_point_formats (11)
  std::vector<uint16_t> signature_algorithms; // (13)
  std::vector<uint16_t> supported_versions;   // (43)
  std::string sni;                            // host_name of server_name (0)
  std::vector<std::string> alpn;              // (16), in order
};

bool is_grease(uint16_t v);

// Collects raw bytes from the start of a connection until the first
// handshake message is complete, across TLS records and reads.
class ClientHelloReader {
public:
  enum class State { kNeedMore, kDone, kNotTls, kMalformed, kSslV2 };

  // Feeds the next raw bytes; returns the state after them. Bytes after the
  // ClientHello are ignored.
  State feed(const uint8_t *data, size_t len);
  State state() const { return state_; }
  // The hello, once state() is kDone.
  const std::optional<ClientHello> &hello() const { return hello_; }
  // Why no hello could be read ("" while it may still come, or once read).
  const std::string &error() const { return error_; }
  // The same once the connection has ended: a hello still incomplete then
  // is an error too.
  std::string error_at_end() const;
  // "tls" (records), "sslv2" (an SSLv2-compatible hello) or "" (unknown).
  const char *format() const;

  // A handshake message larger than this is treated as malformed.
  static constexpr size_t kMaxHelloBytes = 64 * 1024;
  // OpenSSL skips zero-length records before the hello but refuses more
  // than this many in a row (its MAX_EMPTY_RECORDS); so does the reader.
  static constexpr unsigned kMaxEmptyRecordsInARow = 32;

private:
  State advance();
  State state_ = State::kNeedMore;
  std::vector<uint8_t> wire_;      // raw bytes seen so far (bounded)
  size_t consumed_ = 0;            // complete records already moved to handshake_
  unsigned empty_in_a_row_ = 0;    // zero-length records just skipped
  std::vector<uint8_t> handshake_; // handshake-layer bytes
  std::optional<ClientHello> hello_;
  std::string error_;
};

// Parses the body of a ClientHello handshake message (after the 4-byte
// handshake header). Returns nullopt when it is truncated or inconsistent,
// and then says why in *why when given.
std::optional<ClientHello> parse_client_hello(const uint8_t *body, size_t len, std::string *why = nullptr);

} // namespace sink::tls
