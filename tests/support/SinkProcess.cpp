#include "SinkProcess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sinktest {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "sink-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string bundled_plugin_dir() {
  const std::string bin = SINK_BINARY;
  return bin.substr(0, bin.rfind('/')) + "/plugins";
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::vector<std::string> read_lines(const std::string &path) {
  std::vector<std::string> lines;
  std::string text = read_file(path), line;
  std::istringstream in(text);
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

std::vector<std::string> wait_for_lines(const std::string &path, size_t n, std::chrono::milliseconds limit) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (true) {
    std::string text = read_file(path);
    size_t complete = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    if (complete >= n || std::chrono::steady_clock::now() > until) return read_lines(path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

SinkProcess::SinkProcess(const TempDir &dir, std::vector<std::string> args, unsigned max_open_files)
    : SinkProcess(
          dir,
          [&] {
            args.insert(args.begin(), SINK_BINARY);
            return args;
          }(),
          "sink", "", max_open_files) {}

void SinkProcess::signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

SinkProcess::SinkProcess(const TempDir &dir, std::vector<std::string> argv, const std::string &name,
                         const std::string &input, unsigned max_open_files)
    : out_(dir.file(name + ".stdout")), err_(dir.file(name + ".stderr")) {
  const std::string in_path = dir.file(name + ".stdin");
  write_file(in_path, input);
  std::vector<char *> cargv;
  for (auto &a : argv)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    if (chdir(dir.path().c_str()) != 0) _exit(127);
    if (max_open_files > 0) {
      rlimit rl{max_open_files, max_open_files};
      setrlimit(RLIMIT_NOFILE, &rl);
    }
    int i = open(in_path.c_str(), O_RDONLY);
    int o = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
}

SinkProcess::~SinkProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::vector<uint16_t> SinkProcess::wait_listening(size_t count, const std::string &log_path) {
  static const std::regex re(R"(server is listening on (\S+):(\d+), timeout value)");
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    std::vector<uint16_t> ports;
    for (const auto &line : read_lines(log_path.empty() ? err_ : log_path)) {
      std::smatch m;
      if (std::regex_search(line, m, re)) ports.push_back(static_cast<uint16_t>(std::stoi(m[2])));
    }
    if (ports.size() >= count) return ports;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("sink exited before listening: " + read_file(err_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("sink did not start listening: " + read_file(err_));
}

ExitResult SinkProcess::wait_exit(std::chrono::milliseconds limit) {
  ExitResult r;
  int status = 0;
  bool timed_out = false;
  auto until = std::chrono::steady_clock::now() + limit;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > until) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  r.code = timed_out ? -2 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_);
  r.err = read_file(err_);
  return r;
}

ExitResult SinkProcess::stop() {
  if (pid_ > 0) kill(pid_, SIGTERM);
  return wait_exit(std::chrono::seconds(20));
}

ExitResult run_sink(const TempDir &dir, std::vector<std::string> args, std::chrono::milliseconds limit) {
  SinkProcess p(dir, std::move(args));
  return p.wait_exit(limit);
}

ExitResult run_program(const TempDir &dir, std::vector<std::string> argv, const std::string &input,
                       std::chrono::milliseconds limit) {
  static int counter = 0;
  SinkProcess p(dir, std::move(argv), "program" + std::to_string(++counter), input);
  return p.wait_exit(limit);
}

} // namespace sinktest
