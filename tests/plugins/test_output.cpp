// A test output that can be told to fail or crash: it writes each record's
// id and payload as one line on flush, and
//   crash_at: N            segfaults on its Nth write in this process
//   crash_on_payload: S    segfaults on a record whose payload contains S
//   fail_while_exists: P   write fails (SINK_ERR_IO) while file P exists
//   refuse_payload: S      refuses for good (SINK_ERR_REFUSED) a record whose payload contains S
#include <sink/plugin.h>

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace {

struct TestOutput {
  FILE *file = nullptr;
  long crash_at = 0, writes = 0;
  std::string crash_on_payload, fail_while_exists, refuse_payload;
  std::string pending;
};

// A segmentation fault on this thread. raise() rather than a stray store, so
// the sanitizer builds (which stop at a null store) crash the same way.
[[noreturn]] void crash() {
  std::raise(SIGSEGV);
  std::abort();
}

int create(const sink_create_args *args, void **instance) noexcept try {
  auto opts = nlohmann::json::parse(args->config_json);
  auto t = std::make_unique<TestOutput>();
  t->file = std::fopen(opts.value("path", "").c_str(), "a");
  if (!t->file) {
    std::snprintf(args->error, args->error_size, "test_output: cannot open path");
    return SINK_ERR_CONFIG;
  }
  t->crash_at = opts.value("crash_at", 0L);
  t->crash_on_payload = opts.value("crash_on_payload", "");
  t->fail_while_exists = opts.value("fail_while_exists", "");
  t->refuse_payload = opts.value("refuse_payload", "");
  *instance = t.release();
  return SINK_OK;
} catch (...) {
  return SINK_ERR;
}

int write(void *instance, const sink_record *r) noexcept try {
  auto *t = static_cast<TestOutput *>(instance);
  struct stat st {};
  if (!t->fail_while_exists.empty() && stat(t->fail_while_exists.c_str(), &st) == 0) return SINK_ERR_IO;
  const std::string payload(reinterpret_cast<const char *>(r->payload), r->captured_len);
  ++t->writes;
  if (t->crash_at && t->writes == t->crash_at) crash();
  if (!t->crash_on_payload.empty() && payload.find(t->crash_on_payload) != std::string::npos) crash();
  if (!t->refuse_payload.empty() && payload.find(t->refuse_payload) != std::string::npos)
    return SINK_ERR_REFUSED;
  t->pending += std::string(r->id) + " " + payload + "\n";
  return SINK_OK;
} catch (...) {
  return SINK_ERR;
}

int flush(void *instance) noexcept {
  auto *t = static_cast<TestOutput *>(instance);
  std::fwrite(t->pending.data(), 1, t->pending.size(), t->file);
  t->pending.clear();
  return std::fflush(t->file) == 0 ? SINK_OK : SINK_ERR_IO;
}

void destroy(void *instance) noexcept {
  std::unique_ptr<TestOutput> t(static_cast<TestOutput *>(instance));
  flush(t.get());
  std::fclose(t->file);
}

const sink_output_ops kOps{sizeof(sink_output_ops), create, write, flush, nullptr, destroy};
const sink_plugin_descriptor kDescriptor{sizeof(sink_plugin_descriptor),
                                         SINK_ABI_MAJOR,
                                         1,
                                         SINK_PLUGIN_OUTPUT,
                                         "test_output",
                                         "1.0.0",
                                         "test output that fails or crashes on request",
                                         &kOps,
                                         nullptr,
                                         nullptr};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
