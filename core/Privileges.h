#pragma once
// Running without root: once every listener is bound and every file is
// open, become an unprivileged user. glibc's setuid/setgid reach every
// thread of the process (plugins may have started their own), and leaving
// uid 0 clears every capability set, so no thread keeps root or a
// capability.
//
// Before anything changes, every place the user will write is checked as
// that user; then only what this start created is given to the user. A
// directory sink found is never taken over: whoever can write it could
// replace what else lives there (the config, a plugin).
#include <sys/stat.h>
#include <sys/types.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "Config.h"
#include "OwnedFd.h"

namespace sink {

// The switch failed (exit code 1).
class PrivilegeError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The config asks the user to write where it cannot (exit code 2): the
// message names the key, the path and what to do.
class UserAccessError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Something the user must be able to do once privileges are dropped.
struct UserAccess {
  std::string path;
  int mode = 0;       // access(2) bits: W_OK | X_OK for a directory to create files in
  std::string where;  // "sink.yaml:12: outputs[0] (jsonl) path", for the message
  std::string what;   // "write directory /d (for /d/out.jsonl)"
  std::string remedy; // what the operator can do about it
};

// Checks every need as `user` (in a child process that switched to it, so
// groups, ACLs and read-only mounts count) and throws UserAccessError for
// the first that fails. Does nothing when the process cannot switch (not
// root): become_user reports that.
void check_user_access(const std::string &user, const std::vector<UserAccess> &needs);

// What a directory held before this start: the entries of dir and of
// dir/cursors (the journal's layout), and the two directories themselves.
// Nothing it recorded is ever handed to the user.
class FoundEntries {
public:
  explicit FoundEntries(const std::string &dir);
  // Whether path is an entry that existed (the same file, not one made
  // since under the same name).
  bool found(const std::string &path) const;
  // The same, for what an O_PATH descriptor of path refers to.
  bool found(const std::string &path, const struct stat &st) const;
  // Whether the directory itself existed.
  bool dir_found() const { return dir_found_; }
  const std::string &dir() const { return dir_; }

private:
  struct Identity {
    std::string path; // lexically normal
    dev_t dev;
    ino_t ino;
    bool operator==(const Identity &) const = default;
  };
  void remember(const std::string &path);
  void remember_entries(const std::string &dir);
  std::vector<Identity> found_;
  std::vector<std::unique_ptr<OwnedFd>> held_; // pins small found inodes (see remember)
  std::string dir_;
  bool dir_found_ = false;
};

// What the config makes the user write after the drop: the directory of
// the log, of each output's `path` and of each analyzer's `state_path`
// (files are made there again after a rotation or at each save), and the
// journal directory when it exists already (never taken over). Throws
// UserAccessError for a found journal directory someone other than root
// and the user controls (another owner, or writable by every user).
std::vector<UserAccess> planned_writes(const Config &config, const FoundEntries &journal_found);

// Once the journal has opened its directory (own_paths): a directory it
// created must be reachable by the user, and the segments it found
// readable (outputs reopen them after the drop).
std::vector<UserAccess> journal_needs(const Config &config, const std::vector<std::string> &own_paths,
                                      const FoundEntries &found);

// Gives `user` those of paths (in found.dir()) this start created (not in
// found): only a directory or a regular file with one link, owned by this
// process, reached without following a link below the directory (the user
// may write a found one while sink starts). Throws PrivilegeError.
void hand_over(const std::vector<std::string> &paths, const FoundEntries &found, const std::string &user);

// Switches uid, gid and supplementary groups to `user`'s and checks that
// root cannot be regained. Throws PrivilegeError.
void become_user(const std::string &user);

} // namespace sink
