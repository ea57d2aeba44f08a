#pragma once
// Bounded hand-off of records from the network threads to the record thread.
// A network thread hands over what one loop iteration produced in one call
// (one lock, at most one wake-up). When full, push_all() waits: a slow disk
// slows accepting rather than losing a record. Waits are counted so the
// operator can see them.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "Record.h"

namespace sink {

class RecordQueue {
public:
  explicit RecordQueue(size_t capacity) : capacity_(capacity) {}

  // Moves every record of batch in (batch is left empty, its capacity kept).
  void push_all(std::vector<Record> &batch);
  // Swaps everything queued into out (which must be empty), waiting up to
  // `wait` while empty. Returns false once closed and drained.
  bool pop_all(std::vector<Record> &out, std::chrono::milliseconds wait);
  size_t size() const;
  // No more pushes; pop_all returns what is left, then false.
  void close();
  uint64_t full_waits() const;

private:
  mutable std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::vector<Record> items_;
  size_t capacity_;
  bool closed_ = false;
  bool consumer_waiting_ = false; // only then does a push need to wake it
  uint64_t full_waits_ = 0;
};

} // namespace sink
