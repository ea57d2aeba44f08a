#include "NoForeignLinks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace sink::plugin {

namespace {

std::string parent_of(const std::string &path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Root's link in a directory of root's where no one else can replace it:
// no one else may write there, or the sticky bit keeps root's entries
// root's (/tmp).
bool roots_own_link(const std::string &path) {
  struct stat link {};
  struct stat dir {};
  return ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode) && link.st_uid == 0 &&
         ::lstat(parent_of(path).c_str(), &dir) == 0 && S_ISDIR(dir.st_mode) && dir.st_uid == 0 &&
         ((dir.st_mode & S_ISVTX) != 0 || (dir.st_mode & (S_IWGRP | S_IWOTH)) == 0);
}

} // namespace

int open_without_foreign_links(std::string path, int flags, mode_t mode) {
  if (::geteuid() != 0) return ::open(path.c_str(), flags, mode);
  for (int hops = 0; hops < 8; ++hops) {
    const int fd = ::open(path.c_str(), flags | O_NOFOLLOW, mode);
    if (fd >= 0 || errno != ELOOP) return fd;
    if (!roots_own_link(path)) {
      errno = ELOOP;
      return -1;
    }
    // The kernel's own links (/proc/self/fd/N) may name no path: follow them.
    if (path.rfind("/proc/", 0) == 0) return ::open(path.c_str(), flags, mode);
    char target[PATH_MAX];
    const ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
    if (n <= 0) return -1;
    const std::string next(target, static_cast<size_t>(n));
    path = next.front() == '/' ? next : parent_of(path) + "/" + next;
  }
  errno = ELOOP;
  return -1;
}

std::string foreign_link_message(const std::string &path) {
  return "\"" + path +
         "\" is a symbolic link sink running as root does not follow (it follows only root's own links "
         "where no one else can replace them: whoever can write its directory could point it at any "
         "file): name the file itself";
}

} // namespace sink::plugin
