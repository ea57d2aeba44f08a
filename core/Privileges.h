#pragma once
// Running without root: once every listener is bound and every file is
// open, become an unprivileged user. glibc's setuid/setgid reach every
// thread of the process (plugins may have started their own), and leaving
// uid 0 clears every capability set, so no thread keeps root or a
// capability.
#include <stdexcept>
#include <string>
#include <vector>

namespace sink {

// The switch failed (exit code 1).
class PrivilegeError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Switches uid, gid and supplementary groups to `user`'s and checks that
// root cannot be regained. Throws PrivilegeError.
void become_user(const std::string &user);

// After the switch: every path's directory must be writable, or the next
// log rotation would fail. Throws PrivilegeError naming the first that is not.
// Gives these paths (the journal's directory and its own files, written
// after the switch) to user. Throws PrivilegeError.
void hand_over(const std::vector<std::string> &paths, const std::string &user);

void check_writable_dirs(const std::vector<std::string> &paths, const std::string &user);

} // namespace sink
