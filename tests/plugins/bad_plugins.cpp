// Deliberately broken plugins for the ABI refusal tests. One source, built
// several times with a different BAD_PLUGIN_* definition each.
#include <sink/plugin.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

namespace {

[[maybe_unused]] int create_ok(const sink_create_args *, void **instance) noexcept {
  *instance = nullptr;
  return SINK_OK;
}
[[maybe_unused]] int create_fails(const sink_create_args *args, void **) noexcept {
  std::strncpy(args->error, "the test plugin refuses to start", args->error_size - 1);
  args->error[args->error_size - 1] = '\0';
  return SINK_ERR_CONFIG;
}
[[maybe_unused]] int write_ok(void *, const sink_record *) noexcept { return SINK_OK; }
[[maybe_unused]] int write_fails(void *, const sink_record *) noexcept { return SINK_ERR_IO; }
[[maybe_unused]] int write_slowly(void *, const sink_record *) noexcept {
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // a disk that can barely keep up
  return SINK_OK;
}
[[maybe_unused]] int flush_ok(void *) noexcept { return SINK_OK; }
[[maybe_unused]] void destroy(void *) noexcept {}

#if defined(BAD_PLUGIN_CREATE_FAILS)
const sink_output_ops kOps{sizeof(sink_output_ops), create_fails, write_ok, flush_ok, nullptr, destroy};
#elif defined(BAD_PLUGIN_FAILS_THEN_RECOVERS)
// Refuses its first three writes, then logs each record's payload it takes.
struct Flaky {
  const sink_host_api *host;
  sink_host_ctx *ctx;
  int calls = 0;
};
int create_flaky(const sink_create_args *args, void **instance) noexcept {
  *instance = std::make_unique<Flaky>(Flaky{args->host, args->host_ctx}).release();
  return SINK_OK;
}
int write_flaky(void *instance, const sink_record *r) noexcept {
  auto *f = static_cast<Flaky *>(instance);
  if (++f->calls <= 3) return SINK_ERR_IO;
  std::string msg = "took " + std::string(reinterpret_cast<const char *>(r->payload), r->captured_len);
  f->host->log(f->ctx, SINK_LOG_INFO, msg.c_str());
  return SINK_OK;
}
void destroy_flaky(void *instance) noexcept { std::unique_ptr<Flaky>(static_cast<Flaky *>(instance)); }
const sink_output_ops kOps{
    sizeof(sink_output_ops), create_flaky, write_flaky, flush_ok, nullptr, destroy_flaky};
#elif defined(BAD_PLUGIN_FAILS_NOW_AND_THEN)
// Every fifth write and every fourth flush fail: a flaky network store.
struct Sometimes {
  int writes = 0, flushes = 0;
};
int create_sometimes(const sink_create_args *, void **instance) noexcept {
  *instance = new (std::nothrow) Sometimes{};
  return *instance ? SINK_OK : SINK_ERR;
}
int write_sometimes(void *instance, const sink_record *) noexcept {
  return ++static_cast<Sometimes *>(instance)->writes % 5 == 0 ? SINK_ERR_IO : SINK_OK;
}
int flush_sometimes(void *instance) noexcept {
  return ++static_cast<Sometimes *>(instance)->flushes % 4 == 0 ? SINK_ERR_IO : SINK_OK;
}
void destroy_sometimes(void *instance) noexcept {
  std::unique_ptr<Sometimes>(static_cast<Sometimes *>(instance));
}
const sink_output_ops kOps{sizeof(sink_output_ops), create_sometimes, write_sometimes,
                           flush_sometimes,         nullptr,          destroy_sometimes};
#elif defined(BAD_PLUGIN_BLOCKS_FOREVER)
// A write that never returns: a broker that hangs, a FIFO nobody reads.
int write_blocks(void *, const sink_record *) noexcept {
  for (;;)
    std::this_thread::sleep_for(std::chrono::hours(1));
}
const sink_output_ops kOps{sizeof(sink_output_ops), create_ok, write_blocks, flush_ok, nullptr, destroy};
#elif defined(BAD_PLUGIN_WRITE_SLOWLY)
const sink_output_ops kOps{sizeof(sink_output_ops), create_ok, write_slowly, flush_ok, nullptr, destroy};
#elif defined(BAD_PLUGIN_WRITE_FAILS)
const sink_output_ops kOps{sizeof(sink_output_ops), create_ok, write_fails, flush_ok, nullptr, destroy};
#else
const sink_output_ops kOps{sizeof(sink_output_ops), create_ok, write_ok, flush_ok, nullptr, destroy};
#endif

#if defined(BAD_PLUGIN_WRONG_ABI)
constexpr uint32_t kMajor = SINK_ABI_MAJOR + 1;
#else
constexpr uint32_t kMajor = SINK_ABI_MAJOR;
#endif
#if defined(BAD_PLUGIN_NEEDS_MINOR_2)
constexpr uint32_t kMinor = 2; // a plugin from a future sink
#else
constexpr uint32_t kMinor = 0;
#endif

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    kMajor,
    kMinor,
    SINK_PLUGIN_OUTPUT,
    BAD_PLUGIN_NAME,
    "0.0.1",
    "a broken plugin for tests",
    &kOps,
    nullptr,
    nullptr,
};

} // namespace

#if defined(BAD_PLUGIN_NO_ENTRY)
// Exports a differently named function only.
extern "C" SINK_PLUGIN_EXPORT const sink_plugin_descriptor *sink_plugin_entry_v0(void) {
  return &kDescriptor;
}
#else
SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
#endif
