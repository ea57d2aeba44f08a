#pragma once
// Opening a file as root in a directory another user may write (the user
// of a privilege drop writes the directories of the log, the record files
// and the replay state): a symbolic link there could point root at any
// file. Root follows only links that root made where no one else can
// replace them, such as /dev/stdout; everyone else opens as open(2) does.
#include <sys/types.h>

#include <string>

namespace sink::plugin {

// open(2), except that as root a link that is not root's, or lies in a
// directory others may write, fails with ELOOP.
int open_without_foreign_links(std::string path, int flags, mode_t mode = 0);

// The message for an ELOOP from open_without_foreign_links: names path.
std::string foreign_link_message(const std::string &path);

} // namespace sink::plugin
