#include "RecordQueue.h"

#include <iterator>

namespace sink {

void RecordQueue::push_all(std::vector<Record> &batch) {
  if (batch.empty()) return;
  std::unique_lock<std::mutex> lock(mutex_);
  if (items_.size() >= capacity_) {
    ++full_waits_;
    not_full_.wait(lock, [&] { return items_.size() < capacity_; });
  }
  if (items_.empty()) {
    items_.swap(batch); // the common case: no copy, no move of each record
  } else {
    items_.insert(items_.end(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
    batch.clear();
  }
  const bool wake = consumer_waiting_;
  lock.unlock();
  if (wake) not_empty_.notify_one();
}

bool RecordQueue::pop_all(std::vector<Record> &out, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (items_.empty() && !closed_) {
    consumer_waiting_ = true;
    not_empty_.wait_for(lock, wait, [&] { return !items_.empty() || closed_; });
    consumer_waiting_ = false;
  }
  if (items_.empty()) return !closed_;
  out.swap(items_);
  lock.unlock();
  not_full_.notify_all();
  return true;
}

size_t RecordQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return items_.size();
}

void RecordQueue::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  not_empty_.notify_all();
}

uint64_t RecordQueue::full_waits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return full_waits_;
}

} // namespace sink
