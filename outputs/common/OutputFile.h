#pragma once
// An append-only output file ("-" = stdout) that never truncates: a restart
// must not destroy records already written.
#include <cstdio>
#include <memory>
#include <string>

namespace sink::plugin {

class OutputFile {
public:
  // Throws std::runtime_error naming the path when it cannot be opened.
  explicit OutputFile(std::string path);

  // True when nothing had been written to the file before we opened it.
  bool was_empty() const { return was_empty_; }
  // Returns false (errno set) when the OS refused the bytes.
  bool write(const std::string &bytes);
  bool flush();
  // Reopens the same path (after log rotation). Returns false on failure and
  // keeps the old handle.
  bool reopen();
  const std::string &path() const { return path_; }

private:
  struct Closer {
    void operator()(FILE *f) const;
  };
  std::string path_;
  std::unique_ptr<FILE, Closer> file_;
  bool was_empty_ = true;
};

} // namespace sink::plugin
