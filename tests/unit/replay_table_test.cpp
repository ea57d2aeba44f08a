// The replay analyzer's table: counting, the window, least-recently-seen
// eviction against a reference model, the state file (round trip, every
// truncation, flipped bytes, version and prefix checks) and the memory one
// entry really costs.
#include <gtest/gtest.h>

#include "ReplayTable.h"

#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <random>

using namespace sink::replay;

namespace {

constexpr int64_t kSec = 1000000000;
const Salt kSalt{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

Digest key(const std::string &s, uint64_t len = 0) { return make_key(kSalt, s, len ? len : s.size()); }
Address addr(const char *ip, uint16_t port) { return parse_address(ip, port); }

struct FileCloser {
  void operator()(std::FILE *f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string saved(const ReplayTable &t, uint32_t prefix_bytes = 64) {
  File f(std::tmpfile());
  EXPECT_TRUE(t.save(f.get(), prefix_bytes, kSalt));
  std::string out;
  std::rewind(f.get());
  for (int c; (c = std::fgetc(f.get())) != EOF;)
    out += static_cast<char>(c);
  return out;
}

bool load_from(ReplayTable &t, const std::string &bytes, int64_t now, std::string *why,
               uint32_t prefix_bytes = 64) {
  File f(std::tmpfile());
  std::fwrite(bytes.data(), 1, bytes.size(), f.get());
  std::rewind(f.get());
  Salt salt{};
  return t.load(f.get(), prefix_bytes, now, &salt, why);
}

} // namespace

TEST(ReplayTable, AddressesFormatLikeHostPort) {
  EXPECT_EQ(format_address(addr("127.0.0.2", 40000)), "127.0.0.2:40000");
  EXPECT_EQ(format_address(addr("::1", 80)), "[::1]:80");
  EXPECT_EQ(format_address(addr("2001:db8::5", 1)), "[2001:db8::5]:1");
  EXPECT_EQ(format_address(addr("nonsense", 7)), "?:7");
}

TEST(ReplayTable, KeysDependOnSaltLengthAndBytes) {
  EXPECT_EQ(key("abc"), key("abc"));
  EXPECT_NE(key("abc"), key("abd"));
  EXPECT_NE(key("abc", 3), key("abc", 4)); // same prefix, another first-read length
  Salt other = kSalt;
  other[0] ^= 1;
  EXPECT_NE(make_key(other, "abc", 3), key("abc"));
}

TEST(ReplayTable, CountsArrivalsAndKeepsTheFirst) {
  ReplayTable t(100, 3600 * kSec);
  auto a = t.arrive(key("x"), 10 * kSec, addr("127.0.0.2", 1000), 7000);
  EXPECT_EQ(a.seen, 0u);
  EXPECT_EQ(a.first_ns, 10 * kSec);
  a = t.arrive(key("x"), 11 * kSec, addr("127.0.0.3", 1001), 7001);
  EXPECT_EQ(a.seen, 1u);
  EXPECT_EQ(a.first_ns, 10 * kSec);
  EXPECT_EQ(format_address(a.first_remote), "127.0.0.2:1000");
  EXPECT_EQ(a.first_local_port, 7000);
  a = t.arrive(key("x"), 12 * kSec, addr("::1", 1002), 7002);
  EXPECT_EQ(a.seen, 2u);
  EXPECT_EQ(format_address(a.first_remote), "127.0.0.2:1000");
  EXPECT_EQ(t.arrive(key("y"), 12 * kSec, addr("::1", 1), 1).seen, 0u);
  EXPECT_EQ(t.size(), 2u);
}

TEST(ReplayTable, ForgetsAfterTheWindowCountedFromTheFirstArrival) {
  ReplayTable t(100, 10 * kSec);
  t.arrive(key("x"), 100 * kSec, addr("10.0.0.1", 1), 1);
  EXPECT_EQ(t.arrive(key("x"), 110 * kSec, addr("10.0.0.2", 2), 2).seen, 1u); // exactly the window: kept
  auto a = t.arrive(key("x"), 110 * kSec + 1, addr("10.0.0.3", 3), 3);        // 1 ns later: forgotten
  EXPECT_EQ(a.seen, 0u);
  EXPECT_EQ(a.first_ns, 110 * kSec + 1);
  a = t.arrive(key("x"), 111 * kSec, addr("10.0.0.4", 4), 4);
  EXPECT_EQ(a.seen, 1u);
  EXPECT_EQ(format_address(a.first_remote), "10.0.0.3:3"); // the new first
}

TEST(ReplayTable, EvictsTheLeastRecentlySeen) {
  ReplayTable t(3, 3600 * kSec);
  t.arrive(key("a"), 1, addr("1.1.1.1", 1), 1);
  t.arrive(key("b"), 2, addr("1.1.1.1", 1), 1);
  t.arrive(key("c"), 3, addr("1.1.1.1", 1), 1);
  t.arrive(key("a"), 4, addr("1.1.1.1", 1), 1); // a is now the most recent; b the least
  t.arrive(key("d"), 5, addr("1.1.1.1", 1), 1); // evicts b
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.arrive(key("a"), 6, addr("1.1.1.1", 1), 1).seen, 2u);
  EXPECT_EQ(t.arrive(key("c"), 7, addr("1.1.1.1", 1), 1).seen, 1u);
  EXPECT_EQ(t.arrive(key("b"), 8, addr("1.1.1.1", 1), 1).seen, 0u); // forgotten; now evicts d
  EXPECT_EQ(t.arrive(key("d"), 9, addr("1.1.1.1", 1), 1).seen, 0u);
}

// A random workload against a plain std::list + std::map model of the same
// rules: exercises backward-shift deletion, storage compaction and the list.
TEST(ReplayTable, MatchesAReferenceModel) {
  const size_t kMax = 500;
  const int64_t kWindow = 1000;
  ReplayTable t(kMax, kWindow);
  struct M {
    int64_t first;
    uint64_t count;
    uint16_t port;
  };
  std::list<int> lru; // front = most recent
  std::map<int, std::pair<M, std::list<int>::iterator>> model;
  std::mt19937_64 rng(42);
  int64_t now = 0;
  for (int op = 0; op < 200000; ++op) {
    now += static_cast<int64_t>(rng() % 3);
    const int k = static_cast<int>(rng() % 1500);
    const auto port = static_cast<uint16_t>(op);
    // The model follows the table's documented rules: up to 4 expired
    // entries leave from the cold end first; an expired hit is forgotten; a
    // new key in a full table evicts the least recently seen.
    for (int n = 0; n < 4 && !lru.empty() && now - model.at(lru.back()).first.first > kWindow; ++n) {
      model.erase(lru.back());
      lru.pop_back();
    }
    uint64_t want_seen = 0;
    uint16_t want_port = port;
    auto it = model.find(k);
    if (it != model.end() && now - it->second.first.first > kWindow) {
      lru.erase(it->second.second);
      model.erase(it);
      it = model.end();
    }
    if (it != model.end()) {
      want_seen = it->second.first.count++;
      want_port = it->second.first.port;
      lru.erase(it->second.second);
      lru.push_front(k);
      it->second.second = lru.begin();
    } else {
      if (model.size() >= kMax) {
        model.erase(lru.back());
        lru.pop_back();
      }
      lru.push_front(k);
      model[k] = {M{now, 1, port}, lru.begin()};
    }
    const auto a = t.arrive(key(std::to_string(k)), now, addr("10.0.0.1", port), 1);
    ASSERT_EQ(a.seen, want_seen) << "op " << op << " key " << k;
    ASSERT_EQ(a.first_remote.port, want_port) << "op " << op << " key " << k;
    ASSERT_EQ(t.size(), model.size());
  }
}

TEST(ReplayTable, StateRoundTripsWithOrderAndCounts) {
  ReplayTable t(3, 3600 * kSec);
  t.arrive(key("a"), 1 * kSec, addr("1.1.1.1", 1), 11);
  t.arrive(key("b"), 2 * kSec, addr("::2", 2), 22);
  t.arrive(key("a"), 3 * kSec, addr("1.1.1.9", 9), 99);
  t.arrive(key("c"), 4 * kSec, addr("3.3.3.3", 3), 33); // order now c, a, b
  const std::string bytes = saved(t);
  EXPECT_EQ(bytes.size(), 8 + 4 + 4 + 16 + 8 + 3 * ReplayTable::kFileEntryBytes + 8);
  ReplayTable u(3, 3600 * kSec);
  std::string why;
  ASSERT_TRUE(load_from(u, bytes, 5 * kSec, &why)) << why;
  EXPECT_EQ(u.size(), 3u);
  EXPECT_EQ(saved(u), bytes);                           // identical, order included
  u.arrive(key("d"), 6 * kSec, addr("4.4.4.4", 4), 44); // evicts b, the least recent
  auto a = u.arrive(key("a"), 7 * kSec, addr("5.5.5.5", 5), 55);
  EXPECT_EQ(a.seen, 2u);
  EXPECT_EQ(a.first_ns, 1 * kSec);
  EXPECT_EQ(format_address(a.first_remote), "1.1.1.1:1");
  EXPECT_EQ(a.first_local_port, 11);
  EXPECT_EQ(u.arrive(key("b"), 8 * kSec, addr("5.5.5.5", 5), 55).seen, 0u);
}

TEST(ReplayTable, LoadDropsWhatExpiredWhileDown) {
  ReplayTable t(10, 10 * kSec);
  t.arrive(key("old"), 1 * kSec, addr("1.1.1.1", 1), 1);
  t.arrive(key("new"), 8 * kSec, addr("1.1.1.1", 1), 1);
  ReplayTable u(10, 10 * kSec);
  std::string why;
  ASSERT_TRUE(load_from(u, saved(t), 15 * kSec, &why)) << why;
  EXPECT_EQ(u.size(), 1u);
  EXPECT_EQ(u.arrive(key("new"), 15 * kSec, addr("1.1.1.1", 1), 1).seen, 1u);
  EXPECT_EQ(u.arrive(key("old"), 15 * kSec, addr("1.1.1.1", 1), 1).seen, 0u);
}

TEST(ReplayTable, EveryTruncationAndEveryFlippedByteIsRefusedCleanly) {
  ReplayTable t(10, 3600 * kSec);
  t.arrive(key("a"), 1, addr("1.1.1.1", 1), 1);
  t.arrive(key("b"), 2, addr("::1", 2), 2);
  const std::string good = saved(t);
  for (size_t n = 0; n < good.size(); ++n) {
    ReplayTable u(10, 3600 * kSec);
    std::string why;
    EXPECT_FALSE(load_from(u, good.substr(0, n), 3, &why)) << n;
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(u.size(), 0u) << n;
  }
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    ReplayTable u(10, 3600 * kSec);
    std::string why;
    EXPECT_FALSE(load_from(u, bad, 3, &why)) << "byte " << i;
    EXPECT_EQ(u.size(), 0u) << i;
  }
  ReplayTable u(10, 3600 * kSec);
  std::string why;
  EXPECT_FALSE(load_from(u, good + "x", 3, &why));
  EXPECT_FALSE(load_from(u, "garbage that is not a state file at all", 3, &why));
  EXPECT_NE(why.find("magic"), std::string::npos) << why;
  std::string v2 = good;
  v2[8] = 2;
  EXPECT_FALSE(load_from(u, v2, 3, &why));
  EXPECT_NE(why.find("version 2"), std::string::npos) << why;
  EXPECT_FALSE(load_from(u, good, 3, &why, 32));
  EXPECT_NE(why.find("prefix_bytes 64"), std::string::npos) << why;
  EXPECT_TRUE(load_from(u, good, 3, &why)) << why;
  EXPECT_EQ(u.size(), 2u);
}

// The real cost of one entry: what the heap grows by for 2^20 keys, which
// is the default max_entries. docs/analyzers.md quotes this.
TEST(ReplayTable, AMillionKeysFitIn128MiB) {
  const size_t kKeys = size_t{1} << 20;
  const size_t before = mallinfo2().uordblks + mallinfo2().hblkhd; // hblkhd: mmapped blocks
  {
    ReplayTable t(kKeys, 3600 * kSec);
    Digest d{};
    for (size_t i = 0; i < kKeys; ++i) {
      // Distinct uniform keys without hashing a million times.
      uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
      x ^= x >> 31;
      std::memcpy(d.data(), &x, 8);
      std::memcpy(d.data() + 8, &i, 8);
      t.arrive(d, static_cast<int64_t>(i), addr("127.0.0.1", 1), 1);
    }
    ASSERT_EQ(t.size(), kKeys);
    const size_t heap = mallinfo2().uordblks + mallinfo2().hblkhd - before;
    const double per_entry = static_cast<double>(heap) / static_cast<double>(kKeys);
    std::printf("replay table: %zu entries, heap %.1f MiB, %.1f bytes/entry (memory_bytes %.1f)\n", kKeys,
                static_cast<double>(heap) / (1 << 20), per_entry,
                static_cast<double>(t.memory_bytes()) / static_cast<double>(kKeys));
    EXPECT_LE(heap, size_t{128} << 20);
    EXPECT_LE(per_entry, 128.0);

    // What a save and a load of a full table cost (the periodic save runs
    // on the record thread).
    File f(std::tmpfile());
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(t.save(f.get(), 64, kSalt));
    std::fflush(f.get());
    auto t1 = std::chrono::steady_clock::now();
    const long file_bytes = std::ftell(f.get());
    EXPECT_EQ(static_cast<size_t>(file_bytes), 48 + kKeys * ReplayTable::kFileEntryBytes);
    std::rewind(f.get());
    ReplayTable u(kKeys, 3600 * kSec);
    Salt salt{};
    std::string why;
    ASSERT_TRUE(u.load(f.get(), 64, 0, &salt, &why)) << why;
    auto t2 = std::chrono::steady_clock::now();
    EXPECT_EQ(u.size(), kKeys);
    using ms = std::chrono::milliseconds;
    std::printf("replay state: %.1f MiB, save %lld ms, load %lld ms\n",
                static_cast<double>(file_bytes) / (1 << 20),
                static_cast<long long>(std::chrono::duration_cast<ms>(t1 - t0).count()),
                static_cast<long long>(std::chrono::duration_cast<ms>(t2 - t1).count()));
  }
}
