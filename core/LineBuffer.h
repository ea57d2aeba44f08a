#pragma once
// A growable byte buffer that formatters write into directly: room(n) hands
// out n writable bytes without zero-filling them, advance(k) keeps k. Reused
// across batches, so steady state allocates nothing.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace sink {

class LineBuffer {
public:
  // At least n writable bytes at the end.
  char *room(size_t n) {
    if (cap_ - size_ < n) grow(n);
    return data_.get() + size_;
  }
  void advance(size_t n) { size_ += n; }
  void append(std::string_view s) {
    std::memcpy(room(s.size()), s.data(), s.size());
    size_ += s.size();
  }
  void push_back(char c) {
    *room(1) = c;
    ++size_;
  }
  const char *data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  // Gives memory back after an exceptionally large batch.
  void shrink_if_above(size_t limit) {
    if (cap_ > limit && size_ == 0) {
      data_.reset();
      cap_ = 0;
    }
  }

private:
  void grow(size_t n) {
    size_t cap = cap_ ? cap_ * 2 : 4096;
    while (cap - size_ < n)
      cap *= 2;
    auto bigger = std::make_unique_for_overwrite<char[]>(cap);
    if (size_) std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    cap_ = cap;
  }
  std::unique_ptr<char[]> data_;
  size_t size_ = 0, cap_ = 0;
};

} // namespace sink
