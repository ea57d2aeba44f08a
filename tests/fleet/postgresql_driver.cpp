// Drives the postgresql output plugin directly, as a host would, with what
// the real sink does not produce on demand: a record in the ABI 1.0 layout
// (no id, no 1.1 fields), the same record written again after a successful
// flush, an already stored id inside a new batch, and one id twice in one
// batch. Every flush must succeed; postgresql_test.py then checks the rows.
// Usage: postgresql_driver PLUGIN.so CONNINFO TABLE
#include <sink/plugin.h>

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

void host_log(sink_host_ctx *, sink_log_level level, const char *message) {
  std::fprintf(stderr, "plugin log %d: %s\n", static_cast<int>(level), message);
}

const sink_host_api kHost{sizeof(sink_host_api), SINK_ABI_MAJOR, SINK_ABI_MINOR, host_log};

std::string json_string(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

int fail(const char *what, int rc) {
  std::fprintf(stderr, "postgresql_driver: %s returned %d\n", what, rc);
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s PLUGIN.so CONNINFO TABLE\n", argv[0]);
    return 2;
  }
  void *so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!so) return std::fprintf(stderr, "dlopen: %s\n", dlerror()), 1;
  auto entry = reinterpret_cast<sink_plugin_entry_fn>(dlsym(so, SINK_PLUGIN_ENTRY_SYMBOL));
  if (!entry) return std::fprintf(stderr, "no entry symbol\n"), 1;
  const sink_output_ops *ops = entry()->output;

  const std::string config =
      "{\"conninfo\":" + json_string(argv[2]) + ",\"table\":" + json_string(argv[3]) + "}";
  char error[512] = "";
  sink_create_args args{};
  args.struct_size = sizeof args;
  args.host = &kHost;
  args.config_json = config.c_str();
  args.error = error;
  args.error_size = sizeof error;
  args.config_dir = "/";
  void *out = nullptr;
  if (int rc = ops->create(&args, &out); rc != SINK_OK) return std::fprintf(stderr, "create: %s\n", error), 1;

  const std::vector<uint8_t> payload{'v', '1', '.', '0', 0x00, 0xff, '\\', '\n'};
  const sink_extra extras[] = {{"legacy.key", "legacy value"}};
  sink_record r{};
  r.accept_unix_ns = 1700000000123456789LL;
  r.duration_ns = 42;
  r.group = "legacy";
  r.transport = "tcp";
  r.local_ip = "::1";
  r.local_port = 4242;
  r.remote_ip = "fe80::1%lo";
  r.remote_port = 5353;
  r.payload = payload.data();
  r.captured_len = payload.size();
  r.total_bytes = 8;
  r.close_reason = SINK_CLOSE_CLIENT_FIN;
  r.close_detail = "";
  r.extras = extras;
  r.extras_count = 1;

  // 1. An ABI 1.0 record: it ends before listen_port.
  sink_record v10 = r;
  v10.struct_size = offsetof(sink_record, listen_port);
  for (int round = 0; round < 2; ++round) { // 2. written again after a good flush
    if (int rc = ops->write(out, &v10); rc != SINK_OK) return fail("write (1.0 record)", rc);
    if (int rc = ops->flush(out); rc != SINK_OK) return fail("flush (1.0 record)", rc);
  }

  // 3. ABI 1.1 records: an id already stored inside a new batch, and one id
  // twice in one batch.
  sink_record v11 = r;
  v11.struct_size = sizeof v11;
  v11.group = "modern";
  v11.sensor = "driver";
  v11.listen_port = 4343;
  v11.first_read_len = 8;
  const char *ids[] = {"0190a0b0-0000-7000-8000-000000000001", "0190a0b0-0000-7000-8000-000000000001",
                       "0190a0b0-0000-7000-8000-000000000002", "0190a0b0-0000-7000-8000-000000000003",
                       "0190a0b0-0000-7000-8000-000000000003"};
  for (size_t i = 0; i < std::size(ids); ++i) {
    v11.id = ids[i];
    v11.remote_port = static_cast<uint16_t>(6000 + i);
    if (int rc = ops->write(out, &v11); rc != SINK_OK) return fail("write (1.1 record)", rc);
    if (i == 0 || i == 4)
      if (int rc = ops->flush(out); rc != SINK_OK) return fail("flush (1.1 records)", rc);
  }
  ops->destroy(out);
  std::puts("ok");
  return 0;
}
