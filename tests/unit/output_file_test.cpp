// The file side of the output contract: only whole records stay in a file,
// a failed write takes its record back, a failed flush cuts back to the last
// successful one.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
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
  ~TempFile() {
    ::unlink(path.c_str());
    ::unlink(tail_note().c_str());
  }
  // The side file where OutputFile notes what it has not confirmed.
  std::string tail_note() const {
    const auto slash = path.rfind('/');
    return path.substr(0, slash + 1) + "." + path.substr(slash + 1) + ".sink-tail";
  }
};
// Runs body in a child process, which must end it with ::_exit so that no
// destructor runs: what a kill -9 leaves.
void in_a_process_that_dies(const std::function<void()> &body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(2); // body returned: its destructors ran
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
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

TEST(OutputFile, ATornLineThisSinkWroteIsCutBeforeNewRecordsFollow) {
  TempFile t;
  in_a_process_that_dies([&] {
    OutputFile f(t.path);
    f.stage("whole,1\n");
    if (!f.write_out()) ::_exit(1);
    f.commit();
    f.stage("whole,2\nwhole,3\n");
    ::_exit(f.write_out() ? 0 : 1); // not confirmed: killed before the commit
  });
  ASSERT_EQ(::truncate(t.path.c_str(), 20), 0); // the write was torn: "whole,1\nwhole,2\nwhol"
  OutputFile f(t.path);
  EXPECT_EQ(f.torn_bytes(), 4u);
  EXPECT_FALSE(f.ended_mid_line());
  EXPECT_FALSE(f.was_empty());
  f.stage("whole,3\n");
  ASSERT_TRUE(f.write_out());
  EXPECT_EQ(slurp(t.path), "whole,1\nwhole,2\nwhole,3\n");
}

TEST(OutputFile, AFileSinkDidNotWriteIsNeverCut) {
  TempFile t;
  // A binary file without any newline (notes.bin in the report).
  std::string binary(99614, 'x');
  { std::ofstream(t.path, std::ios::binary) << binary; }
  {
    OutputFile f(t.path);
    EXPECT_EQ(f.torn_bytes(), 0u);
    EXPECT_TRUE(f.ended_mid_line());
    EXPECT_FALSE(f.was_empty());
    f.stage("rec\n");
    ASSERT_TRUE(f.write_out());
    f.commit();
  }
  EXPECT_EQ(slurp(t.path), binary + "\nrec\n");
  // A CSV file whose last record lacks its newline keeps that record.
  { std::ofstream(t.path, std::ios::trunc) << "a,b\n1,2"; }
  OutputFile g(t.path);
  EXPECT_EQ(g.torn_bytes(), 0u);
  g.stage("3,4\n");
  ASSERT_TRUE(g.write_out());
  EXPECT_EQ(slurp(t.path), "a,b\n1,2\n3,4\n");
}

TEST(OutputFile, ANoteForAnotherFileCutsNothing) {
  TempFile t;
  in_a_process_that_dies([&] {
    OutputFile f(t.path);
    f.stage("ours,1\n");
    ::_exit(f.write_out() ? 0 : 1); // unconfirmed when it is killed
  });
  // The file is replaced (a rotation, an operator) by one sink did not write.
  ::unlink(t.path.c_str());
  { std::ofstream(t.path) << "theirs"; }
  OutputFile f(t.path);
  EXPECT_EQ(f.torn_bytes(), 0u);
  f.stage("ours,2\n");
  ASSERT_TRUE(f.write_out());
  EXPECT_EQ(slurp(t.path), "theirs\nours,2\n");
}

TEST(OutputFile, ATornLineAfterAForeignUnfinishedLineLeavesTheForeignBytes) {
  TempFile t;
  { std::ofstream(t.path) << "theirs"; }
  in_a_process_that_dies([&] {
    OutputFile f(t.path);
    f.stage("ours,1\n");
    ::_exit(f.write_out() ? 0 : 1);
  });
  ASSERT_EQ(::truncate(t.path.c_str(), 10), 0); // "theirs\nour": torn
  {
    OutputFile f(t.path);
    EXPECT_EQ(f.torn_bytes(), 3u);
    f.stage("ours,1\n");
    ASSERT_TRUE(f.write_out());
    f.commit();
  }
  EXPECT_EQ(slurp(t.path), "theirs\nours,1\n");
  EXPECT_NE(::access(t.tail_note().c_str(), F_OK), 0) << "a clean close leaves no side file";
}

TEST(OutputFile, NewFilesAreNotReadableByOtherUsers) {
  TempFile t;
  ::unlink(t.path.c_str());
  const mode_t old = ::umask(0);
  { OutputFile f(t.path); }
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(t.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
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

TEST(OutputFile, ASymlinkPlantedAsTheSideFileIsNotWrittenThrough) {
  // Whoever can write the file's directory can plant the side file's name
  // as a link to a file they cannot write; sink (often root) must not
  // overwrite that file's first bytes with its note.
  TempFile t, victim;
  { std::ofstream(victim.path) << "root:x:0:0:root:/root:/bin/bash\n"; }
  ::unlink(t.tail_note().c_str());
  ASSERT_EQ(::symlink(victim.path.c_str(), t.tail_note().c_str()), 0);
  {
    OutputFile f(t.path);
    f.stage("rec\n");
    ASSERT_TRUE(f.write_out());
    f.commit();
  }
  EXPECT_EQ(slurp(victim.path), "root:x:0:0:root:/root:/bin/bash\n");
  EXPECT_EQ(slurp(t.path), "rec\n");
}

TEST(OutputFile, ARollbackAfterTheFileWasEmptiedElsewhereNeverFillsItWithZeros) {
  // An operator empties the file while sink runs (`: > FILE`, logrotate's
  // copytruncate): cutting back to an offset the file no longer reaches
  // would grow it with NUL bytes.
  TempFile t;
  OutputFile f(t.path);
  f.stage("0123456789\n");
  ASSERT_TRUE(f.write_out());
  f.commit();
  ASSERT_EQ(::truncate(t.path.c_str(), 0), 0);
  f.stage("new\n");
  ASSERT_TRUE(f.write_out());
  f.rollback(); // a failed flush
  EXPECT_EQ(slurp(t.path).find('\0'), std::string::npos) << "file holds " << slurp(t.path).size() << " bytes";
}
