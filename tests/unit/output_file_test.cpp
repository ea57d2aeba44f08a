// The file side of the output contract: only whole records stay in a file,
// a failed write takes its record back, a failed flush cuts back to the last
// successful one.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "LineOutput.h"
#include "OutputFile.h"

using sink::plugin::OutputFile;

namespace {
std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
struct TempFile {
  std::string path;
  TempFile() {
    char tmpl[] = "/tmp/sink-output-file-XXXXXX";
    int fd = mkstemp(tmpl);
    ::close(fd);
    path = tmpl;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};
} // namespace

TEST(OutputFile, RollbackCutsBackToTheLastCommit) {
  TempFile t;
  OutputFile f(t.path);
  EXPECT_TRUE(f.was_empty());
  f.stage("one\n");
  ASSERT_TRUE(f.write_out());
  f.commit();
  f.stage("two\n");
  ASSERT_TRUE(f.write_out());
  f.stage("three\n");
  EXPECT_EQ(slurp(t.path), "one\ntwo\n");
  f.rollback();
  EXPECT_EQ(slurp(t.path), "one\n");
  EXPECT_EQ(f.staged(), 0u);
  f.stage("two again\n");
  ASSERT_TRUE(f.write_out());
  EXPECT_EQ(slurp(t.path), "one\ntwo again\n");
}

TEST(OutputFile, NeverTruncatesWhatWasThereBefore) {
  TempFile t;
  { std::ofstream(t.path) << "old row\n"; }
  OutputFile f(t.path);
  EXPECT_FALSE(f.was_empty());
  f.stage("new\n");
  f.rollback();
  EXPECT_EQ(slurp(t.path), "old row\n");
}

TEST(OutputFile, ATornLastLineIsCutBeforeNewRecordsFollow) {
  TempFile t;
  { std::ofstream(t.path) << "whole,1\nwhole,2\nhalf a rec"; }
  OutputFile f(t.path);
  EXPECT_EQ(f.torn_bytes(), 10u);
  EXPECT_FALSE(f.was_empty());
  f.stage("whole,3\n");
  ASSERT_TRUE(f.write_out());
  EXPECT_EQ(slurp(t.path), "whole,1\nwhole,2\nwhole,3\n");
  // A file that is one torn line is empty afterwards (and gets a header).
  { std::ofstream(t.path) << "no newline at all"; }
  OutputFile g(t.path);
  EXPECT_EQ(g.torn_bytes(), 17u);
  EXPECT_TRUE(g.was_empty());
  EXPECT_EQ(slurp(t.path), "");
}

TEST(OutputFile, AFailedWriteKeepsItsBytesStaged) {
  OutputFile f("/dev/full");
  f.stage("record\n");
  EXPECT_FALSE(f.write_out());
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(f.staged(), 7u);
}

TEST(OutputFile, AFifoWithoutAReaderFailsAtOnceInsteadOfHanging) {
  TempFile t;
  ::unlink(t.path.c_str());
  ASSERT_EQ(mkfifo(t.path.c_str(), 0600), 0);
  try {
    OutputFile f(t.path);
    FAIL() << "opened a FIFO nobody reads";
  } catch (const std::runtime_error &e) {
    EXPECT_NE(std::string(e.what()).find("is a FIFO with no reader (start the reader first)"),
              std::string::npos);
  }
}

namespace {
void line_of(const sink_record &r, std::string &out) { out.append(r.group).push_back('\n'); }
sink::plugin::LineFormat test_format(const char *) { return {&line_of, std::string("h\n"), {}}; }

struct LineOutputFixture {
  void *out = nullptr;
  explicit LineOutputFixture(const std::string &json) {
    char err[256] = "";
    sink_create_args a{};
    a.struct_size = sizeof a;
    a.config_json = json.c_str();
    a.error = err;
    a.error_size = sizeof err;
    EXPECT_EQ(sink::plugin::line_output_create(&a, &out, test_format), SINK_OK) << err;
  }
  ~LineOutputFixture() {
    if (out) sink::plugin::line_output_destroy(out);
  }
  int write(const char *group) {
    sink_record r{};
    r.struct_size = sizeof r;
    r.group = group;
    return sink::plugin::line_output_write(out, &r);
  }
};
} // namespace

TEST(LineOutput, RecordsReachTheFileOnFlushAndAHeaderStartsAnEmptyFile) {
  TempFile t;
  LineOutputFixture o("{\"path\":\"" + t.path + "\",\"flush\":false,\"header\":true}");
  EXPECT_EQ(o.write("a"), SINK_OK);
  EXPECT_EQ(o.write("b"), SINK_OK);
  EXPECT_EQ(slurp(t.path), "h\n"); // buffered until flush
  EXPECT_EQ(sink::plugin::line_output_flush(o.out), SINK_OK);
  EXPECT_EQ(slurp(t.path), "h\na\nb\n");
  // After rotation the new, empty file gets the header again.
  ASSERT_EQ(::rename(t.path.c_str(), (t.path + ".1").c_str()), 0);
  EXPECT_EQ(sink::plugin::line_output_reopen(o.out), SINK_OK);
  EXPECT_EQ(o.write("c"), SINK_OK);
  EXPECT_EQ(sink::plugin::line_output_flush(o.out), SINK_OK);
  EXPECT_EQ(slurp(t.path), "h\nc\n");
  ::unlink((t.path + ".1").c_str());
}

TEST(LineOutput, FailuresOnAFullDeviceAreReported) {
  // Lines reach the OS at flush, in one write per batch: that is where a
  // full device shows, with flush: true as with false.
  LineOutputFixture o("{\"path\":\"/dev/full\",\"flush\":true}");
  EXPECT_EQ(o.write("a"), SINK_OK);
  EXPECT_EQ(sink::plugin::line_output_flush(o.out), SINK_ERR_IO) << "a failed flush is not success";
  LineOutputFixture buffered("{\"path\":\"/dev/full\",\"flush\":false}");
  EXPECT_EQ(buffered.write("a"), SINK_OK);
  EXPECT_EQ(sink::plugin::line_output_flush(buffered.out), SINK_ERR_IO) << "a failed flush is not success";
}
