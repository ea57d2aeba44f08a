#pragma once
// Builds TLS ClientHello records byte by byte, for tests.
#include <cstdint>
#include <string>
#include <vector>

namespace sinktest {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes &b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

struct Ext {
  uint16_t type;
  Bytes data;
};

inline Bytes u16_vector(const std::vector<uint16_t> &v, bool one_byte_length = false) {
  Bytes b;
  if (one_byte_length)
    b.push_back(static_cast<uint8_t>(v.size() * 2));
  else
    put16(b, static_cast<uint16_t>(v.size() * 2));
  for (auto x : v)
    put16(b, x);
  return b;
}

// A ClientHello in TLS records of at most record_size bytes each.
inline Bytes build_hello(uint16_t version, const std::vector<uint16_t> &ciphers, const std::vector<Ext> &exts,
                         size_t record_size = 16384) {
  Bytes body;
  put16(body, version);
  body.insert(body.end(), 32, 0x11); // random
  body.push_back(0);                 // session id
  Bytes cs = u16_vector(ciphers);
  body.insert(body.end(), cs.begin(), cs.end());
  body.push_back(1);
  body.push_back(0); // null compression
  Bytes e;
  for (const auto &x : exts) {
    put16(e, x.type);
    put16(e, static_cast<uint16_t>(x.data.size()));
    e.insert(e.end(), x.data.begin(), x.data.end());
  }
  put16(body, static_cast<uint16_t>(e.size()));
  body.insert(body.end(), e.begin(), e.end());
  Bytes hs{1, static_cast<uint8_t>(body.size() >> 16), static_cast<uint8_t>(body.size() >> 8),
           static_cast<uint8_t>(body.size())};
  hs.insert(hs.end(), body.begin(), body.end());
  Bytes wire;
  for (size_t off = 0; off < hs.size(); off += record_size) {
    size_t n = std::min(record_size, hs.size() - off);
    wire.insert(wire.end(), {22, 3, 1});
    put16(wire, static_cast<uint16_t>(n));
    wire.insert(wire.end(), hs.begin() + static_cast<long>(off), hs.begin() + static_cast<long>(off + n));
  }
  return wire;
}

inline Ext sni_ext(const std::string &host) {
  Bytes d;
  put16(d, static_cast<uint16_t>(host.size() + 3));
  d.push_back(0);
  put16(d, static_cast<uint16_t>(host.size()));
  d.insert(d.end(), host.begin(), host.end());
  return {0x0000, d};
}

inline Ext alpn_ext(const std::vector<std::string> &protos) {
  Bytes list;
  for (const auto &p : protos) {
    list.push_back(static_cast<uint8_t>(p.size()));
    list.insert(list.end(), p.begin(), p.end());
  }
  Bytes d;
  put16(d, static_cast<uint16_t>(list.size()));
  d.insert(d.end(), list.begin(), list.end());
  return {0x0010, d};
}

} // namespace sinktest
