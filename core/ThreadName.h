#pragma once

#include <sys/prctl.h>

#include <string>

namespace sink {

// Names the calling thread (top -H, perf, /proc/PID/task/*/comm) so an
// operator can tell the network, record and output threads apart. The
// kernel keeps the first 15 bytes.
inline void name_this_thread(const std::string &name) { prctl(PR_SET_NAME, name.substr(0, 15).c_str()); }

} // namespace sink
