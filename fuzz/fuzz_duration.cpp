// Go durations: parse never crashes, and what parses survives format + parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "Duration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  std::string why;
  auto d = sink::parse_go_duration(text, &why);
  if (!d) {
    if (why.empty()) std::abort(); // every refusal says why
    return 0;
  }
  auto again = sink::parse_go_duration(sink::format_go_duration(*d), nullptr);
  if (!again || *again != *d) std::abort();
  return 0;
}
