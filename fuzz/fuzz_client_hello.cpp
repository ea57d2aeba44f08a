// Raw bytes from a peer on a TLS port, split at an input-chosen point: the
// reader never crashes or over-reads, and a parsed hello fingerprints.
#include <cstddef>
#include <cstdint>

#include "ClientHello.h"
#include "Fingerprint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const size_t split = data[0] % (size);
  sink::tls::ClientHelloReader reader;
  reader.feed(data + 1, split > 0 ? split - 1 : 0);
  reader.feed(data + split, size - split);
  if (const auto &hello = reader.hello()) {
    (void)sink::tls::ja3_string(*hello);
    (void)sink::tls::ja4(*hello);
  }
  sink::tls::parse_client_hello(data, size);
  return 0;
}
