#pragma once
// The crash-safe record journal. The record thread appends every record
// (after the analyzers) before any output sees it; each output consumes the
// journal with a cursor of its own that moves only on a successful flush.
// So a record survives a kill -9, an OOM kill or a plugin crash from the
// moment it is appended, and a failing output falls behind on disk, not in
// memory.
//
// On disk (DIR): `seg-<first seq, 20 digits>.journal` segment files, each a
// 24-byte header ("SINKJNL\0", format version, codec version, first seq)
// then entries [magic "SJE\xb7"][u32 length][u64 seq][u32 crc32 of those 16
// bytes][u32 crc32 of body][body], body = RecordCodec (format 2; format 1
// segments, [u32 length][u32 crc32 of seq+body][u64 seq][body], written by
// earlier sinks, are still read). The magic and the header's own crc let a
// reader find the next entry after damage, so exactly the damaged records
// are lost (an entry whose header holds is skipped whole, never searched:
// its body is a captured payload and may hold a well-formed entry); `cursors/<output name>.cursor` (32 bytes:
// "SINKCUR1", position, crash seq, crash count, crc32); `lock` (flock: one sink per journal). Appends are
// written with write(2) once per batch (the OS has them: a process crash loses nothing); fdatasync runs at
// most once a second and at every segment change, so a power cut loses at most the last second. Size is
// bounded by max_bytes, and by the disk's free space (less a reserve; ENOSPC counts as full too): segments
// every cursor has passed are deleted; when the journal is full, the oldest segment is deleted only if some
// output has passed it (outputs still inside lose its records: lost for them alone), otherwise append()
// reports full and the caller pauses.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "Logger.h"
#include "OwnedFd.h"
#include "Record.h"
#include "StringInterner.h"

namespace sink {

class JournalError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// One output's position in the journal: the first record it has not
// confirmed. Also remembers the record a plugin crashed on, so a record
// that crashes it on every restart can be skipped (a poison record).
class JournalCursor {
public:
  JournalCursor(std::string name, std::string path, int fd, uint64_t position, uint64_t crash_seq,
                uint32_t crash_count);
  ~JournalCursor();
  JournalCursor(const JournalCursor &) = delete;
  JournalCursor &operator=(const JournalCursor &) = delete;

  const std::string &name() const { return name_; }
  uint64_t position() const { return position_; }
  // The position as stored on disk (what a restart would go on from).
  uint64_t stored_position() const { return stored_; }
  // After a successful flush: the output confirmed everything before next.
  // Stored at most every kStoreInterval under load (a crash in between
  // means records delivered again, never lost); store() makes it durable now.
  void advance(uint64_t next);
  void store_now();
  uint64_t crash_seq() const { return crash_seq_; }
  uint32_t crash_count() const { return crash_count_; }
  // Async-signal-safe: the plugin crashed while handling seq.
  void mark_crash(uint64_t seq) const noexcept;
  // The journal deleted records this output had not confirmed: it must go
  // on from `next` (its records before that are lost for it).
  void skip_to(uint64_t next);
  uint64_t skip_target() const { return skip_to_; }

private:
  friend class Journal;
  void store(uint64_t position, uint64_t crash_seq, uint32_t crash_count) const noexcept;
  std::string name_, path_;
  int fd_;
  std::atomic<uint64_t> position_, stored_, skip_to_{0};
  std::chrono::steady_clock::time_point last_store_{};
  uint64_t crash_seq_;
  uint32_t crash_count_;
};

class Journal {
public:
  // Opens (creating) dir, takes its lock, cuts a torn tail left by a crash.
  // Throws JournalError naming the directory and the reason.
  Journal(const std::string &dir, uint64_t max_bytes, Logger &logger);
  ~Journal(); // syncs the active segment
  Journal(const Journal &) = delete;
  Journal &operator=(const Journal &) = delete;

  const std::string &dir() const { return dir_; }
  // The directory and every file the journal made in it (for a change of
  // owner before dropping privileges); nothing else in the directory.
  std::vector<std::string> own_paths() const;
  // The cursor of output `name`; a new output starts at the journal's end.
  JournalCursor &cursor(const std::string &name);
  // Deletes the cursor files of outputs no longer configured.
  void release_cursors_except(const std::vector<std::string> &names);

  enum class Append { kDone, kFull, kFailed };
  // Record thread. Appends the first *count records of batch (as many as
  // fit; *count is set to how many did), numbered from *first_seq on.
  // kFull: not even one fits; kFailed: the disk refused (nothing appended,
  // *error says why). force: append them all even beyond max_bytes.
  Append append(const std::vector<Record> &batch, size_t *count, uint64_t *first_seq, bool force,
                std::string *error);
  // Record thread: fdatasync the active segment if a second has passed.
  void sync_if_due();

  // The sequence number the next appended record gets: records below it
  // are readable.
  uint64_t end_seq() const { return end_seq_; }
  uint64_t bytes() const { return total_bytes_; }
  uint64_t max_bytes() const { return max_bytes_; }
  // The bound in force: max_bytes, or less when the disk has less room
  // (what the journal holds plus the disk's free space, less a reserve).
  uint64_t limit() const { return std::min(max_bytes_, disk_bound_.load()); }
  // Records on disk (appended and not yet deleted).
  uint64_t records() const;

  // Records below this were handed to the outputs in memory (or were in the
  // journal at start): an output reads only those from disk; later ones
  // reach it in memory. Set by the record thread after each hand-over.
  uint64_t handed_seq() const { return handed_seq_; }
  void set_handed_seq(uint64_t seq) { handed_seq_ = seq; }

  // Where a reader finds seq: the segment holding it, or the oldest one
  // when seq was deleted (then first_seq > seq).
  struct SegmentRef {
    uint64_t first_seq = 0;
    uint64_t end_seq = UINT64_MAX; // first seq of the next segment; MAX for the active one
    std::string path;
    uint32_t version = 0;
  };
  SegmentRef locate(uint64_t seq) const;
  StringInterner &strings() { return strings_; }
  Logger &logger() { return logger_; }

private:
  struct Segment {
    uint64_t first_seq;
    std::string path;
    uint64_t bytes;
    uint32_t version; // entry format: 1 (before damage could be skipped) or 2
  };
  void recover();
  static uint64_t segment_size(uint64_t bound);
  // Looks how much room the journal's disk has (statvfs).
  void measure_disk();
  // At start, when no new segment can be made: appends go on in the newest.
  bool continue_last_segment();
  // At start: deletes the oldest segments up to the one position is in
  // (next: the first record after the newest); returns the bytes freed.
  uint64_t free_segments_passed_by(uint64_t position, uint64_t next);
  // Starts a new segment when the active one is full and the disk allows.
  void start_segment_if_full();
  // After ENOSPC: frees what the bound allows; true when something was.
  bool make_room_on_full_disk(uint64_t need);
  // The entry format of a segment; 0 when it holds nothing readable.
  uint32_t segment_version(int fd, uint64_t first, const std::string &path);
  // Scan the newest segment, cut what follows its last whole entry and
  // return the number the next record gets; *kept is its size afterwards.
  uint64_t recover_last_v2(int fd, uint64_t first, uint64_t size, const std::string &path, uint64_t *kept);
  uint64_t recover_last_v1(int fd, uint64_t first, uint64_t size, const std::string &path, uint64_t *kept);
  void open_active(uint64_t first_seq);
  // Deletes segments as the cursors and the bound allow; returns how many
  // bytes may be appended (UINT64_MAX when force).
  uint64_t make_room(uint64_t need, bool force);
  std::string segment_path(uint64_t first_seq) const;
  // When every output has confirmed every record: deletes every segment,
  // the active one too, and starts a new one. False when some record is
  // still unconfirmed (or the new segment cannot be made).
  bool reset_if_consumed();

  std::string dir_;
  uint64_t max_bytes_, segment_bytes_;
  Logger &logger_;
  int lock_fd_ = -1;
  OwnedFd cursors_fd_; // dir_/cursors, opened without following a link
  int active_fd_ = -1;
  uint64_t active_bytes_ = 0;
  bool unsynced_ = false;
  bool new_segment_failed_ = false; // logged once per run of failures
  std::chrono::steady_clock::time_point last_measure_{};
  std::atomic<uint64_t> disk_bound_{UINT64_MAX};
  std::chrono::steady_clock::time_point last_sync_{};
  std::string buffer_;       // one batch, encoded
  std::vector<size_t> ends_; // where each record's entry ends in buffer_

  mutable std::mutex mutex_; // segments_ and cursors_
  std::deque<Segment> segments_;
  std::vector<std::unique_ptr<JournalCursor>> cursors_;
  std::atomic<uint64_t> end_seq_{1}, total_bytes_{0}, handed_seq_{1};
  StringInterner strings_;
};

// Reads the journal sequentially for one output (its own thread).
class JournalReader {
public:
  explicit JournalReader(Journal &journal) : journal_(journal) {}
  ~JournalReader();
  JournalReader(const JournalReader &) = delete;
  JournalReader &operator=(const JournalReader &) = delete;

  // Reads at most max records numbered from `from` up to (not including)
  // limit into out (cleared). Returns the number of the first record read,
  // or where reading would go on: more than from when records from `from`
  // on were deleted (lost for this reader) or unreadable.
  uint64_t read(uint64_t from, uint64_t limit, size_t max, std::vector<Record> &out);

private:
  // The next entry of the open segment, at or after next_offset_.
  struct Entry {
    uint64_t seq = 0;
    uint32_t len = 0;
    const uint8_t *body = nullptr;
    uint64_t end = 0; // where the entry after it starts
  };
  enum class Step {
    kEntry,      // entry is the next readable one (its seq may skip unreadable ones)
    kWait,       // nothing more yet (the active segment)
    kSegmentEnd, // nothing more can be read in this finished segment
  };
  Step next_v1(const Journal::SegmentRef &seg, Entry &entry);
  Step next_v2(const Journal::SegmentRef &seg, Entry &entry);
  // Logs damage once per place (a reader may scan a segment again).
  void log_damage(const Journal::SegmentRef &seg, uint64_t offset, const std::string &what);
  bool open_segment(const Journal::SegmentRef &seg);
  // Makes [offset, offset+n) of the open segment available in buf_; false
  // at the end of what the file holds.
  const uint8_t *bytes_at(uint64_t offset, size_t n);

  Journal &journal_;
  int fd_ = -1;
  uint64_t seg_first_ = 0;
  uint64_t next_seq_ = 0, next_offset_ = 0; // position in the open segment
  std::string buf_;
  uint64_t buf_offset_ = 0;
  size_t buf_len_ = 0;
  uint64_t logged_segment_ = UINT64_MAX, logged_offset_ = UINT64_MAX;
};

} // namespace sink
