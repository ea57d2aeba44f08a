#pragma once
// Stable storage for the few distinct strings records point to (group,
// transport, sensor) when they are read back from the journal: a record
// from disk must not point into a config that may no longer name it.
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace sink {

class StringInterner {
public:
  // The same std::string for equal text, valid as long as the interner.
  const std::string &intern(std::string_view s) {
    std::lock_guard<std::mutex> lock(mutex_);
    return *strings_.emplace(s).first;
  }

private:
  std::mutex mutex_;
  std::unordered_set<std::string> strings_; // nodes never move
};

} // namespace sink
