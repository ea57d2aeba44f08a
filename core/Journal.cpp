#include "Journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>

#include "OwnedFd.h"
#include "RecordCodec.h"

namespace sink {
namespace {

constexpr char kSegmentMagic[8] = {'S', 'I', 'N', 'K', 'J', 'N', 'L', '\0'};
constexpr char kCursorMagic[8] = {'S', 'I', 'N', 'K', 'C', 'U', 'R', '1'};
// Version 1 entries: [u32 length][u32 crc32 of seq+body][u64 seq][body].
// Version 2 entries start with a magic and check their header on its own,
// so a reader can find the next entry after damage (see EntryV2).
constexpr uint32_t kFormatVersionV1 = 1;
constexpr uint32_t kFormatVersion = 2; // what this sink writes
constexpr size_t kSegmentHeader = 24;
constexpr size_t kEntryHeaderV1 = 16;
constexpr size_t kCursorSize = 32;
// Larger than any record can be (capture and wire are at most 16 MiB each).
constexpr uint32_t kMaxEntry = 256u << 20;
constexpr size_t kReadChunk = 1 << 20;

void put_le(char *p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i)
    p[i] = static_cast<char>(v >> (8 * i));
}
uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i)
    v |= uint64_t(p[i]) << (8 * i);
  return v;
}
uint32_t crc(const void *p, size_t n, uint32_t start = 0) {
  return static_cast<uint32_t>(crc32(start, static_cast<const Bytef *>(p), static_cast<uInt>(n)));
}
std::string errno_text() { return std::strerror(errno); }

bool write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// A version 1 entry's crc covers its sequence number and its body.
uint32_t entry_crc(const uint8_t *seq_bytes, const uint8_t *body, size_t len) {
  return crc(body, len, crc(seq_bytes, 8));
}

// Version 2 entry: [magic "SJE\xb7"][u32 body length][u64 seq][u32 crc32 of
// the 16 bytes before it][u32 crc32 of the body][body]. A flipped length or
// sequence number fails the header crc instead of misplacing what follows.
constexpr uint8_t kEntryMagic[4] = {'S', 'J', 'E', 0xb7};
constexpr size_t kEntryHeader = 24;

void encode_entry_header(char *h, uint64_t seq, const std::string &body) {
  std::memcpy(h, kEntryMagic, 4);
  put_le(h + 4, body.size(), 4);
  put_le(h + 8, seq, 8);
  put_le(h + 16, crc(h, 16), 4);
  put_le(h + 20, crc(body.data(), body.size()), 4);
}

// "N records (FROM to TO) cannot be read" for the records [from, to).
std::string missing_records(uint64_t from, uint64_t to) {
  if (to <= from) return "no record is missing";
  return (to - from == 1 ? "1 record (" : std::to_string(to - from) + " records (") + std::to_string(from) +
         " to " + std::to_string(to - 1) + ") cannot be read";
}

// Gives [offset, offset+n) of a segment file, or null past its end.
using ByteSource = std::function<const uint8_t *(uint64_t offset, size_t n)>;

struct EntryV2 {
  uint64_t offset = 0, seq = 0;
  uint32_t len = 0;
  const uint8_t *body = nullptr; // valid until the source is read again
  // Magic and header crc hold: offset, len and seq are what was written
  // there, even when the entry is out of range or its body is damaged.
  bool header_ok = false;
  uint64_t end() const { return offset + kEntryHeader + len; }
};

enum class EntryCheck { kValid, kShort, kBad };

// The version 2 entry at offset, numbered in [min_seq, max_seq).
EntryCheck entry_v2_at(const ByteSource &bytes, uint64_t offset, uint64_t min_seq, uint64_t max_seq,
                       EntryV2 &e) {
  e.header_ok = false;
  const uint8_t *h = bytes(offset, kEntryHeader);
  if (!h) return EntryCheck::kShort;
  if (std::memcmp(h, kEntryMagic, 4) != 0 || crc(h, 16) != get_le(h + 16, 4)) return EntryCheck::kBad;
  e.offset = offset;
  e.len = static_cast<uint32_t>(get_le(h + 4, 4));
  e.seq = get_le(h + 8, 8);
  const uint32_t body_crc = static_cast<uint32_t>(get_le(h + 20, 4));
  if (e.len > kMaxEntry) return EntryCheck::kBad;
  e.header_ok = true;
  if (e.seq < min_seq || e.seq >= max_seq) return EntryCheck::kBad;
  e.body = bytes(offset + kEntryHeader, e.len);
  if (!e.body) return EntryCheck::kShort;
  return crc(e.body, e.len) == body_crc ? EntryCheck::kValid : EntryCheck::kBad;
}

// The first valid entry after the bad one at offset, or none. When the bad
// entry's own header holds, the search starts past its body: a body is a
// captured payload and may hold anything, a well-formed entry too, which
// must never be taken for a record. bad is what entry_v2_at left there.
bool next_entry_v2(const ByteSource &bytes, uint64_t offset, const EntryV2 &bad, uint64_t min_seq,
                   uint64_t max_seq, EntryV2 &e) {
  const uint64_t from = bad.header_ok && bad.offset == offset ? bad.end() : offset + 1;
  for (uint64_t at = from;; ++at) {
    // Look for the magic's first byte a block at a time.
    const uint8_t *p = bytes(at, 1);
    if (!p) return false;
    if (*p != kEntryMagic[0]) continue;
    if (entry_v2_at(bytes, at, min_seq, max_seq, e) == EntryCheck::kValid) return true;
  }
}

// True when a format 1 entry numbered first follows the segment header.
bool first_entry_is_v1(int fd, uint64_t first) {
  uint8_t eh[kEntryHeaderV1];
  if (::pread(fd, eh, sizeof eh, kSegmentHeader) != static_cast<ssize_t>(sizeof eh) ||
      get_le(eh + 8, 8) != first || get_le(eh, 4) > kMaxEntry)
    return false;
  std::string body(get_le(eh, 4), '\0');
  return ::pread(fd, body.data(), body.size(), kSegmentHeader + kEntryHeaderV1) ==
             static_cast<ssize_t>(body.size()) &&
         entry_crc(eh + 8, reinterpret_cast<const uint8_t *>(body.data()), body.size()) == get_le(eh + 4, 4);
}

// Reads a whole file through pread, a block at a time.
class FileBytes {
public:
  explicit FileBytes(int fd) : fd_(fd) {}
  const uint8_t *operator()(uint64_t offset, size_t n) {
    if (offset >= buf_offset_ && offset + n <= buf_offset_ + buf_len_)
      return reinterpret_cast<const uint8_t *>(buf_.data()) + (offset - buf_offset_);
    buf_.resize(std::max(n, kReadChunk));
    const ssize_t got = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(offset));
    buf_offset_ = offset;
    buf_len_ = got > 0 ? static_cast<size_t>(got) : 0;
    return buf_len_ < n ? nullptr : reinterpret_cast<const uint8_t *>(buf_.data());
  }

private:
  int fd_;
  std::string buf_;
  uint64_t buf_offset_ = 0;
  size_t buf_len_ = 0;
};

} // namespace

// ---- JournalCursor ---------------------------------------------------------

JournalCursor::JournalCursor(std::string name, std::string path, int fd, uint64_t position,
                             uint64_t crash_seq, uint32_t crash_count)
    : name_(std::move(name)), path_(std::move(path)), fd_(fd), position_(position), stored_(position),
      crash_seq_(crash_seq), crash_count_(crash_count) {}

JournalCursor::~JournalCursor() {
  if (fd_ >= 0) ::close(fd_);
}

void JournalCursor::store(uint64_t position, uint64_t crash_seq, uint32_t crash_count) const noexcept {
  char b[kCursorSize];
  std::memcpy(b, kCursorMagic, 8);
  put_le(b + 8, position, 8);
  put_le(b + 16, crash_seq, 8);
  put_le(b + 24, crash_count, 4);
  put_le(b + 28, crc(b, 28), 4);
  // One 32-byte pwrite: a process crash never leaves half of it.
  [[maybe_unused]] ssize_t w = ::pwrite(fd_, b, sizeof b, 0);
}

namespace {
// How often a moving cursor is written to its file at most.
constexpr auto kStoreInterval = std::chrono::milliseconds(50);
} // namespace

void JournalCursor::advance(uint64_t next) {
  position_ = next;
  // A crash marker is kept until the output gets past that record.
  if (crash_count_ && next > crash_seq_) crash_count_ = 0, crash_seq_ = 0;
  if (std::chrono::steady_clock::now() - last_store_ >= kStoreInterval) store_now();
}

void JournalCursor::store_now() {
  const uint64_t p = position_;
  if (p == stored_ && crash_count_ == 0) return;
  store(p, crash_seq_, crash_count_);
  stored_ = p;
  last_store_ = std::chrono::steady_clock::now();
}

void JournalCursor::skip_to(uint64_t next) {
  uint64_t seen = skip_to_;
  while (seen < next && !skip_to_.compare_exchange_weak(seen, next)) {
  }
}

void JournalCursor::mark_crash(uint64_t seq) const noexcept {
  const uint32_t count = (crash_count_ && crash_seq_ == seq) ? crash_count_ + 1 : 1;
  store(position_, seq, count);
  ::fdatasync(fd_);
}

// ---- Journal -----------------------------------------------------------------

Journal::Journal(const std::string &dir, uint64_t max_bytes, Logger &logger)
    : dir_(dir), max_bytes_(max_bytes), segment_bytes_(segment_size(max_bytes)), logger_(logger) {
  std::error_code ec;
  std::filesystem::create_directories(dir_ + "/cursors", ec);
  if (ec) throw JournalError("journal.dir: cannot create \"" + dir_ + "/cursors\": " + ec.message());
  // The user of a privilege drop may write this directory while root runs:
  // hold cursors/ by descriptor, and follow no link to any file in here.
  cursors_fd_ = OwnedFd(::open((dir_ + "/cursors").c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (cursors_fd_.fd < 0)
    throw JournalError("journal.dir: \"" + dir_ + "/cursors\" is not a directory sink can use (" +
                       errno_text() + "; a symbolic link there is refused)");
  const std::string lock = dir_ + "/lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) throw JournalError("journal.dir: cannot write in \"" + dir_ + "\": " + errno_text());
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    throw JournalError("journal.dir: \"" + dir_ +
                       "\" is in use by another sink (each needs its own journal)");
  recover();
  // A disk smaller than max_bytes bounds the journal too; segments are
  // sized by what fits, so deleting the oldest frees a useful part of it.
  measure_disk();
  segment_bytes_ = segment_size(limit());
}

uint64_t Journal::segment_size(uint64_t bound) { return std::clamp<uint64_t>(bound / 8, 16 << 10, 64 << 20); }

void Journal::measure_disk() {
  struct statvfs fs {};
  if (::statvfs(dir_.c_str(), &fs) != 0) return;
  const uint64_t size = uint64_t(fs.f_blocks) * fs.f_frsize, avail = uint64_t(fs.f_bavail) * fs.f_frsize;
  // Left free: room for cursor files and what file sizes round up to, and
  // for whatever else shares the disk. A disk already short of that still
  // lends the journal half of what is left, so records keep flowing.
  const uint64_t reserve = std::min<uint64_t>(size / 64, 64ull << 20) + 4 * uint64_t(fs.f_frsize);
  disk_bound_ = total_bytes_ + (avail > 2 * reserve ? avail - reserve : avail / 2);
  last_measure_ = std::chrono::steady_clock::now();
}

Journal::~Journal() {
  if (active_fd_ >= 0) {
    ::fdatasync(active_fd_);
    ::close(active_fd_);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string Journal::segment_path(uint64_t first_seq) const {
  char name[64];
  std::snprintf(name, sizeof name, "/seg-%020llu.journal", static_cast<unsigned long long>(first_seq));
  return dir_ + name;
}

uint32_t Journal::segment_version(int fd, uint64_t first, const std::string &path) {
  uint8_t h[kSegmentHeader];
  const bool whole = ::pread(fd, h, sizeof h, 0) == static_cast<ssize_t>(sizeof h);
  if (whole && std::memcmp(h, kSegmentMagic, 8) == 0) {
    const uint32_t version = static_cast<uint32_t>(get_le(h + 8, 4));
    if (version != kFormatVersion && version != kFormatVersionV1)
      throw JournalError("journal.dir: \"" + path + "\" has format version " + std::to_string(version) +
                         "; this sink reads versions " + std::to_string(kFormatVersionV1) + " and " +
                         std::to_string(kFormatVersion));
    if (get_le(h + 16, 8) == first) return version;
  }
  // A damaged header: the entries tell the version (the name tells the
  // first record), so nothing still readable is given up. The entry right
  // after the header is tried in both formats before the segment is
  // searched for a later entry of format 2: a search can find one inside a
  // format 1 record's captured payload.
  FileBytes file(fd);
  const ByteSource bytes = std::ref(file);
  EntryV2 e, bad;
  uint32_t version = 0;
  if (entry_v2_at(bytes, kSegmentHeader, first, UINT64_MAX, bad) == EntryCheck::kValid)
    version = kFormatVersion;
  else if (first_entry_is_v1(fd, first))
    version = kFormatVersionV1;
  else if (next_entry_v2(bytes, kSegmentHeader, bad, first, UINT64_MAX, e))
    version = kFormatVersion;
  if (version)
    logger_.error("journal: the header of \"" + path + "\" is damaged; its entries are read without it");
  return version;
}

uint64_t Journal::recover_last_v2(int fd, uint64_t first, uint64_t size, const std::string &path,
                                  uint64_t *kept) {
  FileBytes file(fd);
  const ByteSource bytes = std::ref(file);
  uint64_t offset = kSegmentHeader, seq = first;
  // No segment holds more entries than its size allows: a number past that
  // was never written here.
  const uint64_t max_seq = first + (size > kSegmentHeader ? (size - kSegmentHeader) / kEntryHeader : 0);
  EntryV2 e, bad;
  for (;;) {
    const EntryCheck check = entry_v2_at(bytes, offset, seq, max_seq, bad);
    if (check == EntryCheck::kValid) {
      e = bad;
    } else {
      // An entry whose header holds but whose body runs past the end is a
      // torn append: nothing after it was written.
      if (check == EntryCheck::kShort && bad.header_ok) break;
      // Damage, or the end: go on at the next valid entry if there is one.
      if (!next_entry_v2(bytes, offset, bad, seq, max_seq, e)) break;
      logger_.error("journal: " + std::to_string(e.offset - offset) + " damaged bytes in \"" + path + "\"; " +
                    missing_records(seq, e.seq) + (e.seq == seq ? "" : "; outputs count them lost") +
                    ", the records after them are kept");
    }
    offset = e.end();
    seq = e.seq + 1;
  }
  *kept = offset;
  if (offset < size) {
    // No entry follows: a torn append or blocks a power cut left unwritten.
    logger_.warn(
        "journal: cut " + std::to_string(size - offset) + " bytes at the end of \"" + path +
        "\" that hold no whole entry (a torn append or a power cut; the records before them are kept)");
    if (::ftruncate(fd, static_cast<off_t>(offset)) != 0)
      throw JournalError("journal.dir: cannot cut \"" + path + "\": " + errno_text());
  }
  return seq;
}

uint64_t Journal::recover_last_v1(int fd, uint64_t first, uint64_t size, const std::string &path,
                                  uint64_t *kept) {
  // The last segment may end in a torn entry (a crash mid-append): cut it.
  // A bad entry with more data after it is damage, not a torn tail: it is
  // kept (readers count what they cannot read as lost) and new records are
  // numbered past anything the rest could hold (version 1 entries cannot be
  // found again after damage).
  uint64_t offset = kSegmentHeader, seq = first;
  std::string body;
  bool damaged = false;
  for (;;) {
    uint8_t eh[kEntryHeaderV1];
    if (::pread(fd, eh, sizeof eh, static_cast<off_t>(offset)) != static_cast<ssize_t>(sizeof eh)) break;
    const uint32_t len = static_cast<uint32_t>(get_le(eh, 4));
    const bool fits = len <= kMaxEntry && offset + kEntryHeaderV1 + len <= size;
    bool ok = fits && get_le(eh + 8, 8) == seq;
    if (ok) {
      body.resize(len);
      ok = ::pread(fd, body.data(), len, static_cast<off_t>(offset + kEntryHeaderV1)) ==
               static_cast<ssize_t>(len) &&
           entry_crc(eh + 8, reinterpret_cast<const uint8_t *>(body.data()), len) == get_le(eh + 4, 4);
    }
    if (!ok) {
      damaged = fits && offset + kEntryHeaderV1 + len < size;
      break;
    }
    offset += kEntryHeaderV1 + len;
    ++seq;
  }
  if (damaged) {
    logger_.error("journal: damaged entry at record " + std::to_string(seq) + " in \"" + path + "\" (" +
                  std::to_string(size - offset) +
                  " bytes after it are kept but cannot be read; outputs count those records lost)");
    seq += (size - offset) / kEntryHeaderV1 + 1; // more than the rest can hold
    offset = size;
  } else if (offset < size) {
    logger_.warn("journal: cut " + std::to_string(size - offset) + " bytes of a torn entry at the end of \"" +
                 path + "\" (left by a crash; the records before it are kept)");
    if (::ftruncate(fd, static_cast<off_t>(offset)) != 0)
      throw JournalError("journal.dir: cannot cut \"" + path + "\": " + errno_text());
  }
  *kept = offset;
  return seq;
}

void Journal::recover() {
  std::vector<std::pair<uint64_t, std::string>> found;
  for (const auto &e : std::filesystem::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    if (name.size() != 32 || name.rfind("seg-", 0) != 0 || name.substr(24) != ".journal") continue;
    if (!e.is_regular_file() || e.is_symlink()) {
      // sink writes only regular files here; a link or FIFO is not its own.
      logger_.warn("journal: ignoring \"" + e.path().string() + "\": not a regular file");
      continue;
    }
    const std::string digits = name.substr(4, 20);
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits > "18446744073709551615") {
      logger_.warn("journal: ignoring \"" + e.path().string() + "\": not a segment name this sink writes");
      continue;
    }
    found.emplace_back(std::stoull(digits), e.path().string());
  }
  std::sort(found.begin(), found.end());
  uint64_t next = 1;
  for (size_t i = 0; i < found.size(); ++i) {
    const auto &[first, path] = found[i];
    const OwnedFd owned(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    const int fd = owned.fd;
    if (fd < 0) throw JournalError("journal.dir: cannot open \"" + path + "\": " + errno_text());
    const uint32_t version = segment_version(fd, first, path);
    if (version == 0) {
      // Neither a header nor any entry reached the disk: it holds nothing.
      logger_.warn("journal: removing \"" + path +
                   "\": no valid header and no entry (a crash while it was created)");
      ::unlink(path.c_str());
      continue;
    }
    const uint64_t size = static_cast<uint64_t>(::lseek(fd, 0, SEEK_END));
    uint64_t kept = size;
    if (i + 1 == found.size())
      next = version == kFormatVersionV1 ? recover_last_v1(fd, first, size, path, &kept)
                                         : recover_last_v2(fd, first, size, path, &kept);
    segments_.push_back({first, path, kept, version});
    total_bytes_ += kept;
    if (i + 1 < found.size()) next = found[i + 1].first;
  }
  // Cursors: none may point beyond what the journal holds (a power cut can
  // lose the last second of appends but not the cursor that passed them).
  uint64_t min_position = UINT64_MAX, max_position = 0;
  for (const auto &e : std::filesystem::directory_iterator(dir_ + "/cursors")) {
    if (e.path().extension() != ".cursor") continue;
    uint8_t b[kCursorSize];
    const int fd = ::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    const bool ok = ::pread(fd, b, sizeof b, 0) == static_cast<ssize_t>(sizeof b) &&
                    std::memcmp(b, kCursorMagic, 8) == 0 && crc(b, 28) == get_le(b + 28, 4);
    ::close(fd);
    if (ok && segments_.empty()) next = std::max(next, get_le(b + 8, 8));
    // An unreadable cursor holds everything (it restarts at the oldest record).
    min_position = std::min(min_position, ok ? get_le(b + 8, 8) : 0);
    max_position = std::max(max_position, ok ? get_le(b + 8, 8) : 0);
  }
  // Segments every output has passed are freed now, before a new one needs
  // space (a journal that filled its disk must be able to start again).
  if (min_position != UINT64_MAX) free_segments_passed_by(min_position, next);
  // A segment that holds no entry is replaced by the new active one.
  if (!segments_.empty() && segments_.back().first_seq == next && segments_.back().bytes <= kSegmentHeader) {
    ::unlink(segments_.back().path.c_str());
    total_bytes_ -= segments_.back().bytes;
    segments_.pop_back();
  }
  end_seq_ = next;
  handed_seq_ = next; // what is on disk now is read from disk
  try {
    open_active(next);
  } catch (const JournalError &e) {
    // A full disk must not stop the start: appends go on at the end of the
    // newest segment (its torn tail was cut above), and room is made for
    // them as outputs move on.
    if (continue_last_segment()) {
      logger_.warn("journal: " + std::string(e.what()) + "; appending to the newest segment instead");
      return;
    }
    // The newest segment is of the former format: room comes from what
    // some output has passed, lost for the outputs still inside it.
    const uint64_t freed = free_segments_passed_by(max_position, next);
    if (freed == 0) throw;
    logger_.warn("journal: " + std::string(e.what()) + "; freed " + std::to_string(freed) +
                 " bytes some output had passed (lost for the outputs that had not)");
    open_active(next);
  }
}

uint64_t Journal::free_segments_passed_by(uint64_t position, uint64_t next) {
  uint64_t freed = 0;
  while (!segments_.empty()) {
    const uint64_t end = segments_.size() > 1 ? segments_[1].first_seq : next;
    if (position < end) break;
    ::unlink(segments_.front().path.c_str());
    freed += segments_.front().bytes;
    total_bytes_ -= segments_.front().bytes;
    segments_.pop_front();
  }
  return freed;
}

void Journal::open_active(uint64_t first_seq) {
  // The new segment is made before the old one is closed: when it cannot be
  // (a full disk), appends go on in the old one.
  const std::string path = segment_path(first_seq);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw JournalError("journal.dir: cannot create \"" + path + "\": " + errno_text());
  char h[kSegmentHeader] = {};
  std::memcpy(h, kSegmentMagic, 8);
  put_le(h + 8, kFormatVersion, 4);
  put_le(h + 12, kRecordCodecVersion, 4);
  put_le(h + 16, first_seq, 8);
  if (!write_all(fd, h, sizeof h) || ::fdatasync(fd) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    ::unlink(path.c_str());
    throw JournalError("journal.dir: cannot write \"" + path + "\": " + why);
  }
  // The new file's name must survive a power cut too.
  if (const int d = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  if (active_fd_ >= 0) {
    ::fdatasync(active_fd_);
    ::close(active_fd_);
  }
  active_fd_ = fd;
  active_bytes_ = kSegmentHeader;
  std::lock_guard<std::mutex> lock(mutex_);
  segments_.push_back({first_seq, path, kSegmentHeader, kFormatVersion});
  total_bytes_ += kSegmentHeader;
}

bool Journal::continue_last_segment() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (segments_.empty() || segments_.back().version != kFormatVersion) return false;
  const int fd = ::open(segments_.back().path.c_str(), O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  active_fd_ = fd;
  active_bytes_ = segments_.back().bytes;
  return true;
}

JournalCursor &Journal::cursor(const std::string &name) {
  const std::string path = dir_ + "/cursors/" + name + ".cursor";
  const int fd =
      ::openat(cursors_fd_.fd, (name + ".cursor").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) throw JournalError("journal.dir: cannot open \"" + path + "\": " + errno_text());
  uint8_t b[kCursorSize];
  uint64_t position = end_seq_, crash_seq = 0;
  uint32_t crash_count = 0;
  bool fresh = true;
  struct stat st {};
  const bool existed = ::fstat(fd, &st) == 0 && st.st_size > 0;
  if (::pread(fd, b, sizeof b, 0) == static_cast<ssize_t>(sizeof b) && std::memcmp(b, kCursorMagic, 8) == 0 &&
      crc(b, 28) == get_le(b + 28, 4)) {
    fresh = false;
    position = std::min<uint64_t>(get_le(b + 8, 8), end_seq_);
    crash_seq = get_le(b + 16, 8);
    crash_count = static_cast<uint32_t>(get_le(b + 24, 4));
  } else if (existed) {
    // Damaged: deliver again from the oldest record rather than skip any.
    std::lock_guard<std::mutex> lock(mutex_);
    position = segments_.empty() ? end_seq_.load() : segments_.front().first_seq;
    logger_.warn("journal: the position of output \"" + name + "\" (" + path +
                 ") is unreadable; it gets every record in the journal again, from record " +
                 std::to_string(position));
  }
  auto c = std::make_unique<JournalCursor>(name, path, fd, position, crash_seq, crash_count);
  if (fresh) { // a new output starts at the journal's end (a damaged one at its start)
    c->store(position, 0, 0);
    ::fdatasync(fd);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  cursors_.push_back(std::move(c));
  return *cursors_.back();
}

void Journal::release_cursors_except(const std::vector<std::string> &names) {
  for (const auto &e : std::filesystem::directory_iterator(dir_ + "/cursors")) {
    if (e.path().extension() != ".cursor") continue;
    const std::string name = e.path().stem().string();
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    uint8_t b[kCursorSize];
    std::string pending = "an unknown number of";
    if (const int fd = ::open(e.path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC); fd >= 0) {
      if (::pread(fd, b, sizeof b, 0) == static_cast<ssize_t>(sizeof b) &&
          std::memcmp(b, kCursorMagic, 8) == 0 && crc(b, 28) == get_le(b + 28, 4))
        pending = std::to_string(end_seq_ > get_le(b + 8, 8) ? end_seq_ - get_le(b + 8, 8) : 0);
      ::close(fd);
    }
    std::error_code ec;
    std::filesystem::remove(e.path(), ec);
    logger_.warn("journal: released the position of output \"" + name +
                 "\", which is no longer configured; " + pending +
                 " records it had not confirmed will not be delivered to it (give outputs a name: to keep "
                 "their position when the config changes)");
  }
}

std::vector<std::string> Journal::own_paths() const {
  std::vector<std::string> paths{dir_, dir_ + "/lock", dir_ + "/cursors"};
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto &g : segments_)
    paths.push_back(g.path);
  for (const auto &c : cursors_)
    paths.push_back(dir_ + "/cursors/" + c->name() + ".cursor");
  return paths;
}

uint64_t Journal::records() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return segments_.empty() ? 0 : end_seq_ - segments_.front().first_seq;
}

Journal::SegmentRef Journal::locate(uint64_t seq) const {
  std::lock_guard<std::mutex> lock(mutex_);
  SegmentRef ref;
  if (segments_.empty()) return ref;
  // The last segment starting at or before seq; the oldest if none does.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), seq,
                             [](uint64_t s, const Segment &g) { return s < g.first_seq; });
  if (it != segments_.begin()) --it;
  ref.first_seq = it->first_seq;
  ref.path = it->path;
  ref.version = it->version;
  if (std::next(it) != segments_.end()) ref.end_seq = std::next(it)->first_seq;
  return ref;
}

uint64_t Journal::make_room(uint64_t need, bool force) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (;;) {
    if (segments_.size() < 2) break;
    const uint64_t end = segments_[1].first_seq;
    bool all_past = true, any_past = cursors_.empty();
    for (const auto &c : cursors_) {
      // What a restart would go on from: a segment is freed only once
      // every stored position has passed it.
      all_past = all_past && c->stored_position() >= end;
      any_past = any_past || c->stored_position() >= end;
    }
    // Consumed by everyone: always freed. Otherwise only for room, and only
    // when some output has passed it: a lagging output then loses these
    // records (it sees the gap when it reads), healthy ones lose nothing.
    const bool full = total_bytes_ + need > limit();
    if (!all_past && !(full && any_past)) break;
    for (const auto &c : cursors_)
      if (c->stored_position() < end) c->skip_to(end);
    ::unlink(segments_.front().path.c_str());
    total_bytes_ -= segments_.front().bytes;
    segments_.pop_front();
  }
  if (force) return UINT64_MAX;
  const uint64_t bound = limit();
  return total_bytes_ < bound ? bound - total_bytes_ : 0;
}

bool Journal::reset_if_consumed() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_bytes_ <= kSegmentHeader) return false; // nothing to free
    for (const auto &c : cursors_)
      if (c->stored_position() < end_seq_) return false;
    ::close(active_fd_);
    active_fd_ = -1;
    for (const auto &g : segments_)
      ::unlink(g.path.c_str());
    segments_.clear();
    total_bytes_ = 0;
  }
  try {
    open_active(end_seq_);
  } catch (const JournalError &) {
    return false;
  }
  return true;
}

Journal::Append Journal::append(const std::vector<Record> &batch, size_t *count, uint64_t *first_seq,
                                bool force, std::string *error) {
  *count = 0;
  if (batch.empty()) return Append::kDone;
  buffer_.clear();
  ends_.clear();
  uint64_t seq = end_seq_;
  std::string body;
  for (const auto &r : batch) {
    body.clear();
    encode_record(r, body);
    char h[kEntryHeader];
    encode_entry_header(h, seq, body);
    buffer_.append(h, sizeof h).append(body);
    ends_.push_back(buffer_.size());
    ++seq;
  }
  // A full active segment is closed first, so make_room can delete it
  // once every output has passed it.
  start_segment_if_full();
  uint64_t room = make_room(buffer_.size(), force);
  // The active segment is never deleted while written to: when it alone is
  // in the way and every output has confirmed all of it, start afresh.
  if (room < ends_[0] && reset_if_consumed()) room = make_room(buffer_.size(), force);
  // New segments on the way take a header each: keep room for them.
  if (!force) {
    const uint64_t headers = kSegmentHeader * (1 + buffer_.size() / segment_bytes_);
    room = room > headers ? room - headers : 0;
  }
  // As many whole records as fit; one record larger than half the bound
  // goes in anyway when the journal is otherwise empty: it could never fit.
  size_t n = static_cast<size_t>(std::upper_bound(ends_.begin(), ends_.end(), room) - ends_.begin());
  if (n == 0 && ends_[0] > max_bytes_ / 2 && records() == 0) n = 1;
  if (n == 0) return Append::kFull;
  *first_seq = end_seq_;
  // Written segment by segment, so no segment grows far past its size and
  // the oldest can be freed in useful steps.
  size_t done = 0;
  while (done < n) {
    start_segment_if_full();
    const size_t from = done ? ends_[done - 1] : 0;
    size_t upto = done + 1;
    while (upto < n && active_bytes_ + (ends_[upto] - from) <= segment_bytes_)
      ++upto;
    const size_t bytes = ends_[upto - 1] - from;
    if (!write_all(active_fd_, buffer_.data() + from, bytes)) {
      const int err = errno;
      *error = "cannot write to the journal in \"" + dir_ + "\": " + std::strerror(err);
      // Leave no partial entry behind.
      [[maybe_unused]] int rc = ::ftruncate(active_fd_, static_cast<off_t>(active_bytes_));
      // A full disk before max_bytes: the journal is as large as it can be
      // now. Room comes from what some output passed (lost for the others
      // still inside it) or what every output confirmed.
      if (err == ENOSPC && make_room_on_full_disk(bytes)) {
        error->clear();
        continue;
      }
      break;
    }
    active_bytes_ += bytes;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      segments_.back().bytes += bytes;
      total_bytes_ += bytes;
    }
    end_seq_ = end_seq_ + (upto - done); // readers may now read them
    done = upto;
  }
  *count = done;
  unsynced_ = unsynced_ || done > 0;
  return done > 0 || error->empty() ? Append::kDone : Append::kFailed;
}

void Journal::start_segment_if_full() {
  if (active_bytes_ < segment_bytes_) return;
  try {
    open_active(end_seq_);
  } catch (const JournalError &e) {
    // The full segment stays active (a full disk): it grows past its size
    // until room is made.
    if (!new_segment_failed_)
      logger_.warn("journal: " + std::string(e.what()) + "; the current segment goes on");
    new_segment_failed_ = true;
    return;
  }
  new_segment_failed_ = false;
  measure_disk();
}

bool Journal::make_room_on_full_disk(uint64_t need) {
  disk_bound_ = total_bytes_.load();
  const uint64_t before = total_bytes_;
  make_room(need, false);
  return total_bytes_ < before || reset_if_consumed();
}

void Journal::sync_if_due() {
  const auto now = std::chrono::steady_clock::now();
  // The disk fills and empties by others too: look again now and then.
  if (now - last_measure_ >= std::chrono::seconds(1)) measure_disk();
  if (!unsynced_ || now - last_sync_ < std::chrono::seconds(1)) return;
  ::fdatasync(active_fd_);
  unsynced_ = false;
  last_sync_ = now;
}

// ---- JournalReader -----------------------------------------------------------

JournalReader::~JournalReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool JournalReader::open_segment(const Journal::SegmentRef &seg) {
  if (fd_ >= 0 && seg_first_ == seg.first_seq) return true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(seg.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd_ < 0) return false; // deleted meanwhile
  seg_first_ = seg.first_seq;
  next_seq_ = seg.first_seq;
  next_offset_ = kSegmentHeader;
  buf_len_ = 0;
  return true;
}

const uint8_t *JournalReader::bytes_at(uint64_t offset, size_t n) {
  if (offset >= buf_offset_ && offset + n <= buf_offset_ + buf_len_)
    return reinterpret_cast<const uint8_t *>(buf_.data()) + (offset - buf_offset_);
  buf_.resize(std::max(n, kReadChunk));
  ssize_t got = ::pread(fd_, buf_.data(), buf_.size(), static_cast<off_t>(offset));
  buf_offset_ = offset;
  buf_len_ = got > 0 ? static_cast<size_t>(got) : 0;
  if (buf_len_ < n) return nullptr;
  return reinterpret_cast<const uint8_t *>(buf_.data());
}

JournalReader::Step JournalReader::next_v1(const Journal::SegmentRef &seg, Entry &entry) {
  const bool active = seg.end_seq == UINT64_MAX;
  const uint8_t *h = bytes_at(next_offset_, kEntryHeaderV1);
  if (!h) return active ? Step::kWait : Step::kSegmentEnd;
  const uint32_t len = static_cast<uint32_t>(get_le(h, 4));
  const uint32_t want_crc = static_cast<uint32_t>(get_le(h + 4, 4));
  const uint64_t entry_seq = get_le(h + 8, 8);
  uint8_t seq_bytes[8];
  std::memcpy(seq_bytes, h + 8, 8);
  const uint8_t *body = len <= kMaxEntry ? bytes_at(next_offset_ + kEntryHeaderV1, len) : nullptr;
  if (body && entry_seq == next_seq_ && entry_crc(seq_bytes, body, len) == want_crc) {
    entry = {entry_seq, len, body, next_offset_ + kEntryHeaderV1 + len};
    return Step::kEntry;
  }
  if (active && !body) return Step::kWait; // still being written
  // Version 1 entries cannot be found again after damage: the rest of the
  // segment is unreadable.
  log_damage(seg, next_offset_,
             "the rest of that segment (records " + std::to_string(next_seq_) + " on) cannot be read");
  return active ? Step::kWait : Step::kSegmentEnd;
}

JournalReader::Step JournalReader::next_v2(const Journal::SegmentRef &seg, Entry &entry) {
  const bool active = seg.end_seq == UINT64_MAX;
  // Only whole entries are below the journal's end; nothing at or past the
  // next segment's first record belongs here.
  const uint64_t max_seq = active ? journal_.end_seq() : seg.end_seq;
  const ByteSource bytes = [this](uint64_t offset, size_t n) { return bytes_at(offset, n); };
  EntryV2 e, bad;
  const EntryCheck check = entry_v2_at(bytes, next_offset_, next_seq_, max_seq, bad);
  if (check == EntryCheck::kShort && active) return Step::kWait;
  if (check == EntryCheck::kValid) e = bad;
  if (check != EntryCheck::kValid) {
    // Damage (or the end of a finished segment): go on at the next entry;
    // none follows an entry cut short.
    const bool found = !(check == EntryCheck::kShort && bad.header_ok) &&
                       next_entry_v2(bytes, next_offset_, bad, next_seq_, max_seq, e);
    const uint64_t resume = found ? e.seq : seg.end_seq;
    // In the active segment nothing found yet may be an append under way.
    if (found || (!active && resume > next_seq_))
      log_damage(seg, next_offset_, missing_records(next_seq_, resume));
    if (!found) return active ? Step::kWait : Step::kSegmentEnd;
    next_offset_ = e.offset;
  }
  entry = {e.seq, e.len, e.body, e.end()};
  return Step::kEntry;
}

void JournalReader::log_damage(const Journal::SegmentRef &seg, uint64_t offset, const std::string &what) {
  if (seg.first_seq == logged_segment_ && offset == logged_offset_) return; // read again after a rewind
  logged_segment_ = seg.first_seq;
  logged_offset_ = offset;
  journal_.logger().error("journal: damaged entry in \"" + seg.path + "\" at byte " + std::to_string(offset) +
                          ": " + what + " (counted lost for the outputs that had not taken them)");
}

uint64_t JournalReader::read(uint64_t from, uint64_t limit, size_t max, std::vector<Record> &out) {
  out.clear();
  uint64_t seq = from, first = from;
  while (out.size() < max && seq < limit) {
    const auto seg = journal_.locate(seq);
    if (seg.path.empty()) break;
    if (seg.first_seq > seq) { // deleted before this reader got to it
      if (!out.empty()) break;
      seq = first = seg.first_seq;
      continue;
    }
    if (!open_segment(seg)) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      continue; // deleted between locate and open: locate again
    }
    if (next_seq_ > seq) { // going back (a failed flush): scan from the start
      next_seq_ = seg.first_seq;
      next_offset_ = kSegmentHeader;
    }
    Entry entry;
    const Step step = seg.version == kFormatVersionV1 ? next_v1(seg, entry) : next_v2(seg, entry);
    if (step == Step::kWait) break;
    if (step == Step::kSegmentEnd) { // the rest of a finished segment cannot be read
      if (!out.empty()) break;
      seq = first = seg.end_seq;
      continue;
    }
    if (entry.seq > seq) { // records [seq, entry.seq) cannot be read
      if (!out.empty()) break;
      seq = first = std::min(entry.seq, limit);
      if (entry.seq >= limit) break;
    }
    next_offset_ = entry.end;
    next_seq_ = entry.seq + 1;
    if (entry.seq < seq) continue;
    Record r;
    if (!decode_record(entry.body, entry.len, r, journal_.strings())) {
      log_damage(seg, entry.end,
                 "record " + std::to_string(entry.seq) + " passed its checksum but cannot be decoded");
      if (!out.empty()) break;
      seq = first = entry.seq + 1;
      continue;
    }
    if (out.empty()) first = entry.seq;
    out.push_back(std::move(r));
    seq = entry.seq + 1;
  }
  return out.empty() ? seq : first;
}

} // namespace sink
