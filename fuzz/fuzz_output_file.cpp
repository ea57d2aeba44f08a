// The output file under failing writes: random sequences of staging whole
// lines, writing out, committing and rolling back, while RLIMIT_FSIZE makes
// writes fail part-way (as a full disk does). Invariants: the file always
// holds whole lines only, a failed write-out leaves it as it was, and a
// rollback returns it to the last commit.
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "OutputFile.h"

namespace {
std::string contents(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void check(bool ok) {
  if (!ok) std::abort();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::signal(SIGXFSZ, SIG_IGN); // a write past the limit fails with EFBIG instead
  char tmpl[] = "/tmp/sink-fuzz-output-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) return 0;
  ::close(fd);
  const std::string path = tmpl;
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  {
    sink::plugin::OutputFile f(path);
    std::string on_disk, committed, staged;
    for (size_t i = 0; i + 1 < size; i += 2) {
      const uint8_t op = data[i] % 4, arg = data[i + 1];
      switch (op) {
      case 0: { // stage one whole line of arg bytes
        std::string line(arg % 64, static_cast<char>('a' + arg % 26));
        line += '\n';
        f.stage(line);
        staged += line;
        break;
      }
      case 1: { // write out, with the disk "full" at a limit from the input
        rlimit lim = old;
        lim.rlim_cur = arg < 128 ? on_disk.size() + arg : RLIM_INFINITY;
        setrlimit(RLIMIT_FSIZE, &lim);
        const bool ok = f.write_out();
        setrlimit(RLIMIT_FSIZE, &old);
        if (ok) {
          on_disk += staged;
          staged.clear();
        }
        check(contents(path) == on_disk);
        check(f.staged() == staged.size());
        break;
      }
      case 2:
        f.commit();
        committed = on_disk;
        break;
      case 3:
        f.rollback();
        on_disk = committed;
        staged.clear();
        check(contents(path) == on_disk);
        break;
      }
      check(on_disk.empty() || on_disk.back() == '\n');
    }
  }
  setrlimit(RLIMIT_FSIZE, &old);
  ::unlink(path.c_str());
  return 0;
}
