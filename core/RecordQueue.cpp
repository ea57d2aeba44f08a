#include "RecordQueue.h"

namespace sink {

void RecordQueue::push(Record &&r) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (items_.size() >= capacity_) {
    ++full_waits_;
    not_full_.wait(lock, [&] { return items_.size() < capacity_; });
  }
  items_.push_back(std::move(r));
  if (items_.size() == 1) not_empty_.notify_one();
}

bool RecordQueue::pop_all(std::deque<Record> &out, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  not_empty_.wait_for(lock, wait, [&] { return !items_.empty() || closed_; });
  if (items_.empty()) return !closed_;
  out.swap(items_);
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
