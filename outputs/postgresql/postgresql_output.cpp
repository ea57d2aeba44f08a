// outputs/postgresql: every record as one row of a PostgreSQL table, written
// in batches. write() encodes the record into a buffer (COPY binary format);
// flush() sends the buffer with COPY into a TEMP staging table, moves it into
// the real table with INSERT ... ON CONFLICT (id) DO NOTHING and empties the
// staging table, all in one transaction, and reports success only after
// COMMIT. A record written again after a failed flush (the host's retry) finds
// its id taken and is dropped, so delivery is at-least-once with no duplicate
// rows. The server being down is an outage, not an error of the
// configuration: create succeeds, write/flush fail until it is back, and the
// plugin reconnects with a back-off.
//
// A row PostgreSQL refuses for good (a data exception, a constraint such as
// a CHECK the operator added) fails the batch; flush then sends it again in
// halves, and halves of the halves that fail, until each refused row is
// known (a few transactions, not one per row) and the rest is committed. The
// host writes the batch again; write answers the refused rows with
// SINK_ERR_REFUSED, so the host sets them aside, and every other row is
// stored (again a no-op: ON CONFLICT).
#include <sink/plugin.h>

#include <libpq-fe.h>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "PluginOptions.h"
#include "RecordFormat.h"
#include "TextEncoding.h"

namespace {

using Clock = std::chrono::steady_clock;

struct ConnDeleter {
  void operator()(PGconn *c) const noexcept { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult *r) const noexcept { PQclear(r); }
};
struct ConninfoDeleter {
  void operator()(PQconninfoOption *o) const noexcept { PQconninfoFree(o); }
};
struct FreememDeleter {
  void operator()(char *p) const noexcept { PQfreemem(p); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

constexpr auto kBackoffFirst = std::chrono::milliseconds(100);
constexpr auto kBackoffLimit = std::chrono::milliseconds(5000);
// Seconds a connection attempt may take unless conninfo says otherwise; a
// black-holed server must not hold up start-up (create runs on the main
// thread) or the output thread forever.
constexpr const char *kDefaultConnectTimeout = "5";
// Unix epoch to the PostgreSQL epoch (2000-01-01 UTC), in microseconds.
constexpr int64_t kPgEpochOffsetUs = 946684800LL * 1000000LL;

// The table's columns, in order: COPY sends them in this order.
constexpr const char *kColumns = "id, sensor, accept_ts, duration_ns, group_name, transport, local_ip, "
                                 "local_port, remote_ip, remote_port, listen_port, payload, captured_len, "
                                 "total_bytes, close_reason, close_detail, extras, first_read_len, wire";
constexpr int16_t kColumnCount = 19;
constexpr const char *kColumnTypes = "id uuid%s,\n"
                                     "  sensor text,\n"
                                     "  accept_ts timestamptz NOT NULL,\n"
                                     "  duration_ns bigint,\n"
                                     "  group_name text,\n"
                                     "  transport text,\n"
                                     "  local_ip inet,\n"
                                     "  local_port integer,\n"
                                     "  remote_ip inet,\n"
                                     "  remote_port integer,\n"
                                     "  listen_port integer,\n"
                                     "  payload bytea,\n"
                                     "  captured_len integer,\n"
                                     "  total_bytes bigint,\n"
                                     "  close_reason text,\n"
                                     "  close_detail text,\n"
                                     "  extras jsonb,\n"
                                     "  first_read_len integer,\n"
                                     "  wire bytea";

std::string column_definitions(bool primary_key) {
  std::string out = kColumnTypes;
  out.replace(out.find("%s"), 2, primary_key ? " PRIMARY KEY" : " NOT NULL");
  return out;
}

// ---- options --------------------------------------------------------------

bool plain_identifier(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$';
  });
}

std::string lower(std::string s) {
  for (char &c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct TableName {
  std::string schema; // "" when not qualified
  std::string name;
  std::string quoted() const { return (schema.empty() ? "" : "\"" + schema + "\".") + "\"" + name + "\""; }
};

// "name" or "schema.name", each a plain SQL identifier. Folded to lower case
// as PostgreSQL folds an unquoted name, then quoted in every statement.
TableName parse_table(const std::string &text) {
  const auto dot = text.find('.');
  TableName t;
  if (dot == std::string::npos) {
    t.name = text;
  } else {
    t.schema = text.substr(0, dot);
    t.name = text.substr(dot + 1);
  }
  if ((dot != std::string::npos && !plain_identifier(t.schema)) || !plain_identifier(t.name))
    throw sink::plugin::OptionError("option \"table\": \"" + text +
                                    "\" is not a plain SQL identifier (letters, digits, _ and $, not "
                                    "starting with a digit, at most 63 characters), optionally "
                                    "schema-qualified as schema.table");
  t.schema = lower(t.schema);
  t.name = lower(t.name);
  return t;
}

// ---- COPY binary encoding ----------------------------------------------------

void put16(std::string &out, uint16_t v) {
  const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 2);
}
void put32(std::string &out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>(v >> shift));
}
void put64(std::string &out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>(v >> shift));
}

void field_null(std::string &out) { put32(out, 0xffffffffu); }
void field_bytes(std::string &out, const void *data, size_t len) {
  put32(out, static_cast<uint32_t>(len));
  out.append(static_cast<const char *>(data), len);
}
void field_int4(std::string &out, int64_t v) {
  v = std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  put32(out, 4);
  put32(out, static_cast<uint32_t>(static_cast<int32_t>(v)));
}
void field_int8(std::string &out, int64_t v) {
  put32(out, 8);
  put64(out, static_cast<uint64_t>(v));
}
// text: the database checks the encoding, so text that is not UTF-8 (never
// from a 1.1 host) is stored in the ABI 1.0 escaped form instead of failing
// the whole batch.
void field_text(std::string &out, const char *s) {
  const std::string_view v = s ? s : "";
  if (sink::text::valid_utf8(v)) {
    field_bytes(out, v.data(), v.size());
  } else {
    const std::string e = sink::text::escape_bytes(v);
    field_bytes(out, e.data(), e.size());
  }
}
// inet: family, bits, is_cidr, address length, address (network_recv).
// Unparsable text (never from the host) becomes NULL.
void field_inet(std::string &out, const char *ip) {
  std::string text = ip ? ip : "";
  if (const auto pct = text.find('%'); pct != std::string::npos) text.resize(pct); // no zones in inet
  unsigned char addr[16];
  if (inet_pton(AF_INET, text.c_str(), addr) == 1) {
    put32(out, 8);
    const char head[4] = {2 /* PGSQL_AF_INET */, 32, 0, 4};
    out.append(head, 4);
    out.append(reinterpret_cast<const char *>(addr), 4);
  } else if (inet_pton(AF_INET6, text.c_str(), addr) == 1) {
    put32(out, 20);
    const char head[4] = {3 /* PGSQL_AF_INET6 */, static_cast<char>(128), 0, 16};
    out.append(head, 4);
    out.append(reinterpret_cast<const char *>(addr), 16);
  } else {
    field_null(out);
  }
}
// timestamptz: microseconds since 2000-01-01 UTC (floor of the nanoseconds).
void field_timestamptz(std::string &out, int64_t unix_ns) {
  int64_t us = unix_ns / 1000;
  if (unix_ns % 1000 < 0) --us;
  field_int8(out, us - kPgEpochOffsetUs);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A canonical 8-4-4-4-12 UUID into 16 bytes.
bool parse_uuid(const char *text, uint8_t out[16]) {
  if (!text || std::strlen(text) != 36) return false;
  size_t n = 0;
  for (size_t i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return false;
      continue;
    }
    const int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[n++] = static_cast<uint8_t>(hi << 4 | lo);
    ++i;
  }
  return n == 16;
}

// For a record without an id (ABI 1.0 layout): a UUIDv8 hashed (FNV-1a) from
// what identifies the connection, so a record written again maps to the
// same row.
void derived_uuid(const sink_record &r, uint8_t out[16]) {
  uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
  auto mix = [&](const void *data, size_t len) {
    const auto *p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < len; ++i)
      for (auto &x : h)
        x = (x ^ p[i]) * 0x100000001b3ULL;
    for (auto &x : h) // a separator between fields
      x = (x ^ 0xff) * 0x100000001b3ULL;
  };
  auto mix_str = [&](const char *s) { mix(s ? s : "", s ? std::strlen(s) : 0); };
  mix(&r.accept_unix_ns, sizeof r.accept_unix_ns);
  mix(&r.duration_ns, sizeof r.duration_ns);
  mix_str(r.group);
  mix_str(r.local_ip);
  mix(&r.local_port, sizeof r.local_port);
  mix_str(r.remote_ip);
  mix(&r.remote_port, sizeof r.remote_port);
  mix(&r.total_bytes, sizeof r.total_bytes);
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<uint8_t>(h[0] >> (56 - 8 * i));
    out[8 + i] = static_cast<uint8_t>(h[1] >> (56 - 8 * i));
  }
  out[6] = static_cast<uint8_t>((out[6] & 0x0f) | 0x80); // version 8
  out[8] = static_cast<uint8_t>((out[8] & 0x3f) | 0x80); // RFC 4122 variant
}

template <typename Field> bool covers(const sink_record &r, const Field &field) {
  return r.struct_size >=
         static_cast<size_t>(reinterpret_cast<const char *>(&field) - reinterpret_cast<const char *>(&r)) +
             sizeof field;
}

using RowKey = std::array<uint8_t, 16>;

// The row's id: the record's, or one derived from it (ABI 1.0 layout).
RowKey row_key(const sink_record &r) {
  RowKey id;
  if (!(covers(r, r.value_size) && parse_uuid(r.id, id.data()))) derived_uuid(r, id.data());
  return id;
}

std::string uuid_text(const RowKey &id) {
  static const char *kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[id[i] >> 4];
    out += kHex[id[i] & 15];
  }
  return out;
}

// One tuple of the COPY binary stream.
void encode_row(std::string &out, const sink_record &r, const RowKey &id) {
  const bool v11 = covers(r, r.value_size);
  put16(out, static_cast<uint16_t>(kColumnCount));
  field_bytes(out, id.data(), id.size());
  if (v11)
    field_text(out, r.sensor);
  else
    field_null(out);
  field_timestamptz(out, r.accept_unix_ns);
  field_int8(out, r.duration_ns);
  field_text(out, r.group);
  field_text(out, r.transport);
  field_inet(out, r.local_ip);
  field_int4(out, r.local_port);
  field_inet(out, r.remote_ip);
  field_int4(out, r.remote_port);
  if (v11)
    field_int4(out, r.listen_port);
  else
    field_null(out);
  field_bytes(out, r.payload, r.payload ? r.captured_len : 0);
  field_int4(out, static_cast<int64_t>(std::min<size_t>(r.captured_len, INT32_MAX)));
  field_int8(out, static_cast<int64_t>(std::min<uint64_t>(r.total_bytes, INT64_MAX)));
  field_text(out, sink_close_reason_name(r.close_reason));
  field_text(out, r.close_detail);
  const std::string extras = sink::format::extras_jsonb(r);
  put32(out, static_cast<uint32_t>(extras.size() + 1));
  out.push_back('\x01'); // jsonb binary format version
  out += extras;
  if (v11) {
    field_int4(out, static_cast<int64_t>(std::min<size_t>(r.first_read_len, INT32_MAX)));
    if (r.wire)
      field_bytes(out, r.wire, r.wire_len);
    else
      field_null(out);
  } else {
    field_null(out);
    field_null(out);
  }
}

// libpq's messages end in a newline and may span lines.
std::string one_line(const char *msg) {
  std::string out;
  for (const char *p = msg ? msg : ""; *p; ++p)
    out += (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out.empty() ? "unknown error" : out;
}

void ignore_notice(void *, const char *) {}

// Errors that sending the same row again can never cure: SQLSTATE class 22
// (data exception), 23 (integrity constraint violation) and 54000 (program
// limit exceeded, e.g. an index row too large). Class 08 (connection) and
// everything else is an outage or a table problem, retried.
bool refused_for_good(const std::string &sqlstate) {
  const std::string_view cls = std::string_view(sqlstate).substr(0, 2);
  return cls == "22" || cls == "23" || sqlstate == "54000";
}

std::string sqlstate_of(const PGresult *res) {
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  return state ? state : "";
}

// The primary message only: the DETAIL of a refused row repeats the row.
std::string primary_message(const PGresult *res) {
  const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  return one_line(msg);
}

// ---- the instance -------------------------------------------------------------

class PostgresOutput {
public:
  PostgresOutput(const sink_create_args &args, std::string conninfo, TableName table)
      : host_(args.host), ctx_(args.host_ctx), conninfo_(std::move(conninfo)), table_(std::move(table)) {
    staging_ = "pg_temp.sink_staging";
  }

  // Moves the staging rows into the table; a row whose id is there already
  // (a record written again after a failed flush) is dropped.
  std::string insert_sql(const char *where = "") const {
    return "INSERT INTO " + table_.quoted() + " (" + kColumns + ") SELECT " + kColumns + " FROM " + staging_ +
           where + " ON CONFLICT (id) DO NOTHING";
  }

  // At create: an unreachable server is logged, not fatal.
  void first_connect() {
    if (connect(true)) return;
    log(SINK_LOG_WARN, "PostgreSQL is not reachable at start (" + last_reason_ +
                           "); sink runs and records wait; retrying with back-off up to 5 s");
    outage_ = true;
    backoff_ = kBackoffFirst;
    next_attempt_ = Clock::now() + backoff_;
  }

  int write(const sink_record &r) {
    // Nothing can be committed while the server is away: say so at once, so
    // the host backs off (and keeps the records) instead of buffering.
    const RowKey key = row_key(r);
    if (const auto it = refused_rows_.find(key); it != refused_rows_.end()) {
      log(SINK_LOG_ERROR, "record " + uuid_text(key) + " refused for good by PostgreSQL: " + it->second);
      refused_rows_.erase(it);
      return SINK_ERR_REFUSED;
    }
    if (!ensure_connected()) return SINK_ERR_IO;
    row_starts_.push_back(buffer_.size());
    row_keys_.push_back(key);
    encode_row(buffer_, r, key);
    ++rows_;
    return SINK_OK;
  }

  int flush() {
    if (rows_ == 0) return SINK_OK;
    if (!ensure_connected()) {
      drop_batch();
      return SINK_ERR_IO;
    }
    refused_ = false;
    const bool ok = send_batch(buffer_);
    if (!ok && refused_) find_refused_rows();
    drop_batch(); // committed, or the host writes it all again
    return ok ? SINK_OK : SINK_ERR_IO;
  }

  void close() noexcept {
    try {
      if (rows_ && conn_ && PQstatus(conn_.get()) == CONNECTION_OK) send_batch(buffer_);
    } catch (...) {
    }
    conn_.reset();
  }

private:
  void log(sink_log_level level, const std::string &msg) const noexcept {
    if (host_ && host_->log) host_->log(ctx_, level, msg.c_str());
  }

  void drop_batch() {
    buffer_.clear();
    row_starts_.clear();
    row_keys_.clear();
    rows_ = 0;
  }

  // The COPY tuples of rows [first, last) of the batch.
  std::string_view rows(size_t first, size_t last) const {
    const size_t from = row_starts_[first], to = last < rows_ ? row_starts_[last] : buffer_.size();
    return std::string_view(buffer_).substr(from, to - from);
  }

  // The batch failed on a row refused for good: commits every other row and
  // remembers the refused ones for write. The flush still fails, so the
  // host writes the batch again and learns which rows to set aside.
  void find_refused_rows() {
    const size_t before = refused_rows_.size();
    const bool whole = split(0, rows_);
    log(SINK_LOG_ERROR, "PostgreSQL refused " + std::to_string(refused_rows_.size() - before) +
                            " row(s) of a " + std::to_string(rows_) + "-row batch for good (" + refusal_ +
                            ")" +
                            (whole ? "; the other rows are committed" : "; then the connection failed") +
                            ", and the batch is written again without the refused rows");
  }

  // Rows [first, last) failed together: each half on its own. False on an
  // outage (what is not committed is written again anyway).
  bool split(size_t first, size_t last) {
    if (last - first == 1) {
      refused_rows_.emplace(row_keys_[first], refusal_);
      return true;
    }
    const size_t mid = first + (last - first) / 2;
    return send_or_split(first, mid) && send_or_split(mid, last);
  }

  bool send_or_split(size_t first, size_t last) {
    refused_ = false;
    if (send_batch(rows(first, last))) return true;
    return refused_ && split(first, last);
  }

  ResultPtr exec(const std::string &sql) { return ResultPtr(PQexec(conn_.get(), sql.c_str())); }

  bool command_ok(const std::string &sql, std::string *why) {
    ResultPtr res = exec(sql);
    if (res && PQresultStatus(res.get()) == PGRES_COMMAND_OK) return true;
    *why = one_line(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn_.get()));
    note_error(res.get());
    return false;
  }

  // Connects, makes the table and the session's staging table, and checks
  // that the INSERT fits the table (an existing table of another shape fails
  // here, with PostgreSQL's words).
  bool connect(bool at_create) {
    conn_.reset();
    ++attempts_;
    const char *keywords[] = {"connect_timeout", "fallback_application_name", "dbname", "client_encoding",
                              nullptr};
    const char *values[] = {kDefaultConnectTimeout, "sink", conninfo_.c_str(), "UTF8", nullptr};
    ConnPtr conn(PQconnectdbParams(keywords, values, 1));
    if (!conn) {
      last_reason_ = "out of memory";
      return false;
    }
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      last_reason_ = one_line(PQerrorMessage(conn.get()));
      return false;
    }
    PQsetNoticeProcessor(conn.get(), ignore_notice, nullptr);
    conn_ = std::move(conn);
    const std::string where = std::string(PQdb(conn_.get())) + " at " +
                              (PQhost(conn_.get()) ? PQhost(conn_.get()) : "?") + ":" + PQport(conn_.get());
    std::string why;
    const std::string index = table_.name.substr(0, 63 - 14) + "_accept_ts_idx";
    const bool ok =
        command_ok("CREATE TABLE IF NOT EXISTS " + table_.quoted() + " (\n  " + column_definitions(true) +
                       "\n)",
                   &why) &&
        command_ok("CREATE INDEX IF NOT EXISTS \"" + index + "\" ON " + table_.quoted() + " (accept_ts)",
                   &why) &&
        command_ok("CREATE TEMP TABLE IF NOT EXISTS sink_staging (\n  " + column_definitions(false) + "\n)",
                   &why) &&
        command_ok(insert_sql(" WHERE false"), &why);
    if (!ok) {
      // The table itself is wrong: no back-off makes that go away, so say
      // so each time it changes (and at most once a minute).
      last_reason_ = "connected to " + where + " but cannot use table " + table_.quoted() + ": " + why;
      conn_.reset();
      return false;
    }
    // Silent after a batch error (that was logged), so retries add no lines.
    if (!at_create && outage_)
      log(SINK_LOG_INFO, "connected to PostgreSQL (" + where + ") again after " +
                             std::to_string(attempts_ - 1) + " failed attempts; writing resumes");
    else if (at_create)
      log(SINK_LOG_INFO, "connected to PostgreSQL (" + where + "), table " + table_.quoted());
    outage_ = false;
    error_logged_ = false;
    attempts_ = 0;
    backoff_ = std::chrono::milliseconds(0);
    return true;
  }

  bool ensure_connected() {
    if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return true;
    if (conn_) lost("the connection went bad: " + one_line(PQerrorMessage(conn_.get())));
    const auto now = Clock::now();
    if (now < next_attempt_) return false;
    if (connect(false)) return true;
    outage_ = true;
    backoff_ = backoff_.count() ? std::min(backoff_ * 2, kBackoffLimit) : kBackoffFirst;
    next_attempt_ = Clock::now() + backoff_;
    if (!error_logged_) {
      // Once per outage (ERROR, so the host knows the reason was given).
      log(SINK_LOG_ERROR, "cannot write to PostgreSQL: " + last_reason_ +
                              "; records stay pending, reconnecting with back-off up to 5 s");
      error_logged_ = true;
      logged_reason_ = last_reason_;
    }
    return false;
  }

  // The connection broke while in use: drop it; the next call reconnects.
  void lost(const std::string &why) {
    conn_.reset();
    if (!outage_) {
      outage_ = true;
      error_logged_ = true;
      attempts_ = 0;
      log(SINK_LOG_ERROR, "lost the connection to PostgreSQL (" + why +
                              "); records stay pending, reconnecting with back-off up to 5 s");
    }
    backoff_ = kBackoffFirst;
    next_attempt_ = Clock::now() + backoff_;
  }

  void note_error(const PGresult *res) {
    last_sqlstate_ = sqlstate_of(res);
    last_primary_ = primary_message(res);
  }

  // A statement failed: roll back; reconnect later if the connection is gone.
  bool failed(const std::string &what, const std::string &why) {
    const std::string sqlstate = std::exchange(last_sqlstate_, std::string());
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      lost(what + ": " + why);
      return false;
    }
    exec("ROLLBACK");
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      lost(what + ": " + why);
      return false;
    }
    if (refused_for_good(sqlstate)) {
      // The session and the table are fine; only a row is not wanted. The
      // caller says which, so nothing is logged here.
      refused_ = true;
      refusal_ = what + ": " + last_primary_ + " (SQLSTATE " + sqlstate + ")";
      return false;
    }
    // The server is there but refused the batch: say why, without repeating
    // the same words at every retry.
    const auto now = Clock::now();
    const std::string msg = what + " failed: " + why;
    if (msg != logged_reason_ || now - last_error_log_ >= std::chrono::minutes(1)) {
      log(SINK_LOG_ERROR, msg + "; the batch is rolled back and written again");
      logged_reason_ = msg;
      last_error_log_ = now;
    }
    // Start the next attempt on a fresh session: it makes the table again if
    // it was dropped, and checks that it still fits.
    conn_.reset();
    backoff_ = kBackoffFirst;
    next_attempt_ = now + backoff_;
    return false;
  }

  // BEGIN; COPY staging; INSERT ... ON CONFLICT DO NOTHING; TRUNCATE; COMMIT.
  bool send_batch(std::string_view tuples) {
    last_sqlstate_.clear();
    std::string why;
    if (!command_ok("BEGIN", &why)) return failed("BEGIN", why);
    {
      ResultPtr res =
          exec(std::string("COPY ") + staging_ + " (" + kColumns + ") FROM STDIN (FORMAT binary)");
      if (!res || PQresultStatus(res.get()) != PGRES_COPY_IN) {
        note_error(res.get());
        return failed("COPY", one_line(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn_.get())));
      }
    }
    std::string head("PGCOPY\n\377\r\n\0", 11);
    put32(head, 0); // flags
    put32(head, 0); // header extension length
    std::string tail;
    put16(tail, 0xffff);
    bool sent = PQputCopyData(conn_.get(), head.data(), static_cast<int>(head.size())) == 1;
    constexpr size_t kChunk = 1 << 20;
    for (size_t at = 0; sent && at < tuples.size(); at += kChunk) {
      const size_t n = std::min(kChunk, tuples.size() - at);
      sent = PQputCopyData(conn_.get(), tuples.data() + at, static_cast<int>(n)) == 1;
    }
    sent = sent && PQputCopyData(conn_.get(), tail.data(), static_cast<int>(tail.size())) == 1;
    std::string copy_error = sent ? "" : one_line(PQerrorMessage(conn_.get()));
    if (PQputCopyEnd(conn_.get(), sent ? nullptr : "sink could not send the batch") != 1)
      return failed("COPY", one_line(PQerrorMessage(conn_.get())));
    while (ResultPtr res{PQgetResult(conn_.get())}) {
      const auto status = PQresultStatus(res.get());
      if (status == PGRES_COMMAND_OK) continue;
      if (copy_error.empty()) {
        copy_error = one_line(PQresultErrorMessage(res.get()));
        note_error(res.get());
      }
      if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
        lost("COPY did not end");
        return false;
      }
    }
    if (!copy_error.empty()) return failed("COPY", copy_error);
    if (!command_ok(insert_sql(), &why)) return failed("INSERT", why);
    if (!command_ok(std::string("TRUNCATE ") + staging_, &why)) return failed("TRUNCATE", why);
    ResultPtr res = exec("COMMIT");
    // A COMMIT of a failed transaction "succeeds" as ROLLBACK: check the tag.
    if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK ||
        std::strcmp(PQcmdStatus(res.get()), "COMMIT")) {
      note_error(res.get()); // a deferred constraint fails here
      return failed("COMMIT", one_line(res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn_.get())));
    }
    return true;
  }

  const sink_host_api *host_;
  sink_host_ctx *ctx_;
  std::string conninfo_;
  TableName table_;
  std::string staging_;

  ConnPtr conn_;
  std::string buffer_;             // COPY binary tuples of the records since the last flush
  std::vector<size_t> row_starts_; // where each row's tuple starts in buffer_
  std::vector<RowKey> row_keys_;   // each row's id
  size_t rows_ = 0;
  // Rows PostgreSQL refused for good, and its words: answered with
  // SINK_ERR_REFUSED when the host writes them again.
  std::map<RowKey, std::string> refused_rows_;

  bool refused_ = false;      // the last send failed on a row refused for good
  std::string refusal_;       // ... and PostgreSQL's words
  std::string last_sqlstate_; // of the last failed statement, for failed()
  std::string last_primary_;
  bool outage_ = false;       // the server is (or was last seen) unreachable
  bool error_logged_ = false; // this outage was logged
  unsigned attempts_ = 0;     // failed connection attempts in this outage
  std::chrono::milliseconds backoff_{0};
  Clock::time_point next_attempt_{};
  std::string last_reason_;   // why the last connection attempt failed
  std::string logged_reason_; // the last batch error logged
  Clock::time_point last_error_log_{};
};

int pg_create(const sink_create_args *args, void **instance) noexcept {
  try {
    sink::plugin::PluginOptions opts(args->config_json);
    opts.only({"conninfo", "table"});
    const std::string conninfo = opts.string("conninfo", "");
    if (conninfo.find('\0') != std::string::npos)
      throw sink::plugin::OptionError("option \"conninfo\" holds a NUL byte");
    if (!conninfo.empty()) {
      char *err = nullptr;
      std::unique_ptr<PQconninfoOption, ConninfoDeleter> parsed(PQconninfoParse(conninfo.c_str(), &err));
      std::unique_ptr<char, FreememDeleter> err_owner(err);
      if (!parsed)
        throw sink::plugin::OptionError("option \"conninfo\" is not a libpq connection string or URI: " +
                                        one_line(err ? err : "out of memory"));
    }
    TableName table = parse_table(opts.string("table", "sink_records"));
    auto out = std::make_unique<PostgresOutput>(*args, conninfo, std::move(table));
    out->first_connect();
    *instance = out.release();
    return SINK_OK;
  } catch (const sink::plugin::OptionError &e) {
    sink::plugin::set_create_error(args, e.what());
    return SINK_ERR_CONFIG;
  } catch (const std::exception &e) {
    sink::plugin::set_create_error(args, std::string("postgresql: ") + e.what());
    return SINK_ERR;
  } catch (...) {
    sink::plugin::set_create_error(args, "postgresql: unexpected error");
    return SINK_ERR;
  }
}

int pg_write(void *instance, const sink_record *record) noexcept {
  if (!instance || !record) return SINK_ERR;
  try {
    return static_cast<PostgresOutput *>(instance)->write(*record);
  } catch (...) {
    return SINK_ERR_IO;
  }
}

int pg_flush(void *instance) noexcept {
  if (!instance) return SINK_ERR;
  try {
    return static_cast<PostgresOutput *>(instance)->flush();
  } catch (...) {
    return SINK_ERR_IO;
  }
}

void pg_destroy(void *instance) noexcept {
  std::unique_ptr<PostgresOutput> out(static_cast<PostgresOutput *>(instance));
  if (out) out->close();
}

const sink_output_ops kOps{sizeof(sink_output_ops), pg_create, pg_write, pg_flush, nullptr, pg_destroy};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    1, // needs the ABI 1.1 output contract (flush = committed) and record ids
    SINK_PLUGIN_OUTPUT,
    "postgresql",
    "1.0.0",
    "PostgreSQL table rows, batched with COPY, duplicates dropped by id",
    &kOps,
    nullptr,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
