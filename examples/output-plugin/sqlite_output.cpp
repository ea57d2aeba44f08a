// sqlite: a sink output plugin that appends each record to a SQLite database,
// one row per connection in `connections`, transport extras in `extras`.
// It uses nothing of sink but <sink/plugin.h> (plus SQLite, and nlohmann/json
// to read its options).
//
// The output contract makes retries harmless here: each record is inserted
// under a savepoint, so a failed write leaves nothing of it behind; a failed
// COMMIT rolls the whole transaction back before the host writes those
// records again; and on hosts with ABI 1.1 the record id is UNIQUE, so a
// record delivered twice (after a crash, say) is kept once.
//
// Options (YAML):  path: records.db   (required)
//                  synchronous: normal | full | off   (default normal)
#include <nlohmann/json.hpp>
#include <sink/plugin.h>
#include <sqlite3.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

namespace {

const char *const kSchema = R"(
CREATE TABLE IF NOT EXISTS connections (
  id           INTEGER PRIMARY KEY,
  record_id    TEXT UNIQUE,        -- UUIDv7 from ABI 1.1 hosts; NULL from 1.0 hosts
  ts_ms        INTEGER NOT NULL,   -- accept time, Unix milliseconds
  accept_ns    INTEGER NOT NULL,   -- accept time, Unix nanoseconds
  grp          TEXT NOT NULL,      -- config group
  transport    TEXT NOT NULL,
  local_ip     TEXT NOT NULL,
  local_port   INTEGER NOT NULL,
  remote_ip    TEXT NOT NULL,
  remote_port  INTEGER NOT NULL,
  payload      BLOB NOT NULL,      -- the first capture_bytes bytes
  captured_len INTEGER NOT NULL,
  payload_len  INTEGER NOT NULL,   -- every byte received
  truncated    INTEGER NOT NULL,   -- payload_len > captured_len
  duration     REAL NOT NULL,      -- seconds, accept to close
  close_reason TEXT NOT NULL,
  close_detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS extras (
  connection_id INTEGER NOT NULL REFERENCES connections(id),
  key           TEXT NOT NULL,
  value         TEXT NOT NULL
);
)";

struct Db {
  const sink_host_api *host;
  sink_host_ctx *ctx;
  sqlite3 *db = nullptr;
  sqlite3_stmt *insert_conn = nullptr;
  sqlite3_stmt *insert_extra = nullptr;
  bool in_transaction = false;

  ~Db() {
    commit();
    sqlite3_finalize(insert_conn);
    sqlite3_finalize(insert_extra);
    sqlite3_close(db);
  }
  void log_error(const char *what) {
    std::string msg = std::string(what) + ": " + sqlite3_errmsg(db);
    host->log(ctx, SINK_LOG_ERROR, msg.c_str());
  }
  bool exec(const char *sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK; }
  // Rows go into one transaction until the host's flush: fast, and a flush
  // (when the record queue drains) makes them durable.
  bool commit() {
    if (!in_transaction) return true;
    in_transaction = false;
    if (exec("COMMIT")) return true;
    exec("ROLLBACK"); // the host writes every record since the last commit again
    return false;
  }
  // Undoes the record in hand after a failed insert.
  int undo_record(const char *what) {
    log_error(what);
    exec("ROLLBACK TO record; RELEASE record");
    return SINK_ERR_IO;
  }
};

void fail(const sink_create_args *a, const std::string &msg) {
  if (a->error && a->error_size) {
    std::strncpy(a->error, msg.c_str(), a->error_size - 1);
    a->error[a->error_size - 1] = '\0';
  }
}

int create_database(const sink_create_args *a, void **instance) {
  const auto cfg = nlohmann::json::parse(a->config_json ? a->config_json : "{}", nullptr, false);
  if (!cfg.is_object()) {
    fail(a, "options are not an object");
    return SINK_ERR_CONFIG;
  }
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    if (it.key() != "path" && it.key() != "synchronous") {
      fail(a, "unknown option \"" + it.key() + "\" (expected path, synchronous)");
      return SINK_ERR_CONFIG;
    }
    if (!it.value().is_string()) {
      fail(a, "option \"" + it.key() + "\" must be a string");
      return SINK_ERR_CONFIG;
    }
  }
  const std::string path = cfg.value("path", "");
  if (path.empty()) {
    fail(a, "option \"path\" (the database file) is required");
    return SINK_ERR_CONFIG;
  }
  const std::string sync = cfg.value("synchronous", "normal");
  if (sync != "normal" && sync != "full" && sync != "off") {
    fail(a, "option \"synchronous\" must be normal, full or off");
    return SINK_ERR_CONFIG;
  }
  auto d = std::make_unique<Db>();
  d->host = a->host;
  d->ctx = a->host_ctx;
  if (sqlite3_open(path.c_str(), &d->db) != SQLITE_OK) {
    fail(a, "cannot open \"" + path + "\": " + sqlite3_errmsg(d->db));
    return SINK_ERR_CONFIG;
  }
  const std::string pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=" + sync + ";";
  if (!d->exec(pragmas.c_str()) || !d->exec(kSchema) ||
      sqlite3_prepare_v2(d->db,
                         "INSERT OR IGNORE INTO connections (ts_ms, accept_ns, grp, transport, local_ip, "
                         "local_port, remote_ip, remote_port, payload, captured_len, payload_len, truncated, "
                         "duration, close_reason, close_detail, record_id) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         -1, &d->insert_conn, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(d->db, "INSERT INTO extras (connection_id, key, value) VALUES (?,?,?)", -1,
                         &d->insert_extra, nullptr) != SQLITE_OK) {
    fail(a, "cannot set up \"" + path + "\": " + sqlite3_errmsg(d->db));
    return SINK_ERR_CONFIG;
  }
  *instance = d.release();
  return SINK_OK;
}

// Entry points are noexcept: no C++ exception may cross the plugin ABI.
int sqlite_create(const sink_create_args *a, void **instance) noexcept {
  try {
    return create_database(a, instance);
  } catch (const std::exception &e) {
    fail(a, e.what());
    return SINK_ERR;
  }
}

int sqlite_write(void *instance, const sink_record *r) noexcept {
  auto *d = static_cast<Db *>(instance);
  if (!d->in_transaction) {
    if (!d->exec("BEGIN")) {
      d->log_error("BEGIN");
      return SINK_ERR_IO;
    }
    d->in_transaction = true;
  }
  if (!d->exec("SAVEPOINT record")) {
    d->log_error("SAVEPOINT");
    return SINK_ERR_IO;
  }
  // The id arrived with ABI 1.1; a 1.0 host's record is shorter.
  const bool has_id = r->struct_size >= offsetof(sink_record, id) + sizeof r->id && r->id;
  sqlite3_stmt *s = d->insert_conn;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, r->accept_unix_ns / 1000000);
  sqlite3_bind_int64(s, 2, r->accept_unix_ns);
  sqlite3_bind_text(s, 3, r->group, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 4, r->transport, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 5, r->local_ip, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 6, r->local_port);
  sqlite3_bind_text(s, 7, r->remote_ip, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 8, r->remote_port);
  sqlite3_bind_blob64(s, 9, r->captured_len ? r->payload : reinterpret_cast<const uint8_t *>(""),
                      r->captured_len, SQLITE_STATIC);
  sqlite3_bind_int64(s, 10, static_cast<sqlite3_int64>(r->captured_len));
  sqlite3_bind_int64(s, 11, static_cast<sqlite3_int64>(r->total_bytes));
  sqlite3_bind_int(s, 12, r->total_bytes > r->captured_len);
  sqlite3_bind_double(s, 13, static_cast<double>(r->duration_ns) / 1e9);
  sqlite3_bind_text(s, 14, sink_close_reason_name(r->close_reason), -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 15, r->close_detail ? r->close_detail : "", -1, SQLITE_STATIC);
  if (has_id)
    sqlite3_bind_text(s, 16, r->id, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(s, 16);
  if (sqlite3_step(s) != SQLITE_DONE) return d->undo_record("insert");
  if (sqlite3_changes(d->db) == 0) { // this id is stored already: a redelivery
    d->exec("RELEASE record");
    return SINK_OK;
  }
  const sqlite3_int64 id = sqlite3_last_insert_rowid(d->db);
  for (size_t i = 0; i < r->extras_count; ++i) {
    sqlite3_stmt *e = d->insert_extra;
    sqlite3_reset(e);
    sqlite3_bind_int64(e, 1, id);
    sqlite3_bind_text(e, 2, r->extras[i].key, -1, SQLITE_STATIC);
    sqlite3_bind_text(e, 3, r->extras[i].value, -1, SQLITE_STATIC);
    if (sqlite3_step(e) != SQLITE_DONE) return d->undo_record("insert extra");
  }
  if (!d->exec("RELEASE record")) return d->undo_record("RELEASE");
  return SINK_OK;
}

int sqlite_flush(void *instance) noexcept {
  auto *d = static_cast<Db *>(instance);
  if (d->commit()) return SINK_OK;
  d->log_error("COMMIT");
  return SINK_ERR_IO;
}

void sqlite_destroy(void *instance) noexcept { std::unique_ptr<Db> owned(static_cast<Db *>(instance)); }

const sink_output_ops kOps{
    sizeof(sink_output_ops),
    sqlite_create,
    sqlite_write,
    sqlite_flush,
    nullptr, // reopen: a database is not rotated by renaming
    sqlite_destroy,
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    0, // the lowest host minor it needs: it reads the 1.1 id only where present
    SINK_PLUGIN_OUTPUT,
    "sqlite",
    "1.1.0",
    "one SQLite row per connection",
    &kOps,
    nullptr, // transport
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
