#pragma once
// An append-only output file ("-" = stdout) that never truncates what it did
// not write itself: a restart must not destroy records already written, nor
// any byte of a file sink found.
//
// Bytes are staged in memory and handed to the OS with write(2). When the OS
// refuses some of them, a regular file is cut back to the offset where the
// staged bytes began, so only whole records ever stay in the file and a
// retry cannot glue a record onto the torn half of another.
//
// Before each write a side file (".NAME.sink-tail" beside the file) records
// which bytes of which file (device, inode) this sink is writing and has
// not yet confirmed. At the next open only a torn line inside that range is
// cut (a crash mid-write); a file that ends without a newline for any other
// reason is kept whole and new records start after a newline.
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
  // Bytes of a torn last line this sink left (a crash mid-write) cut off
  // when the file was last opened, so new records never glue onto half a
  // record.
  size_t torn_bytes() const { return torn_bytes_; }
  // True when the file was last opened ending without a newline that this
  // sink did not write: it is kept and the next bytes start on a new line.
  bool ended_mid_line() const { return ended_mid_line_; }

private:
  void adopt(int fd); // takes fd as the current file
  // The last line when sink wrote it and a crash tore it: cut. Any other
  // file not ending in a newline: a newline goes before our first record.
  void handle_unfinished_line();
  // Records [start, end of the staged bytes) as ours and unconfirmed in the
  // side file, with the first bytes written from start.
  void note_pending(long long start, const std::string &first_bytes);
  bool cut_back_to(long long offset);
  std::string path_, tail_path_;
  int fd_ = -1;
  int tail_fd_ = -1; // the side file, opened at the first write
  bool owns_fd_ = false;
  bool was_empty_ = true;
  bool seekable_ = false;
  bool ended_mid_line_ = false;
  unsigned long long dev_ = 0, ino_ = 0;
  long long end_ = 0;            // where our next bytes land (regular files)
  long long committed_ = 0;      // end at the last commit()
  long long unfinished_at_ = -1; // where a foreign unfinished line ends
  std::string staged_;
  std::string pending_head_; // the first bytes written since the last commit
  size_t torn_bytes_ = 0;
};

} // namespace sink::plugin
