#pragma once
// Bounded hand-off of records from the network thread to the output thread.
// When full, push() waits: a slow disk slows accepting rather than losing a
// record. Waits are counted so the operator can see them.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>

#include "Record.h"

namespace sink {

class RecordQueue {
public:
  explicit RecordQueue(size_t capacity) : capacity_(capacity) {}

  void push(Record &&r);
  // Moves everything queued into out, waiting up to `wait` while empty.
  // Returns false once closed and drained.
  bool pop_all(std::deque<Record> &out, std::chrono::milliseconds wait);
  size_t size() const;
  // No more pushes; pop_all returns what is left, then false.
  void close();
  uint64_t full_waits() const;

private:
  mutable std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Record> items_;
  size_t capacity_;
  bool closed_ = false;
  uint64_t full_waits_ = 0;
};

} // namespace sink
