#pragma once
// The replay analyzer's memory: which first packets arrived before, when and
// from where. A bounded table of fixed-size entries keyed by a salted 128-bit
// digest of (first-read length, first prefix_bytes bytes), least-recently-
// seen evicted, entries forgotten `window` after their first arrival, and a
// versioned, checksummed file format to survive restarts. Pure computation
// and stdio, so unit tests drive it directly.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sink::replay {

using Digest = std::array<uint8_t, 16>;
using Salt = std::array<uint8_t, 16>;

// A remote address in binary form (what an entry keeps).
struct Address {
  uint8_t family = 0; // 4, 6, or 0 when the text did not parse
  std::array<uint8_t, 16> ip{};
  uint16_t port = 0;
};
// From the record's textual IP ("1.2.3.4", "::1").
Address parse_address(const char *ip, uint16_t port);
// "1.2.3.4:80", "[::1]:80" ("?:80" for an address that did not parse).
std::string format_address(const Address &a);

// SHA-256(salt || read_len as 8 bytes LE || prefix), first 16 bytes.
Digest make_key(const Salt &salt, std::string_view prefix, uint64_t read_len);

// One arrival's answer.
struct Arrival {
  uint64_t seen = 0;    // arrivals of this key before this one, within the window
  int64_t first_ns = 0; // the first arrival (this one when seen == 0)
  Address first_remote;
  uint16_t first_local_port = 0;
};

class ReplayTable {
public:
  // max_entries >= 1 and < 2^32 - 1; window_ns > 0.
  ReplayTable(size_t max_entries, int64_t window_ns);

  // One arrival of `key` at now_ns. An entry whose first arrival is more
  // than the window before now_ns is forgotten: this arrival becomes the
  // new first. A new key in a full table evicts the least recently seen.
  Arrival arrive(const Digest &key, int64_t now_ns, const Address &remote, uint16_t local_port);

  size_t size() const { return size_; }
  size_t max_entries() const { return max_entries_; }
  uint64_t evictions() const { return evictions_; }
  // Bytes the table holds on the heap (entries, chunk table, hash slots).
  size_t memory_bytes() const;

  // State file, format version 1 (little-endian):
  //   "SINKRPLY" | u32 version | u32 prefix_bytes | 16-byte salt | u64 count
  //   | count entries, least recently seen first, 57 bytes each:
  //     digest[16] first_ns i64 last_ns i64 count u32 family u8 ip[16]
  //     remote_port u16 local_port u16
  //   | u64 FNV-1a 64 of every byte before it.
  // Returns false (with errno set by stdio) when a write fails.
  bool save(std::FILE *f, uint32_t prefix_bytes, const Salt &salt) const;
  // Reads a state file into this (empty) table, dropping entries that are
  // expired at now_ns. On anything wrong (magic, version, prefix_bytes,
  // truncation, checksum) the table stays empty, *why says what, and it
  // returns false; *salt is set only on success.
  bool load(std::FILE *f, uint32_t prefix_bytes, int64_t now_ns, Salt *salt, std::string *why);

  static constexpr uint32_t kFormatVersion = 1;
  static constexpr size_t kFileEntryBytes = 57;

private:
  static constexpr uint32_t kNil = 0xffffffffu;
  static constexpr unsigned kChunkBits = 12; // 4096 entries per chunk
  struct Entry {
    Digest key;
    int64_t first_ns;
    int64_t last_ns;
    std::array<uint8_t, 16> ip;
    uint32_t count; // arrivals so far, the first included
    uint32_t prev;  // towards the most recently seen
    uint32_t next;  // towards the least recently seen
    uint16_t remote_port;
    uint16_t local_port;
    uint8_t family;
  };

  Entry &at(uint32_t i) { return chunks_[i >> kChunkBits][i & ((1u << kChunkBits) - 1)]; }
  const Entry &at(uint32_t i) const { return chunks_[i >> kChunkBits][i & ((1u << kChunkBits) - 1)]; }
  size_t home(const Digest &key) const;
  size_t find_slot(const Digest &key) const; // slot holding key, or its empty slot
  void grow_slots();
  void unlink(uint32_t i);
  void push_front(uint32_t i);
  void remove(uint32_t i); // from slots, list and storage (the last entry fills the hole)
  uint32_t insert(const Digest &key, int64_t now_ns, const Address &remote, uint16_t local_port,
                  uint32_t count);
  bool expired(const Entry &e, int64_t now_ns) const { return now_ns - e.first_ns > window_ns_; }

  size_t max_entries_;
  int64_t window_ns_;
  std::vector<std::unique_ptr<Entry[]>> chunks_;
  std::vector<uint32_t> slots_; // open addressing, linear probing, load <= 1/2
  size_t size_ = 0;
  uint32_t head_ = kNil, tail_ = kNil;
  uint64_t evictions_ = 0;
};

} // namespace sink::replay
