#include "RecordId.h"

#include <sys/random.h>

#include <chrono>

namespace sink {

namespace {
constexpr uint32_t kCounterMax = 0xfff;
// A fresh millisecond starts the counter in its lower half, leaving room to
// count up (RFC 9562 6.2: guard against rollover).
constexpr uint32_t kCounterStartMask = 0x7ff;
} // namespace

RecordIdGenerator::RecordIdGenerator() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  state_ = seed;
}

// splitmix64: fast, and seeded from the kernel; ids need uniqueness, not secrecy.
uint64_t RecordIdGenerator::random() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void RecordIdGenerator::next(std::array<char, 37> &out) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  next_at(std::chrono::duration_cast<std::chrono::milliseconds>(now).count(), out);
}

void RecordIdGenerator::next_at(int64_t unix_ms, std::array<char, 37> &out) {
  uint64_t rand_b;
  int64_t ms;
  uint32_t counter;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (unix_ms > last_ms_) {
      last_ms_ = unix_ms;
      counter_ = static_cast<uint32_t>(random()) & kCounterStartMask;
    } else if (++counter_ > kCounterMax) {
      // The clock stood still (or went back): borrow the next millisecond.
      ++last_ms_;
      counter_ = static_cast<uint32_t>(random()) & kCounterStartMask;
    }
    ms = last_ms_;
    counter = counter_;
    rand_b = random();
  }
  uint8_t b[16];
  const uint64_t ts = static_cast<uint64_t>(ms) & 0xffffffffffffULL;
  for (int i = 0; i < 6; ++i)
    b[i] = static_cast<uint8_t>(ts >> (40 - 8 * i));
  b[6] = static_cast<uint8_t>(0x70 | (counter >> 8));
  b[7] = static_cast<uint8_t>(counter);
  b[8] = static_cast<uint8_t>(0x80 | ((rand_b >> 56) & 0x3f));
  for (int i = 9; i < 16; ++i)
    b[i] = static_cast<uint8_t>(rand_b >> (8 * (15 - i)));
  static constexpr char kDigits[] = "0123456789abcdef";
  size_t o = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = kDigits[b[i] >> 4];
    out[o++] = kDigits[b[i] & 0xf];
  }
  out[o] = '\0';
}

} // namespace sink
