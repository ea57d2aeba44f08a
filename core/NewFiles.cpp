#include "NewFiles.h"

#include <sys/stat.h>
#include <unistd.h>

namespace sink {

void NewFiles::watch(const std::string &path) {
  struct stat st {};
  if (path.empty() || path == "-" || lstat(path.c_str(), &st) == 0) return;
  paths_.push_back(path);
}

NewFiles::~NewFiles() {
  for (const auto &p : paths_) {
    struct stat st {};
    if (lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::unlink(p.c_str());
  }
}

} // namespace sink
