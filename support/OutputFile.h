#pragma once
// An append-only output file ("-" = stdout) that never truncates what it did
// not write itself: a restart must not destroy records already written.
//
// Bytes are staged in memory and handed to the OS with write(2). When the OS
// refuses some of them, a regular file is cut back to the offset where the
// staged bytes began, so only whole records ever stay in the file and a
// retry cannot glue a record onto the torn half of another.
#include <string>

namespace sink::plugin {

class OutputFile {
public:
  // Throws std::runtime_error naming the path when it cannot be opened.
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile &) = delete;
  OutputFile &operator=(const OutputFile &) = delete;

  // True when the file was empty when we opened it.
  bool was_empty() const { return was_empty_; }
  // Stages bytes; nothing reaches the OS until write_out().
  void stage(const std::string &bytes) { staged_ += bytes; }
  // The staging buffer itself, for a caller that appends in place.
  std::string &staging() { return staged_; }
  size_t staged() const { return staged_.size(); }
  // Drops the last n staged bytes (a record the caller takes back).
  void unstage(size_t n) { staged_.resize(staged_.size() - std::min(n, staged_.size())); }
  // Hands every staged byte to the OS. On failure (errno set) a regular file
  // is cut back to where the staged bytes began and they stay staged.
  bool write_out();
  // Marks what reached the OS as durable: a later rollback() stops here.
  void commit();
  // Throws away everything staged and cuts the file back to the last commit.
  void rollback();
  // Reopens the same path (after log rotation). Returns false on failure
  // (errno set) and keeps the old file.
  bool reopen();
  const std::string &path() const { return path_; }
  // Bytes of a torn last line (a crash mid-write) cut off when the file was
  // last opened, so new records never glue onto half a record.
  size_t torn_bytes() const { return torn_bytes_; }

private:
  void adopt(int fd); // takes fd as the current file
  void cut_torn_tail();
  bool cut_back_to(long long offset);
  std::string path_;
  int fd_ = -1;
  bool owns_fd_ = false;
  bool was_empty_ = true;
  bool seekable_ = false;
  long long end_ = 0;       // where our next bytes land (regular files)
  long long committed_ = 0; // end at the last commit()
  std::string staged_;
  size_t torn_bytes_ = 0;
};

} // namespace sink::plugin
