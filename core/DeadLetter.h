#pragma once
// Records set aside because a store refused them for good (an output's
// SINK_ERR_REFUSED, a collector message that fails the schema): appended as
// JSON Lines to a file of their own, so one bad record neither blocks an
// output nor disappears. Shared by every output of the process; each line
// is written whole and synced before the caller goes on.
#include <sink/plugin.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "OwnedFd.h"

namespace sink {

class DeadLetterFile {
public:
  explicit DeadLetterFile(std::string path) : path_(std::move(path)) {}
  const std::string &path() const { return path_; }
  // Appends line (one JSON object and "\n") and, unless told not to, syncs
  // it. Creates the file (0640) on first use. False and *why when it could not.
  bool append(std::string_view line, std::string *why, bool sync = true);
  // Syncs what was appended without a sync.
  bool sync(std::string *why);

private:
  bool sync_locked(std::string *why);
  std::string path_;
  std::mutex mutex_;
  OwnedFd fd_; // opened on first use: most runs never set anything aside
};

// One DeadLetterFile per path for the whole process, so outputs sharing a
// file write their lines one after the other.
std::shared_ptr<DeadLetterFile> dead_letter_file(const std::string &path);

// The record's JSONL object with "set_aside": {"output": ..., "at_ns": ...}
// added, and "\n": still a record line any JSONL reader takes.
std::string dead_letter_record_line(const sink_record &r, const std::string &output, int64_t at_unix_ns);

// A message that is no record (or fails the schema): its bytes as base64,
// with where it came from and why it was set aside.
std::string dead_letter_message_line(std::string_view body, const std::string &subject,
                                     const std::string &why, int64_t at_unix_ns);

// Where records are set aside when nothing else is said: beside the
// service's state (systemd's StateDirectory=), else in the working
// directory (which a service running in "/" cannot write).
std::string default_dead_letter_path();

int64_t unix_now_ns();

} // namespace sink
