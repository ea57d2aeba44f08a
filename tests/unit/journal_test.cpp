// The journal on its own: numbering, reading back across segments and
// restarts, cursors, the size bound, torn tails and the record encoding.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "Journal.h"
#include "RecordCodec.h"
#include "RecordFormat.h"
#include "RecordJson.h"

namespace {

// A scratch directory, removed with what it holds.
class TempDir {
public:
  TempDir() {
    char t[] = "/tmp/sink-journal-unit-XXXXXX";
    path_ = ::mkdtemp(t) ? t : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string &name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

std::string read_text(const std::string &path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

const std::string kGroup = "g";

sink::Record make_record(int i, size_t payload_bytes = 100) {
  sink::Record r;
  r.accept_unix_ns = 1000 + i;
  r.duration_ns = 7;
  r.group = &kGroup;
  r.transport = "tcp";
  r.sensor = "s";
  r.local = {"127.0.0.1", 80, false};
  r.remote = {"::1", static_cast<uint16_t>(i), true};
  r.listen_port = 81;
  std::snprintf(r.id.data(), r.id.size(), "00000000-0000-7000-8000-%012d", i);
  r.payload.assign(payload_bytes, static_cast<uint8_t>(i));
  r.total_bytes = 5000 + i;
  r.first_read_len = 3;
  r.wire = {1, 2, 0, 255};
  r.close_reason = SINK_CLOSE_CLIENT_RST;
  r.close_detail = "detail";
  sink::ExtraCollector(r, false).add_typed("k.str", SINK_VALUE_STRING, "v\0w", 3);
  int64_t n = -5;
  sink::ExtraCollector(r, false).add_typed("k.int", SINK_VALUE_INT, &n, sizeof n);
  return r;
}

void append_all(sink::Journal &j, int from, int to, size_t payload = 100) {
  std::vector<sink::Record> batch;
  for (int i = from; i < to; ++i)
    batch.push_back(make_record(i, payload));
  size_t count = 0;
  uint64_t first = 0;
  std::string error;
  ASSERT_EQ(j.append(batch, &count, &first, false, &error), sink::Journal::Append::kDone) << error;
  ASSERT_EQ(count, batch.size());
}

std::vector<sink::Record> read_all(sink::Journal &j, uint64_t from, uint64_t *first = nullptr) {
  sink::JournalReader reader(j);
  std::vector<sink::Record> all, part;
  uint64_t seq = from;
  for (;;) {
    const uint64_t got = reader.read(seq, j.end_seq(), 1000, part);
    if (first && all.empty()) *first = got;
    if (part.empty()) break;
    seq = got + part.size();
    for (auto &r : part)
      all.push_back(std::move(r));
  }
  return all;
}

} // namespace

TEST(RecordCodec, EveryFieldSurvivesTheRoundTrip) {
  const sink::Record r = make_record(42);
  std::string bytes;
  sink::encode_record(r, bytes);
  sink::StringInterner strings;
  sink::Record back;
  ASSERT_TRUE(
      sink::decode_record(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), back, strings));
  EXPECT_EQ(back.accept_unix_ns, r.accept_unix_ns);
  EXPECT_EQ(*back.group, "g");
  EXPECT_STREQ(back.transport, "tcp");
  EXPECT_STREQ(back.sensor, "s");
  EXPECT_EQ(back.remote.ip, "::1");
  EXPECT_TRUE(back.remote.v6);
  EXPECT_EQ(back.remote.port, 42);
  EXPECT_EQ(back.listen_port, 81);
  EXPECT_STREQ(back.id.data(), r.id.data());
  EXPECT_EQ(back.payload, r.payload);
  EXPECT_EQ(back.wire, r.wire);
  EXPECT_EQ(back.close_reason, SINK_CLOSE_CLIENT_RST);
  ASSERT_EQ(back.extras.size(), 2u);
  EXPECT_EQ(back.extras[0].bytes, std::string("v\0w", 3));
  EXPECT_EQ(back.extras[1].integer, -5);
  EXPECT_EQ(back.extras[1].text, "-5");
  // Every shorter prefix is refused, never misread.
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(sink::decode_record(reinterpret_cast<const uint8_t *>(bytes.data()), n, back, strings)) << n;
}

TEST(JournalFiles, RecordsAreNumberedAndReadBackAcrossSegmentsAndRestarts) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  {
    sink::Journal j(dir.file("j"), 4 << 20, log); // 512 KiB segments
    j.cursor("out");
    for (int i = 0; i < 40; ++i)
      append_all(j, i * 100, i * 100 + 100, 300);
    EXPECT_EQ(j.end_seq(), 4001u);
    auto all = read_all(j, 1);
    ASSERT_EQ(all.size(), 4000u);
    for (size_t i = 0; i < all.size(); i += 397)
      EXPECT_EQ(all[i].total_bytes, 5000 + i);
  }
  size_t segments = 0;
  for (const auto &e : std::filesystem::directory_iterator(dir.file("j")))
    segments += e.path().extension() == ".journal";
  EXPECT_GE(segments, 4u) << "written segment by segment";
  sink::Journal again(dir.file("j"), 4 << 20, log);
  EXPECT_EQ(again.end_seq(), 4001u) << "numbering goes on after a restart";
  EXPECT_EQ(again.cursor("out").position(), 1u) << "nothing confirmed";
  EXPECT_EQ(read_all(again, 3990).size(), 11u);
}

TEST(JournalFiles, ConsumedSegmentsAreFreedAndAFullJournalSaysSo) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  sink::Journal j(dir.file("j"), 1 << 20, log);
  auto &c = j.cursor("out");
  std::vector<sink::Record> batch;
  for (int i = 0; i < 20000; ++i)
    batch.push_back(make_record(i, 300));
  size_t count = 0;
  uint64_t first = 0;
  std::string error;
  EXPECT_EQ(j.append(batch, &count, &first, false, &error), sink::Journal::Append::kDone);
  EXPECT_GT(count, 0u);
  EXPECT_LT(count, batch.size()) << "only what fits in 1 MiB";
  EXPECT_LE(j.bytes(), 1u << 20);
  batch.erase(batch.begin(), batch.begin() + static_cast<long>(count));
  EXPECT_EQ(j.append(batch, &count, &first, false, &error), sink::Journal::Append::kFull);
  EXPECT_EQ(count, 0u);
  // The one output confirms everything: the space comes back.
  c.advance(j.end_seq());
  c.store_now();
  EXPECT_EQ(j.append(batch, &count, &first, false, &error), sink::Journal::Append::kDone);
  EXPECT_GT(count, 0u);
}

TEST(JournalFiles, AnOutputThatAloneHoldsItFullIsMovedPastWhatWasDeleted) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  sink::Journal j(dir.file("j"), 1 << 20, log);
  auto &fast = j.cursor("fast");
  auto &slow = j.cursor("slow");
  for (int round = 0; round < 30; ++round) {
    append_all(j, round * 200, round * 200 + 200, 300);
    fast.advance(j.end_seq());
    fast.store_now();
  }
  EXPECT_LE(j.bytes(), 1u << 20);
  EXPECT_GT(slow.skip_target(), 1u) << "the slow output must go on from later";
  uint64_t first = 0;
  auto rest = read_all(j, 1, &first);
  EXPECT_EQ(first, slow.skip_target()) << "reading from the deleted start begins at the oldest kept";
  EXPECT_EQ(first + rest.size(), j.end_seq());
}

TEST(JournalFiles, ATornTailIsCutAndACursorBeyondTheEndIsPulledBack) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    auto &c = j.cursor("out");
    j.cursor("slow"); // confirms nothing: every record stays
    append_all(j, 0, 10);
    c.advance(11); // it confirmed all ten
    c.store_now();
  }
  std::string newest;
  for (const auto &e : std::filesystem::directory_iterator(dir.file("j")))
    if (e.path().extension() == ".journal" && e.path().string() > newest) newest = e.path().string();
  const auto size = std::filesystem::file_size(newest);
  std::filesystem::resize_file(newest, size - 5); // the last entry torn
  sink::Journal j(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(j.end_seq(), 10u) << "the torn tenth record is gone, the nine before it kept";
  EXPECT_EQ(read_all(j, 1).size(), 9u);
  EXPECT_EQ(j.cursor("out").position(), 10u) << "no cursor points past the end";
  log.open();
  EXPECT_NE(read_text(dir.file("log")).find("journal: cut "), std::string::npos);
}

TEST(JournalFiles, AnotherFormatVersionIsRefusedNotOverwritten) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  { sink::Journal j(dir.file("j"), 1 << 20, log); }
  std::string seg;
  for (const auto &e : std::filesystem::directory_iterator(dir.file("j")))
    if (e.path().extension() == ".journal") seg = e.path().string();
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.put(9);
  }
  try {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    FAIL() << "opened a journal of another format";
  } catch (const sink::JournalError &e) {
    EXPECT_NE(std::string(e.what()).find("has format version 9; this sink reads versions 1 and 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(RecordJson, AJsonlLineRebuildsTheRecordItCameFrom) {
  sink::Record r = make_record(7);
  uint8_t raw[] = {0, 0xff, 'x'};
  sink::ExtraCollector(r, false).add_typed("k.bytes", SINK_VALUE_BYTES, raw, sizeof raw);
  sink::ExtraCollector(r, false).add_typed("k.bad_utf8", SINK_VALUE_STRING, "\xc3", 1); // kept as bytes
  bool yes = true;
  sink::ExtraCollector(r, false).add_typed("k.bool", SINK_VALUE_BOOL, &yes, 1);
  double f = 0.25;
  sink::ExtraCollector(r, false).add_typed("k.float", SINK_VALUE_FLOAT, &f, sizeof f);
  const std::string line = sink::format::jsonl_line(sink::RecordView(r).get());
  sink::StringInterner strings;
  sink::Record back;
  std::string why;
  ASSERT_TRUE(sink::record_from_jsonl(line, back, strings, &why)) << why;
  EXPECT_EQ(sink::format::jsonl_line(sink::RecordView(back).get()), line);
  EXPECT_EQ(sink::format::csv_row(sink::RecordView(back).get()),
            sink::format::csv_row(sink::RecordView(r).get()));
  std::string a, b;
  sink::encode_record(r, a);
  sink::encode_record(back, b);
  EXPECT_EQ(a, b) << "every field, extras with their types";
  for (const char *bad : {"", "[]", "{\"schema_version\":1}", "{\"schema_version\":2}"})
    EXPECT_FALSE(sink::record_from_jsonl(bad, back, strings, &why)) << bad;
  std::string broken = line;
  broken.replace(broken.find("\"payload_hex\":\"") + 15, 1, "z");
  EXPECT_FALSE(sink::record_from_jsonl(broken, back, strings, &why));
  EXPECT_EQ(why, "payload_hex is not hex");
}

namespace {

// What a reader gets from `from` on: the records, and how many it was told
// it cannot have (the gaps the output would count lost).
struct ReadBack {
  std::vector<uint64_t> seqs;
  uint64_t missing = 0;
};
ReadBack read_counting(sink::Journal &j, uint64_t from) {
  sink::JournalReader reader(j);
  ReadBack back;
  std::vector<sink::Record> part;
  uint64_t seq = from;
  while (seq < j.end_seq()) {
    const uint64_t got = reader.read(seq, j.end_seq(), 1000, part);
    back.missing += got - seq;
    for (size_t i = 0; i < part.size(); ++i) {
      EXPECT_EQ(part[i].total_bytes, 5000 + got + i) << "record " << got + i;
      back.seqs.push_back(got + i);
    }
    if (part.empty() && got == seq) break;
    seq = got + part.size();
  }
  return back;
}

std::vector<std::string> segment_files(const std::string &dir) {
  std::vector<std::string> files;
  for (const auto &e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".journal") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

uint64_t le(const std::string &b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i)
    v |= uint64_t(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}

// Where each entry of a (version 2) segment starts, by record number.
std::map<uint64_t, size_t> entry_offsets(const std::string &segment) {
  const std::string b = read_text(segment);
  std::map<uint64_t, size_t> at;
  for (size_t off = 24; off + 24 <= b.size(); off += 24 + le(b, off + 4, 4))
    at[le(b, off + 8, 8)] = off;
  return at;
}

void overwrite(const std::string &path, size_t offset, const std::string &bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// 2,000 records in several segments (128 KiB each), none confirmed.
void write_2000(const std::string &dir, sink::Logger &log) {
  sink::Journal j(dir, 1 << 20, log);
  j.cursor("out");
  for (int i = 0; i < 20; ++i)
    append_all(j, i * 100 + 1, i * 100 + 101);
}

} // namespace

TEST(JournalDamage, AZeroFilledTailLosesNothingAndSaysNothingIsLost) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  write_2000(dir.file("j"), log);
  const auto segs = segment_files(dir.file("j"));
  ASSERT_GE(segs.size(), 3u);
  const auto size = std::filesystem::file_size(segs.back());
  std::filesystem::resize_file(segs.back(), size + 65536); // blocks a power cut left unwritten
  sink::Journal j(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(j.end_seq(), 2001u);
  EXPECT_EQ(std::filesystem::file_size(segs.back()), size) << "only the zeros are cut";
  const auto back = read_counting(j, 1);
  EXPECT_EQ(back.seqs.size(), 2000u);
  EXPECT_EQ(back.missing, 0u);
  log.open();
  const std::string text = read_text(dir.file("log"));
  EXPECT_NE(text.find("cut 65536 bytes at the end of"), std::string::npos) << text;
  EXPECT_EQ(text.find("lost"), std::string::npos) << text;
}

TEST(JournalDamage, OneFlippedByteInABodyLosesExactlyThatRecord) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  write_2000(dir.file("j"), log);
  const auto segs = segment_files(dir.file("j"));
  // In a finished segment and in the newest one (which recovery scans).
  for (const auto &seg : {segs[1], segs.back()}) {
    const auto at = entry_offsets(seg);
    const auto victim = std::next(at.begin(), static_cast<long>(at.size() / 2));
    overwrite(seg, victim->second + 24 + 40, "\x5a");
  }
  const uint64_t size = std::filesystem::file_size(segs.back());
  sink::Journal j(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(j.end_seq(), 2001u) << "numbering goes on right after the last record";
  EXPECT_EQ(std::filesystem::file_size(segs.back()), size) << "nothing is cut";
  const auto back = read_counting(j, 1);
  EXPECT_EQ(back.seqs.size(), 1998u);
  EXPECT_EQ(back.missing, 2u) << "exactly the two damaged records";
  log.open();
  EXPECT_NE(read_text(dir.file("log")).find("1 record ("), std::string::npos);
}

TEST(JournalDamage, AFlippedBitInALengthFieldLosesOnlyThatRecord) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  write_2000(dir.file("j"), log);
  const auto segs = segment_files(dir.file("j"));
  for (const auto &seg : {segs[0], segs.back()}) {
    const auto at = entry_offsets(seg);
    const size_t off = std::next(at.begin(), 10)->second + 4;
    std::string len = read_text(seg).substr(off, 4);
    len[2] = static_cast<char>(len[2] ^ 0x04); // the entry now claims 256 KiB more
    overwrite(seg, off, len);
  }
  const uint64_t size = std::filesystem::file_size(segs.back());
  sink::Journal j(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(j.end_seq(), 2001u);
  EXPECT_EQ(std::filesystem::file_size(segs.back()), size)
      << "the records after it are not cut as a torn tail";
  const auto back = read_counting(j, 1);
  EXPECT_EQ(back.seqs.size(), 1998u);
  EXPECT_EQ(back.missing, 2u);
}

TEST(JournalDamage, AZeroedSegmentHeaderKeepsEveryRecordOfTheSegment) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  write_2000(dir.file("j"), log);
  const auto segs = segment_files(dir.file("j"));
  overwrite(segs[0], 0, std::string(24, '\0'));
  overwrite(segs.back(), 0, std::string(24, '\0'));
  sink::Journal j(dir.file("j"), 1 << 20, log);
  for (const auto &seg : segs)
    EXPECT_TRUE(std::filesystem::exists(seg)) << seg << " was deleted";
  EXPECT_EQ(j.end_seq(), 2001u);
  const auto back = read_counting(j, 1);
  EXPECT_EQ(back.seqs.size(), 2000u);
  EXPECT_EQ(back.missing, 0u);
}

TEST(JournalDamage, ADamagedStretchOfManyEntriesCountsExactlyThoseRecords) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  write_2000(dir.file("j"), log);
  const auto segs = segment_files(dir.file("j"));
  const auto at = entry_offsets(segs[1]);
  // From inside one entry to inside the 37th after it: 37 records gone.
  const auto from = std::next(at.begin(), 20), to = std::next(at.begin(), 56);
  overwrite(segs[1], from->second + 30, std::string(to->second + 30 - (from->second + 30), '\xff'));
  sink::Journal j(dir.file("j"), 1 << 20, log);
  const auto back = read_counting(j, 1);
  EXPECT_EQ(back.missing, 37u);
  EXPECT_EQ(back.seqs.size(), 2000u - 37u);
}

TEST(JournalFiles, SegmentsOfTheFormerFormatAreStillRead) {
  // An upgrade during an outage: the backlog was written by the sink before
  // (format version 1: [u32 length][u32 crc32 of seq+body][u64 seq][body])
  // and must reach the outputs.
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    j.cursor("out"); // at record 1; the old sink's segments are written below
  }
  auto put = [](std::string &b, uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
      b.push_back(static_cast<char>(v >> (8 * i)));
  };
  auto write_v1 = [&](uint64_t first, int count) {
    std::string b("SINKJNL\0", 8);
    put(b, 1, 4);
    put(b, sink::kRecordCodecVersion, 4);
    put(b, first, 8);
    for (int i = 0; i < count; ++i) {
      std::string body, seq;
      sink::encode_record(make_record(static_cast<int>(first) + i), body);
      put(seq, first + i, 8);
      uLong c = crc32(0, reinterpret_cast<const Bytef *>(seq.data()), 8);
      c = crc32(c, reinterpret_cast<const Bytef *>(body.data()), static_cast<uInt>(body.size()));
      put(b, body.size(), 4);
      put(b, c, 4);
      b += seq + body;
    }
    char name[64];
    std::snprintf(name, sizeof name, "j/seg-%020llu.journal", static_cast<unsigned long long>(first));
    std::ofstream(dir.file(name), std::ios::binary) << b;
  };
  write_v1(1, 300);
  write_v1(301, 200);
  {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    EXPECT_EQ(j.end_seq(), 501u);
    EXPECT_EQ(j.cursor("out").position(), 1u);
    append_all(j, 501, 601); // new records in the new format, after the old
    const auto back = read_counting(j, 1);
    EXPECT_EQ(back.seqs.size(), 600u);
    EXPECT_EQ(back.missing, 0u);
  }
  sink::Journal again(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(again.end_seq(), 601u);
  EXPECT_EQ(read_counting(again, 1).seqs.size(), 600u);
}

TEST(JournalFiles, AnUnreadableCursorStartsAgainFromTheOldestRecord) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    j.cursor("out");
    append_all(j, 0, 5);
  }
  { std::ofstream(dir.file("j/cursors/out.cursor"), std::ios::trunc) << "garbage"; }
  sink::Journal j(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(j.cursor("out").position(), 1u) << "every record again, none skipped";
}

TEST(JournalFiles, EveryFileItMakesIsForItsOwnerOnly) {
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  const mode_t old = ::umask(0);
  {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    j.cursor("out");
    append_all(j, 1, 10);
  }
  ::umask(old);
  size_t files = 0;
  for (const auto &e : std::filesystem::recursive_directory_iterator(dir.file("j"))) {
    if (!e.is_regular_file()) continue;
    ++files;
    struct stat st {};
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << e.path();
  }
  EXPECT_EQ(files, 3u) << "lock, one segment, one cursor";
}

namespace {

// A captured payload may hold anything, even a well-formed journal entry
// (the attacker chooses the bytes): a record whose payload carries a forged
// entry numbered `forged_seq` that claims to be record 999999.
sink::Record record_carrying_forged_entry(int i, uint64_t forged_seq) {
  std::string body;
  sink::Record fake = make_record(999999 - 5000);
  fake.total_bytes = 999999;
  sink::encode_record(fake, body);
  std::string h(24, '\0');
  std::memcpy(h.data(), "SJE\xb7", 4);
  for (int k = 0; k < 4; ++k)
    h[4 + k] = static_cast<char>(body.size() >> (8 * k));
  for (int k = 0; k < 8; ++k)
    h[8 + k] = static_cast<char>(forged_seq >> (8 * k));
  const uint32_t hcrc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef *>(h.data()), 16));
  const uint32_t bcrc =
      static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef *>(body.data()), body.size()));
  for (int k = 0; k < 4; ++k) {
    h[16 + k] = static_cast<char>(hcrc >> (8 * k));
    h[20 + k] = static_cast<char>(bcrc >> (8 * k));
  }
  sink::Record r = make_record(i);
  const std::string forged = std::string(64, 'x') + h + body + std::string(64, 'y');
  r.payload.assign(forged.begin(), forged.end());
  return r;
}

// Records 1..100, record 50 carrying a forged entry numbered forged_seq.
void write_with_forged_entry(const std::string &dir, sink::Logger &log, uint64_t forged_seq) {
  sink::Journal j(dir, 1 << 20, log);
  j.cursor("out");
  append_all(j, 1, 50);
  std::vector<sink::Record> batch{record_carrying_forged_entry(50, forged_seq)};
  size_t count = 0;
  uint64_t first = 0;
  std::string error;
  ASSERT_EQ(j.append(batch, &count, &first, false, &error), sink::Journal::Append::kDone) << error;
  append_all(j, 51, 101);
}

} // namespace

TEST(JournalDamage, AForgedEntryInsideADamagedBodyIsNeitherDeliveredNorSkipsGoodRecords) {
  for (const uint64_t forged_seq : {50, 60}) {
    TempDir dir;
    sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
    write_with_forged_entry(dir.file("j"), log, forged_seq);
    const auto seg = segment_files(dir.file("j")).back();
    const auto at = entry_offsets(seg);
    // One flipped byte at the end of record 50's body, past the forged entry.
    const size_t end_of_50 = at.at(51) - 1;
    std::string byte = read_text(seg).substr(end_of_50, 1);
    byte[0] = static_cast<char>(byte[0] ^ 0x01);
    overwrite(seg, end_of_50, byte);
    sink::Journal j(dir.file("j"), 1 << 20, log);
    EXPECT_EQ(j.end_seq(), 101u) << "forged " << forged_seq;
    const auto back = read_counting(j, 1); // checks each record is the one written
    EXPECT_EQ(back.seqs.size(), 99u) << "forged " << forged_seq;
    EXPECT_EQ(back.missing, 1u) << "only record 50, forged " << forged_seq;
  }
}

TEST(JournalDamage, ATornLastEntryCarryingAForgedEntryIsCutWhole) {
  // A crash mid-append (or a power cut) leaves the last entry short; what
  // its payload holds must not be taken for a record.
  for (const uint64_t forged_seq : {50, 1000000}) {
    TempDir dir;
    sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
    {
      sink::Journal j(dir.file("j"), 1 << 20, log);
      j.cursor("out");
      append_all(j, 1, 50);
      std::vector<sink::Record> batch{record_carrying_forged_entry(50, forged_seq)};
      size_t count = 0;
      uint64_t first = 0;
      std::string error;
      ASSERT_EQ(j.append(batch, &count, &first, false, &error), sink::Journal::Append::kDone);
    }
    const auto seg = segment_files(dir.file("j")).back();
    const auto at = entry_offsets(seg);
    std::filesystem::resize_file(seg, std::filesystem::file_size(seg) - 10); // torn
    sink::Journal j(dir.file("j"), 1 << 20, log);
    EXPECT_EQ(j.end_seq(), 50u) << "forged " << forged_seq;
    EXPECT_EQ(std::filesystem::file_size(seg), at.at(50)) << "the torn entry is cut whole";
    const auto back = read_counting(j, 1);
    EXPECT_EQ(back.seqs.size(), 49u);
    EXPECT_EQ(back.missing, 0u);
  }
}

namespace {

// A segment as the sink before entry format 2 wrote it: [u32 length][u32
// crc32 of seq+body][u64 seq][body].
std::string v1_segment(uint64_t first, const std::vector<sink::Record> &records) {
  auto put = [](std::string &b, uint64_t v, int n) {
    for (int i = 0; i < n; ++i)
      b.push_back(static_cast<char>(v >> (8 * i)));
  };
  std::string b("SINKJNL\0", 8);
  put(b, 1, 4);
  put(b, sink::kRecordCodecVersion, 4);
  put(b, first, 8);
  for (size_t i = 0; i < records.size(); ++i) {
    std::string body, seq;
    sink::encode_record(records[i], body);
    put(seq, first + i, 8);
    uLong c = crc32(0, reinterpret_cast<const Bytef *>(seq.data()), 8);
    c = crc32(c, reinterpret_cast<const Bytef *>(body.data()), static_cast<uInt>(body.size()));
    put(b, body.size(), 4);
    put(b, c, 4);
    b += seq + body;
  }
  return b;
}

} // namespace

TEST(JournalDamage, AFormerFormatSegmentWithADamagedHeaderIsNotTakenForTheNewFormat) {
  // Its first record's payload holds a well-formed entry of the new format:
  // the segment must still be read as what it is, record by record.
  TempDir dir;
  sink::Logger log(dir.file("log"), SINK_LOG_DEBUG);
  {
    sink::Journal j(dir.file("j"), 1 << 20, log);
    j.cursor("out");
  }
  std::vector<sink::Record> records{record_carrying_forged_entry(1, 2)};
  records.front().total_bytes = 5001;
  for (int i = 2; i <= 100; ++i)
    records.push_back(make_record(i));
  std::string seg = v1_segment(1, records);
  std::fill(seg.begin(), seg.begin() + 24, '\0'); // the header is damaged
  std::ofstream(dir.file("j/seg-00000000000000000001.journal"), std::ios::binary) << seg;
  sink::Journal j(dir.file("j"), 1 << 20, log);
  EXPECT_EQ(j.end_seq(), 101u);
  const auto back = read_counting(j, 1); // checks each record is the one written
  EXPECT_EQ(back.seqs.size(), 100u);
  EXPECT_EQ(back.missing, 0u);
}
