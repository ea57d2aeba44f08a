#include "NewFiles.h"

#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

namespace sink {

void NewFiles::watch(const std::string &path) {
  struct stat st {};
  if (path.empty() || path == "-" || lstat(path.c_str(), &st) == 0) return;
  paths_.push_back(path);
}

void NewFiles::watch_tree(const std::string &dir) {
  if (dir.empty()) return;
  std::filesystem::path p = std::filesystem::absolute(dir).lexically_normal();
  if (!p.has_filename()) p = p.parent_path(); // "dir/"
  std::filesystem::path outermost;
  struct stat st {};
  while (p != p.parent_path() && ::lstat(p.c_str(), &st) != 0) {
    outermost = p;
    p = p.parent_path();
  }
  if (!outermost.empty()) paths_.push_back(outermost.string());
}

NewFiles::~NewFiles() {
  for (const auto &p : paths_) {
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    if (S_ISREG(st.st_mode)) ::unlink(p.c_str());
    std::error_code ec;
    // A directory this start created (the journal) goes with what it holds.
    if (S_ISDIR(st.st_mode)) std::filesystem::remove_all(p, ec);
  }
}

} // namespace sink
