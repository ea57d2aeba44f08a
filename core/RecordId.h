#pragma once
// Record ids: UUIDv7 (RFC 9562) taken at accept. 48 bits of Unix
// milliseconds, then a 12-bit counter (rand_a, "method 1") that keeps ids
// from one process strictly increasing within a millisecond, then 62 random
// bits. Sorting ids sorts records by accept time.
#include <array>
#include <cstdint>
#include <mutex>

namespace sink {

class RecordIdGenerator {
public:
  RecordIdGenerator();
  // Writes 36 characters and a NUL. Safe from any thread.
  void next(std::array<char, 37> &out);
  // For tests: the id for a given clock reading.
  void next_at(int64_t unix_ms, std::array<char, 37> &out);

private:
  uint64_t random();
  std::mutex mutex_;
  uint64_t state_;
  int64_t last_ms_ = -1;
  uint32_t counter_ = 0;
};

} // namespace sink
