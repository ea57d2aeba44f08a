// Port lists: parse never crashes, and what parses survives format + parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "PortList.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  auto ports = sink::parse_port_list(text, nullptr);
  if (!ports) return 0;
  auto again = sink::parse_port_list(sink::format_port_list(*ports), nullptr);
  if (!again || *again != *ports) std::abort();
  return 0;
}
