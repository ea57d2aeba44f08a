#include "Privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ConfigPaths.h"
#include "ConfigValidation.h"
#include "OwnedFd.h"

namespace sink {

namespace {

struct UserIds {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups; // supplementary, as initgroups would set them
};

UserIds look_up(const std::string &user) {
  const passwd *pw = getpwnam(user.c_str());
  if (!pw) throw PrivilegeError("user " + user + ": no such user");
  UserIds ids{pw->pw_uid, pw->pw_gid, {}};
  ids.groups.resize(32);
  for (;;) {
    int n = static_cast<int>(ids.groups.size());
    if (getgrouplist(user.c_str(), ids.gid, ids.groups.data(), &n) >= 0) {
      ids.groups.resize(static_cast<size_t>(n));
      return ids;
    }
    ids.groups.resize(std::max(static_cast<size_t>(n), ids.groups.size() * 2));
  }
}

bool write_int(int fd, int value) { return ::write(fd, &value, sizeof value) == sizeof value; }

// The child of check_user_access: becomes the user and reports, for the
// switch and then for each need, 0 or the errno. Only system calls: the
// parent may have threads whose locks the child inherited.
[[noreturn]] void probe_as(const UserIds &ids, const std::vector<UserAccess> &needs, int out) {
  int switched = 0;
  if (::syscall(SYS_setgroups, ids.groups.size(), ids.groups.data()) != 0 ||
      ::syscall(SYS_setresgid, ids.gid, ids.gid, ids.gid) != 0 ||
      ::syscall(SYS_setresuid, ids.uid, ids.uid, ids.uid) != 0)
    switched = errno;
  write_int(out, switched);
  if (switched == 0)
    for (const auto &n : needs)
      if (!write_int(out, ::access(n.path.c_str(), n.mode) == 0 ? 0 : errno)) break;
  ::_exit(0);
}

// The errno of each need as ids (0 = allowed); empty when the child could
// not become the user.
std::vector<int> access_errors_as(const UserIds &ids, const std::vector<UserAccess> &needs) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw PrivilegeError(std::string("pipe: ") + std::strerror(errno));
  OwnedFd from_child(ends[0]), to_parent(ends[1]);
  const pid_t pid = ::fork();
  if (pid < 0) throw PrivilegeError(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) probe_as(ids, needs, to_parent.fd);
  ::close(to_parent.release()); // so the read below ends when the child exits
  std::vector<int> results;
  int value = 0;
  for (;;) {
    const ssize_t n = ::read(from_child.fd, &value, sizeof value);
    if (n < 0 && errno == EINTR) continue;
    if (n != sizeof value) break;
    results.push_back(value);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (results.empty() || results.front() != 0) return {};
  results.erase(results.begin());
  if (results.size() != needs.size()) throw PrivilegeError("checking what the user may write failed");
  return results;
}

} // namespace

void check_user_access(const std::string &user, const std::vector<UserAccess> &needs) {
  if (needs.empty()) return;
  const UserIds ids = look_up(user);
  std::vector<int> errors;
  if (geteuid() == ids.uid && getegid() == ids.gid) {
    for (const auto &n : needs) // already the user: no switch needed
      errors.push_back(::faccessat(AT_FDCWD, n.path.c_str(), n.mode, AT_EACCESS) == 0 ? 0 : errno);
  } else if (geteuid() == 0) {
    errors = access_errors_as(ids, needs);
  }
  for (size_t i = 0; i < errors.size(); ++i)
    if (errors[i] != 0)
      throw UserAccessError(needs[i].where + ": user " + user + " cannot " + needs[i].what + ": " +
                            std::strerror(errors[i]) + "; " + needs[i].remedy);
}

// ---- FoundEntries ------------------------------------------------------------

namespace {

// The journal's own names ("dir//lock") and a directory listing's ("dir/lock") alike.
std::string normal(const std::string &path) {
  return std::filesystem::path(path).lexically_normal().string();
}

// Pinning a large file would keep its blocks after the journal frees it (a
// full disk must start again); a large segment is never made again under
// its name, which identities compare too.
constexpr off_t kPinnedSize = 64 << 10;

} // namespace

FoundEntries::FoundEntries(const std::string &dir) : dir_(dir) {
  struct stat st {};
  dir_found_ = ::lstat(dir.c_str(), &st) == 0;
  if (!dir_found_) return;
  remember(dir);
  // A directory named through a link: what the link leads to was found too.
  if (S_ISLNK(st.st_mode) && ::stat(dir.c_str(), &st) == 0)
    found_.push_back({normal(dir), st.st_dev, st.st_ino});
  remember(dir + "/cursors");
  remember_entries(dir);
  remember_entries(dir + "/cursors");
}

void FoundEntries::remember(const std::string &path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  found_.push_back({normal(path), st.st_dev, st.st_ino});
  // While a descriptor holds the inode, its number cannot go to a file
  // made since under the same name (an empty segment replaced at start).
  if (!S_ISDIR(st.st_mode) && !(S_ISREG(st.st_mode) && st.st_size <= kPinnedSize)) return;
  const int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) held_.push_back(std::make_unique<OwnedFd>(fd));
}

void FoundEntries::remember_entries(const std::string &dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    remember(it->path().string());
}

bool FoundEntries::found(const std::string &path) const {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && found(path, st);
}

bool FoundEntries::found(const std::string &path, const struct stat &st) const {
  return std::find(found_.begin(), found_.end(), Identity{normal(path), st.st_dev, st.st_ino}) !=
         found_.end();
}

// ---- what the config needs ---------------------------------------------------

namespace {

std::string directory_of(const std::string &path) {
  std::filesystem::path p = std::filesystem::absolute(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path(); // "dir/"
  return p.parent_path().string();
}

// The directory of file (a file sink makes again there, as the user).
UserAccess remake_in_directory_of(const std::string &file, const std::string &where, const std::string &user,
                                  const std::string &why, const std::string &key) {
  const std::string dir = directory_of(file);
  return {dir, W_OK | X_OK, where, "write directory " + dir + " (for " + file + ")",
          why + ": let " + user + " write " + dir + ", or choose another " + key};
}

// "/a/b/" and "/a/b/." as "/a/b", for messages.
std::string plain_dir(const std::string &dir) {
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
  return p.string();
}

std::string journal_where(const Config &config) {
  return config.source + (config.journal.line ? ":" + std::to_string(config.journal.line) : "") +
         ": journal.dir";
}

// A journal directory that exists already must be the user's to write.
std::vector<UserAccess> found_journal_needs(const Config &config) {
  const std::string dir = plain_dir(config.journal.dir), &user = config.user;
  const std::string remedy =
      "sink gives the user only a journal directory it creates itself, never one it found (whoever owns a "
      "directory can replace what else is in it, such as the config): point journal.dir at a directory that "
      "does not exist yet (sink creates it for " +
      user + "), or, if nothing but the journal lives in " + dir + ", give it to " + user + " (chown -R " +
      user + " " + dir + ")";
  std::vector<UserAccess> needs{{dir, W_OK | X_OK, journal_where(config), "write directory " + dir, remedy}};
  struct stat st {};
  const std::string cursors = dir + "/cursors";
  if (::lstat(cursors.c_str(), &st) == 0)
    needs.push_back({cursors, W_OK | X_OK, journal_where(config), "write directory " + cursors, remedy});
  return needs;
}

// Root opens and creates files in a found journal directory: only root
// and the user may control it. Throws UserAccessError naming the owner or
// the mode otherwise.
void refuse_journal_others_control(const Config &config) {
  const std::string dir = plain_dir(config.journal.dir);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return;
  const passwd *pw = ::getpwnam(config.user.c_str());
  std::string why;
  if ((st.st_mode & S_IWOTH) != 0)
    why = "every user may write it";
  else if (st.st_uid != 0 && (!pw || st.st_uid != pw->pw_uid))
    why = "it belongs to uid " + std::to_string(st.st_uid);
  if (!why.empty())
    throw UserAccessError(
        journal_where(config) + ": " + dir + ": " + why +
        ", and sink running as root opens files there (whoever controls the directory could "
        "point it at any file): use a directory of root's or of " +
        config.user + "'s that no one else may write");
}

bool is_segment(const std::string &path) {
  const std::string name = std::filesystem::path(path).filename().string();
  return name.rfind("seg-", 0) == 0 && std::filesystem::path(name).extension() == ".journal";
}

} // namespace

std::vector<UserAccess> planned_writes(const Config &config, const FoundEntries &journal_found) {
  const std::string &user = config.user;
  // The journal first: a directory sink will not take over says the most.
  std::vector<UserAccess> needs;
  if (config.journal.enabled && journal_found.dir_found()) {
    refuse_journal_others_control(config);
    needs = found_journal_needs(config);
  }
  if (!config.log.path.empty())
    needs.push_back(remake_in_directory_of(config.log.path, config.source + ": log.path", user,
                                           "sink makes the log file again there after a rotation",
                                           "log.path"));
  for (size_t i = 0; i < config.outputs.size(); ++i) {
    const auto &o = config.outputs[i];
    if (!o.options.contains("path") || !o.options["path"].is_string()) continue;
    const std::string path = resolve_path(config.config_dir, o.options["path"].get<std::string>());
    if (path.empty() || path == "-") continue;
    needs.push_back(remake_in_directory_of(
        path, plugin_location(config, o.line, "outputs", i, o.plugin) + ": option \"path\"", user,
        "sink makes the file again there after a rotation", "path"));
  }
  for (size_t i = 0; i < config.analyzers.size(); ++i) {
    const auto &a = config.analyzers[i];
    if (!a.options.contains("state_path") || !a.options["state_path"].is_string()) continue;
    const std::string path = resolve_path(config.config_dir, a.options["state_path"].get<std::string>());
    if (path.empty()) continue;
    needs.push_back(remake_in_directory_of(
        path, plugin_location(config, a.line, "analyzers", i, a.plugin) + ": option \"state_path\"", user,
        "the state is saved there as " + user + " (a new file renamed over the old one)", "state_path"));
  }
  return needs;
}

std::vector<UserAccess> journal_needs(const Config &config, const std::vector<std::string> &own_paths,
                                      const FoundEntries &found) {
  const std::string dir = plain_dir(config.journal.dir), &user = config.user;
  std::vector<UserAccess> needs;
  if (!found.dir_found()) {
    // Directories created above it have the creator's umask (UMask=0027: none for others).
    const std::string parent = directory_of(dir);
    needs.push_back({parent, X_OK, journal_where(config),
                     "reach directory " + parent + " (above the journal directory " + dir + " it created)",
                     "let " + user + " search every directory above " + dir +
                         " (chmod o+x), or point journal.dir elsewhere"});
    return needs;
  }
  for (const auto &p : own_paths)
    if (is_segment(p) && found.found(p))
      needs.push_back({p, R_OK, journal_where(config), "read the journal segment " + p,
                       "sink does not take over journal files it did not create; if only sink uses " + dir +
                           ", give it to " + user + " (chown -R " + user + " " + dir + ")"});
  return needs;
}

// ---- the switch --------------------------------------------------------------

namespace {

// What relative names below the directory `top`, reached without following
// a link on the way (a link is itself what is returned): an O_PATH
// descriptor, or -1.
int open_below(int top, const std::filesystem::path &relative) {
  OwnedFd at(::fcntl(top, F_DUPFD_CLOEXEC, 0));
  for (const auto &part : relative) {
    if (at.fd < 0) break;
    if (part == ".") continue;
    OwnedFd next(::openat(at.fd, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    std::swap(at.fd, next.fd);
  }
  return at.release();
}

// The journal directory as found, or as this start created it (then
// root's and no link): -1 when something else is there now.
int open_handed_dir(const FoundEntries &found) {
  const std::string &dir = found.dir();
  OwnedFd fd(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | (found.dir_found() ? 0 : O_NOFOLLOW)));
  struct stat st {};
  if (fd.fd < 0 || ::fstat(fd.fd, &st) != 0) return -1;
  const bool same = found.dir_found() ? found.found(dir, st) : st.st_uid == geteuid();
  return same ? fd.release() : -1;
}

} // namespace

void hand_over(const std::vector<std::string> &paths, const FoundEntries &found, const std::string &user) {
  const UserIds ids = look_up(user);
  const OwnedFd dir(open_handed_dir(found));
  if (dir.fd < 0) return;
  const std::filesystem::path top = normal(found.dir());
  for (const auto &p : paths) {
    const std::filesystem::path relative = std::filesystem::path(normal(p)).lexically_relative(top);
    if (relative.empty() || *relative.begin() == "..") continue;
    const OwnedFd fd(open_below(dir.fd, relative));
    struct stat st {};
    if (fd.fd < 0 || ::fstat(fd.fd, &st) != 0 || found.found(p, st) || st.st_uid != geteuid()) continue;
    // A hard link could be a file sink never made; a link or a device never is sink's.
    const bool ours = S_ISDIR(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink == 1);
    if (ours && ::fchownat(fd.fd, "", ids.uid, ids.gid, AT_EMPTY_PATH) != 0)
      throw PrivilegeError("cannot give " + p + " to user " + user + ": " + std::strerror(errno));
  }
}

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

} // namespace sink
