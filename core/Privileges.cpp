#include "Privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sink {

void become_user(const std::string &user) {
  errno = 0;
  const passwd *pw = getpwnam(user.c_str());
  if (!pw) throw PrivilegeError("user " + user + ": no such user");
  const uid_t uid = pw->pw_uid;
  const gid_t gid = pw->pw_gid;
  if (geteuid() == uid && getegid() == gid) return; // already there
  // Order matters: groups and gid while we still may, uid last.
  if (initgroups(user.c_str(), gid) != 0)
    throw PrivilegeError("user " + user + ": setting supplementary groups failed: " + std::strerror(errno));
  if (setgid(gid) != 0) throw PrivilegeError("user " + user + ": setgid failed: " + std::strerror(errno));
  if (setuid(uid) != 0) throw PrivilegeError("user " + user + ": setuid failed: " + std::strerror(errno));
  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
    throw PrivilegeError("user " + user + ": root could be regained after the switch; refusing to run");
}

void hand_over(const std::vector<std::string> &paths, const std::string &user) {
  const passwd *pw = getpwnam(user.c_str());
  if (!pw) throw PrivilegeError("user " + user + ": no such user");
  for (const auto &p : paths)
    if (lchown(p.c_str(), pw->pw_uid, pw->pw_gid) != 0)
      throw PrivilegeError("cannot give " + p + " to user " + user + ": " + std::strerror(errno));
}

void check_writable_dirs(const std::vector<std::string> &paths, const std::string &user) {
  namespace fs = std::filesystem;
  for (const auto &p : paths) {
    if (p.empty() || p == "-") continue;
    fs::path dir = fs::absolute(p).parent_path();
    if (access(dir.c_str(), W_OK | X_OK) != 0)
      throw PrivilegeError("user " + user + " cannot write directory " + dir.string() + " (for " + p +
                           "): " + std::strerror(errno) + "; log rotation would fail there");
  }
}

} // namespace sink
