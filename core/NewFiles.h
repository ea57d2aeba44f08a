#pragma once
// Files a start-up may create (outputs, the log, analyzer state, the
// journal directory). When the start-up fails, the ones that did not exist
// before are removed again, so a refused config leaves nothing behind.
#include <string>
#include <vector>

namespace sink {

class NewFiles {
public:
  NewFiles() = default;
  NewFiles(const NewFiles &) = delete;
  NewFiles &operator=(const NewFiles &) = delete;
  ~NewFiles();
  // Remembers path if it does not exist yet ("" and "-" are ignored).
  void watch(const std::string &path);
  // Remembers the outermost directory on the way to dir that does not
  // exist yet (create_directories makes them all).
  void watch_tree(const std::string &dir);
  // The start-up succeeded: remove nothing.
  void keep() { paths_.clear(); }

private:
  std::vector<std::string> paths_;
};

} // namespace sink
