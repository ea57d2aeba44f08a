#include "OutputFile.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sink::plugin {

void OutputFile::Closer::operator()(FILE *f) const {
  if (f == stdout) {
    std::fflush(f);
  } else if (f) {
    std::fclose(f);
  }
}

namespace {
FILE *open_append(const std::string &path) {
  if (path == "-") return stdout;
  return std::fopen(path.c_str(), "ae"); // append, close-on-exec
}
} // namespace

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  FILE *f = open_append(path_);
  if (!f) throw std::runtime_error("cannot open \"" + path_ + "\": " + std::strerror(errno));
  file_.reset(f);
  struct stat st {};
  if (f != stdout && fstat(fileno(f), &st) == 0) was_empty_ = st.st_size == 0;
}

bool OutputFile::write(const std::string &bytes) {
  return std::fwrite(bytes.data(), 1, bytes.size(), file_.get()) == bytes.size();
}

bool OutputFile::flush() { return std::fflush(file_.get()) == 0; }

bool OutputFile::reopen() {
  if (file_.get() == stdout) return true;
  FILE *f = open_append(path_);
  if (!f) return false;
  file_.reset(f); // closes (and so flushes) the old handle
  return true;
}

} // namespace sink::plugin
