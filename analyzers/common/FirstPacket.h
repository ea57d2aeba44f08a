#pragma once
// The first data packet of a connection as an on-path observer saw it: the
// bytes of the first raw read. TLS records carry them in `wire` (the
// ClientHello as it arrived); for plain TCP `wire` is NULL and the payload
// is the wire bytes. Shared by the bundled analyzers.
#include <sink/plugin.h>

#include <cstddef>
#include <string_view>

namespace sink::analyzers {

struct FirstPacket {
  std::string_view bytes; // what we have of the first read (empty: no data)
  size_t read_len = 0;    // bytes the first raw read returned (>= bytes.size())
  bool partial = false;   // the record holds fewer bytes than the first read
};

inline FirstPacket first_packet(const sink_record &r) {
  const bool has_1_1 = r.struct_size >= offsetof(sink_record, wire_len) + sizeof r.wire_len;
  const bool has_wire = has_1_1 && r.wire != nullptr;
  const uint8_t *src = has_wire ? r.wire : r.payload;
  const size_t have = has_wire ? r.wire_len : (r.payload ? r.captured_len : 0);
  size_t want = has_1_1 ? r.first_read_len : 0;
  if (want == 0) want = have; // no first-read length: all we have is the best guess
  FirstPacket fp;
  fp.read_len = want;
  fp.partial = want > have;
  const size_t n = want < have ? want : have;
  if (n > 0) fp.bytes = std::string_view(reinterpret_cast<const char *>(src), n);
  return fp;
}

} // namespace sink::analyzers
