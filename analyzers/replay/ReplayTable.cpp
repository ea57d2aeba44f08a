#include "ReplayTable.h"

#include <arpa/inet.h>
#include <openssl/evp.h>

#include <cstring>
#include <stdexcept>

namespace sink::replay {

Address parse_address(const char *ip, uint16_t port) {
  Address a;
  a.port = port;
  if (!ip) return a;
  if (inet_pton(AF_INET, ip, a.ip.data()) == 1)
    a.family = 4;
  else if (inet_pton(AF_INET6, ip, a.ip.data()) == 1)
    a.family = 6;
  else
    a.ip.fill(0);
  return a;
}

std::string format_address(const Address &a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (a.family == 4) inet_ntop(AF_INET, a.ip.data(), buf, sizeof buf);
  if (a.family == 6) inet_ntop(AF_INET6, a.ip.data(), buf, sizeof buf);
  const std::string port = std::to_string(a.port);
  return a.family == 6 ? "[" + std::string(buf) + "]:" + port : std::string(buf) + ":" + port;
}

Digest make_key(const Salt &salt, std::string_view prefix, uint64_t read_len) {
  uint8_t len_le[8];
  for (int i = 0; i < 8; ++i)
    len_le[i] = static_cast<uint8_t>(read_len >> (8 * i));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), salt.data(), salt.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), len_le, sizeof len_le) != 1 ||
      EVP_DigestUpdate(ctx.get(), prefix.data(), prefix.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), md, &md_len) != 1 || md_len < 16)
    throw std::runtime_error("SHA-256 failed");
  Digest d;
  std::memcpy(d.data(), md, d.size());
  return d;
}

ReplayTable::ReplayTable(size_t max_entries, int64_t window_ns)
    : max_entries_(max_entries), window_ns_(window_ns) {
  if (max_entries == 0 || max_entries >= kNil) throw std::invalid_argument("max_entries out of range");
  if (window_ns <= 0) throw std::invalid_argument("window must be positive");
  slots_.assign(16, kNil);
}

size_t ReplayTable::memory_bytes() const {
  return chunks_.capacity() * sizeof(chunks_[0]) + chunks_.size() * (sizeof(Entry) << kChunkBits) +
         slots_.capacity() * sizeof(slots_[0]);
}

size_t ReplayTable::home(const Digest &key) const {
  uint64_t h;
  std::memcpy(&h, key.data(), sizeof h); // the digest is already uniform
  return static_cast<size_t>(h) & (slots_.size() - 1);
}

size_t ReplayTable::find_slot(const Digest &key) const {
  const size_t mask = slots_.size() - 1;
  for (size_t s = home(key);; s = (s + 1) & mask)
    if (slots_[s] == kNil || at(slots_[s]).key == key) return s;
}

void ReplayTable::grow_slots() {
  std::vector<uint32_t> old = std::move(slots_);
  slots_.assign(old.size() * 2, kNil);
  for (uint32_t i : old)
    if (i != kNil) slots_[find_slot(at(i).key)] = i;
}

void ReplayTable::unlink(uint32_t i) {
  Entry &e = at(i);
  if (e.prev != kNil)
    at(e.prev).next = e.next;
  else
    head_ = e.next;
  if (e.next != kNil)
    at(e.next).prev = e.prev;
  else
    tail_ = e.prev;
  e.prev = e.next = kNil;
}

void ReplayTable::push_front(uint32_t i) {
  Entry &e = at(i);
  e.prev = kNil;
  e.next = head_;
  if (head_ != kNil) at(head_).prev = i;
  head_ = i;
  if (tail_ == kNil) tail_ = i;
}

void ReplayTable::remove(uint32_t i) {
  // Out of the hash slots, with backward-shift deletion (no tombstones).
  const size_t mask = slots_.size() - 1;
  size_t hole = find_slot(at(i).key);
  for (size_t j = (hole + 1) & mask; slots_[j] != kNil; j = (j + 1) & mask) {
    const size_t k = home(at(slots_[j]).key);
    // Move slots_[j] into the hole unless its home lies cyclically in (hole, j].
    const bool stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = kNil;
  unlink(i);
  // The last entry moves into the freed storage.
  const auto last = static_cast<uint32_t>(size_ - 1);
  if (i != last) {
    const bool last_was_head = head_ == last, last_was_tail = tail_ == last;
    Entry &moved = at(i);
    moved = at(last);
    slots_[find_slot(moved.key)] = i;
    if (moved.prev != kNil) at(moved.prev).next = i;
    if (moved.next != kNil) at(moved.next).prev = i;
    if (last_was_head) head_ = i;
    if (last_was_tail) tail_ = i;
  }
  --size_;
}

uint32_t ReplayTable::insert(const Digest &key, int64_t now_ns, const Address &remote, uint16_t local_port,
                             uint32_t count) {
  if (size_ >= max_entries_) {
    remove(tail_);
    ++evictions_;
  }
  if ((size_ + 1) * 2 > slots_.size()) grow_slots();
  const auto i = static_cast<uint32_t>(size_);
  if ((i >> kChunkBits) >= chunks_.size())
    chunks_.push_back(std::make_unique<Entry[]>(size_t{1} << kChunkBits));
  Entry &e = at(i);
  e.key = key;
  e.first_ns = now_ns;
  e.last_ns = now_ns;
  e.ip = remote.ip;
  e.family = remote.family;
  e.remote_port = remote.port;
  e.local_port = local_port;
  e.count = count;
  slots_[find_slot(key)] = i;
  ++size_;
  push_front(i);
  return i;
}

Arrival ReplayTable::arrive(const Digest &key, int64_t now_ns, const Address &remote, uint16_t local_port) {
  // Forget a few expired entries from the cold end on every call.
  for (int n = 0; n < 4 && tail_ != kNil && expired(at(tail_), now_ns); ++n)
    remove(tail_);
  Arrival a;
  const size_t s = find_slot(key);
  if (slots_[s] != kNil) {
    const uint32_t i = slots_[s];
    Entry &e = at(i);
    if (!expired(e, now_ns)) {
      a.seen = e.count;
      if (e.count < 0xffffffffu) ++e.count;
      if (now_ns > e.last_ns) e.last_ns = now_ns;
      a.first_ns = e.first_ns;
      a.first_remote.family = e.family;
      a.first_remote.ip = e.ip;
      a.first_remote.port = e.remote_port;
      a.first_local_port = e.local_port;
      unlink(i);
      push_front(i);
      return a;
    }
    remove(i); // seen again after the window: this arrival is the new first
  }
  insert(key, now_ns, remote, local_port, 1);
  a.first_ns = now_ns;
  a.first_remote = remote;
  a.first_local_port = local_port;
  return a;
}

// ---- the state file ---------------------------------------------------------

namespace {

constexpr char kMagic[8] = {'S', 'I', 'N', 'K', 'R', 'P', 'L', 'Y'};
constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull, kFnvPrime = 0x100000001b3ull;

class Writer {
public:
  explicit Writer(std::FILE *f) : f_(f) {}
  void bytes(const void *p, size_t n) {
    const auto *b = static_cast<const uint8_t *>(p);
    for (size_t i = 0; i < n; ++i)
      sum_ = (sum_ ^ b[i]) * kFnvPrime;
    ok_ = ok_ && std::fwrite(p, 1, n, f_) == n;
  }
  void le(uint64_t v, int n) {
    uint8_t b[8];
    for (int i = 0; i < n; ++i)
      b[i] = static_cast<uint8_t>(v >> (8 * i));
    bytes(b, static_cast<size_t>(n));
  }
  uint64_t sum() const { return sum_; }
  bool ok() const { return ok_; }

private:
  std::FILE *f_;
  uint64_t sum_ = kFnvOffset;
  bool ok_ = true;
};

class Reader {
public:
  explicit Reader(std::FILE *f) : f_(f) {}
  bool bytes(void *p, size_t n) {
    if (std::fread(p, 1, n, f_) != n) return false;
    const auto *b = static_cast<const uint8_t *>(p);
    for (size_t i = 0; i < n; ++i)
      sum_ = (sum_ ^ b[i]) * kFnvPrime;
    return true;
  }
  bool le(uint64_t *v, int n) {
    uint8_t b[8];
    if (!bytes(b, static_cast<size_t>(n))) return false;
    *v = 0;
    for (int i = 0; i < n; ++i)
      *v |= static_cast<uint64_t>(b[i]) << (8 * i);
    return true;
  }
  uint64_t sum() const { return sum_; }

private:
  std::FILE *f_;
  uint64_t sum_ = kFnvOffset;
};

} // namespace

bool ReplayTable::save(std::FILE *f, uint32_t prefix_bytes, const Salt &salt) const {
  Writer w(f);
  w.bytes(kMagic, sizeof kMagic);
  w.le(kFormatVersion, 4);
  w.le(prefix_bytes, 4);
  w.bytes(salt.data(), salt.size());
  w.le(size_, 8);
  for (uint32_t i = tail_; i != kNil && w.ok(); i = at(i).prev) {
    const Entry &e = at(i);
    w.bytes(e.key.data(), e.key.size());
    w.le(static_cast<uint64_t>(e.first_ns), 8);
    w.le(static_cast<uint64_t>(e.last_ns), 8);
    w.le(e.count, 4);
    w.le(e.family, 1);
    w.bytes(e.ip.data(), e.ip.size());
    w.le(e.remote_port, 2);
    w.le(e.local_port, 2);
  }
  const uint64_t sum = w.sum();
  w.le(sum, 8);
  return w.ok();
}

bool ReplayTable::load(std::FILE *f, uint32_t prefix_bytes, int64_t now_ns, Salt *salt, std::string *why) {
  Reader r(f);
  char magic[sizeof kMagic];
  uint64_t version = 0, file_prefix = 0, count = 0;
  Salt file_salt;
  if (!r.bytes(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof magic) != 0) {
    *why = "not a replay state file (bad magic)";
    return false;
  }
  if (!r.le(&version, 4) || version != kFormatVersion) {
    *why = "unsupported state file version " + std::to_string(version) + " (this build reads " +
           std::to_string(kFormatVersion) + ")";
    return false;
  }
  if (!r.le(&file_prefix, 4) || !r.bytes(file_salt.data(), file_salt.size()) || !r.le(&count, 8)) {
    *why = "truncated header";
    return false;
  }
  if (file_prefix != prefix_bytes) {
    *why = "made with prefix_bytes " + std::to_string(file_prefix) + ", now " + std::to_string(prefix_bytes);
    return false;
  }
  // Entries go to a scratch table first: a bad checksum leaves this one empty.
  ReplayTable scratch(max_entries_, window_ns_);
  for (uint64_t n = 0; n < count; ++n) {
    Digest key;
    uint64_t first = 0, last = 0, cnt = 0, family = 0, rport = 0, lport = 0;
    Address a;
    if (!r.bytes(key.data(), key.size()) || !r.le(&first, 8) || !r.le(&last, 8) || !r.le(&cnt, 4) ||
        !r.le(&family, 1) || !r.bytes(a.ip.data(), a.ip.size()) || !r.le(&rport, 2) || !r.le(&lport, 2)) {
      *why = "truncated after " + std::to_string(n) + " of " + std::to_string(count) + " entries";
      return false;
    }
    a.family = static_cast<uint8_t>(family);
    a.port = static_cast<uint16_t>(rport);
    const auto first_ns = static_cast<int64_t>(first);
    if (cnt == 0 || now_ns - first_ns > window_ns_) continue; // expired while we were down
    if (scratch.slots_[scratch.find_slot(key)] != kNil) {
      *why = "duplicate entry";
      return false;
    }
    const uint32_t i =
        scratch.insert(key, first_ns, a, static_cast<uint16_t>(lport), static_cast<uint32_t>(cnt));
    scratch.at(i).last_ns = static_cast<int64_t>(last);
  }
  const uint64_t expected = r.sum();
  uint64_t stored = 0;
  if (!r.le(&stored, 8)) {
    *why = "truncated (no checksum)";
    return false;
  }
  if (stored != expected) {
    *why = "checksum mismatch";
    return false;
  }
  if (std::fgetc(f) != EOF) {
    *why = "trailing bytes after the checksum";
    return false;
  }
  scratch.evictions_ = 0;
  *this = std::move(scratch);
  *salt = file_salt;
  return true;
}

} // namespace sink::replay
