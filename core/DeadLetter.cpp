#include "DeadLetter.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "RecordFormat.h"
#include "TextEncoding.h"

namespace sink {

bool DeadLetterFile::append(std::string_view line, std::string *why, bool sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fd_.fd < 0) {
    fd_.fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_.fd < 0) {
      *why = "cannot open \"" + path_ + "\": " + std::strerror(errno);
      return false;
    }
  }
  const off_t before = ::lseek(fd_.fd, 0, SEEK_END);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_.fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *why = "cannot write \"" + path_ + "\": " + std::strerror(n < 0 ? errno : ENOSPC);
      // No half line stays behind to glue onto the next one.
      if (before >= 0) (void)!::ftruncate(fd_.fd, before);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return !sync || sync_locked(why);
}

bool DeadLetterFile::sync(std::string *why) {
  std::lock_guard<std::mutex> lock(mutex_);
  return fd_.fd < 0 || sync_locked(why);
}

bool DeadLetterFile::sync_locked(std::string *why) {
  if (::fdatasync(fd_.fd) == 0) return true;
  *why = "cannot sync \"" + path_ + "\": " + std::strerror(errno);
  return false;
}

std::shared_ptr<DeadLetterFile> dead_letter_file(const std::string &path) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<DeadLetterFile>> files;
  std::lock_guard<std::mutex> lock(mutex);
  auto &slot = files[path];
  auto file = slot.lock();
  if (!file) {
    file = std::make_shared<DeadLetterFile>(path);
    slot = file;
  }
  return file;
}

std::string dead_letter_record_line(const sink_record &r, const std::string &output, int64_t at_unix_ns) {
  std::string line = format::jsonl_line(r);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  if (!line.empty() && line.back() == '}') line.pop_back(); // reopened to add one member
  const nlohmann::json aside = {{"output", output}, {"at_ns", at_unix_ns}};
  return line + ",\"set_aside\":" + aside.dump() + "}\n";
}

std::string dead_letter_message_line(std::string_view body, const std::string &subject,
                                     const std::string &why, int64_t at_unix_ns) {
  const nlohmann::json aside = {
      {"by", "collect"}, {"subject", subject}, {"reason", why}, {"at_ns", at_unix_ns}};
  const nlohmann::json line = {
      {"set_aside", aside},
      {"message_base64", text::base64(reinterpret_cast<const uint8_t *>(body.data()), body.size())}};
  // Invalid UTF-8 in a reason or subject must not make the line unreadable.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string default_dead_letter_path() {
  const char *state = std::getenv("STATE_DIRECTORY");
  // STATE_DIRECTORY may list several directories, ':'-separated.
  const std::string dir = state && *state ? std::string(state).substr(0, std::string(state).find(':'))
                                          : std::filesystem::current_path().string();
  return dir + "/sink-dead-letter.jsonl";
}

int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

} // namespace sink
