/*
 * sink plugin ABI — the whole public SDK.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * SINK_PLUGIN_ENTRY_SYMBOL, returning a pointer to a constant descriptor.
 * The host dlopen()s it with RTLD_NOW | RTLD_LOCAL, checks the descriptor and
 * never unloads it. Plugins include nothing else from sink and never link
 * back into the host: everything they may call is in sink_host_api.
 *
 * Versioning. SINK_ABI_MAJOR changes when an existing field, type or
 * meaning changes; a plugin built for another major is refused. New fields
 * are only ever appended to the structs below (each carries struct_size, or
 * its container says how large it is) and bump SINK_ABI_MINOR. A plugin's
 * descriptor states the LOWEST host minor it needs (0 if it uses nothing
 * newer than ABI 1.0, 1 if it relies on anything marked "ABI 1.1"); the
 * host refuses a plugin that needs a newer minor than its own and reads only
 * the fields a plugin's struct_size covers. SINK_ABI_MINOR is the minor of
 * this header, not what a plugin should put in its descriptor.
 *
 * What each minor added:
 *  1.1  record: listen_port, sensor, id, first_read_len, wire/wire_len,
 *       typed extras (values/values_count/value_size); extra writer:
 *       struct_size, add_typed, set_wire; the analyzer kind; create args:
 *       config_dir, worker; the output contract below (flush = durable,
 *       one thread per output instance).
 *
 * Threading contract.
 *  - Output plugins: create, write, flush, reopen and destroy of one instance
 *    are never called concurrently. create and destroy run on the main
 *    thread; write, flush and reopen run on that instance's own output
 *    thread (ABI 1.1: every output instance has a thread of its own, so a
 *    stalled output never holds up another). Nothing is called after
 *    destroy.
 *  - Transport plugins: one instance per group PER NETWORK THREAD, so an
 *    instance is never called from two threads (create args say which
 *    network thread, `worker`). create and destroy run on the main thread
 *    before any connection is accepted / after the last one is gone;
 *    accept, conn_finish and conn_free run on the network thread that owns
 *    the connection's event_base.
 *  - Analyzer plugins (ABI 1.1): create and destroy on the main thread;
 *    analyze on the record thread, which runs every analyzer, in config
 *    order, on each record before any output sees it. Calls on one instance
 *    never overlap.
 *  - sink_host_api functions may be called from any thread, at any time
 *    between create and destroy.
 *
 * Errors. Every entry point returns SINK_OK or a negative sink_status and
 * must not let a C++ exception escape (mark them noexcept / catch all).
 * create reports why it failed by writing a NUL-terminated message into
 * the caller's buffer. sink_status is append-only: values are added at the
 * end and never changed or reused, without a minor bump. A host that does
 * not know a status a plugin returns treats it as SINK_ERR (an older host
 * retries a record refused with SINK_ERR_REFUSED like any failed write),
 * so a plugin may return a newer status to any 1.x host.
 *
 * Memory. Whatever a side allocates, that side frees. Pointers passed into
 * a call (the record, configuration text, host strings) are borrowed and
 * valid only for the duration of that call.
 */
#ifndef SINK_PLUGIN_H
#define SINK_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SINK_ABI_MAJOR 1
#define SINK_ABI_MINOR 1

/* The one symbol every plugin exports. */
#define SINK_PLUGIN_ENTRY_SYMBOL "sink_plugin_entry"

#if defined(__GNUC__)
#define SINK_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define SINK_PLUGIN_EXPORT
#endif

typedef enum sink_status {
  SINK_OK = 0,
  SINK_ERR = -1,        /* generic failure, see log */
  SINK_ERR_CONFIG = -2, /* bad configuration handed to create */
  SINK_ERR_IO = -3,     /* the plugin's sink (file, socket...) failed */
  /* From write only: the store refused THIS record for good (a constraint,
   * a data error, too large), not an outage. The host sets the record aside
   * (counted, logged with its id, appended to a dead-letter file) and goes
   * on with the next; it never hands that record to this output again. From
   * any other entry point it counts as SINK_ERR. Hosts before it: SINK_ERR. */
  SINK_ERR_REFUSED = -4
} sink_status;

typedef enum sink_plugin_kind {
  SINK_PLUGIN_OUTPUT = 1,
  SINK_PLUGIN_TRANSPORT = 2,
  SINK_PLUGIN_ANALYZER = 3 /* ABI 1.1 */
} sink_plugin_kind;

typedef enum sink_log_level {
  SINK_LOG_DEBUG = 0,
  SINK_LOG_INFO = 1,
  SINK_LOG_WARN = 2,
  SINK_LOG_ERROR = 3
} sink_log_level;

/* Why a connection ended. The names are what outputs print. */
typedef enum sink_close_reason {
  SINK_CLOSE_CLIENT_FIN = 0,   /* peer closed its side (FIN / TLS EOF) */
  SINK_CLOSE_CLIENT_RST = 1,   /* peer reset the connection */
  SINK_CLOSE_TIMEOUT = 2,      /* absolute deadline (accept + timeout) */
  SINK_CLOSE_IDLE_TIMEOUT = 3, /* nothing received for idle_timeout */
  SINK_CLOSE_SHUTDOWN = 4,     /* the server was stopping */
  SINK_CLOSE_ERROR = 5         /* any other read or protocol error */
} sink_close_reason;

/* Returns "client_fin", "client_rst", ... ; static storage. */
static inline const char *sink_close_reason_name(sink_close_reason r) {
  switch (r) {
  case SINK_CLOSE_CLIENT_FIN: return "client_fin";
  case SINK_CLOSE_CLIENT_RST: return "client_rst";
  case SINK_CLOSE_TIMEOUT: return "timeout";
  case SINK_CLOSE_IDLE_TIMEOUT: return "idle_timeout";
  case SINK_CLOSE_SHUTDOWN: return "shutdown";
  case SINK_CLOSE_ERROR: return "error";
  }
  return "error";
}

/* One transport-provided fact about a connection, e.g. {"tls.sni", "x"}.
 * ABI 1.0 view: every extra as text. Since 1.1 the host derives it from the
 * typed extras: strings and bytes with every byte outside printable ASCII
 * and valid UTF-8 (and every backslash) written as \xHH, booleans as
 * "true"/"false", integers and floats in decimal. */
typedef struct sink_extra {
  const char *key;
  const char *value;
} sink_extra;

/* ABI 1.1: the type a plugin declares for an extra's value. */
typedef enum sink_value_type {
  SINK_VALUE_STRING = 1, /* text, UTF-8; bytes/len, may hold NUL */
  SINK_VALUE_BOOL = 2,   /* integer: 0 or 1 */
  SINK_VALUE_INT = 3,    /* integer */
  SINK_VALUE_FLOAT = 4,  /* number (finite) */
  SINK_VALUE_BYTES = 5   /* raw bytes: bytes/len */
} sink_value_type;

/* ABI 1.1: one typed extra. Elements of sink_record.values are
 * sink_record.value_size bytes apart (use sink_record_value()), so fields
 * appended here later never move the elements a plugin already knows. */
typedef struct sink_value_extra {
  size_t struct_size; /* sizeof(sink_value_extra) of the host */
  const char *key;    /* NUL-terminated, e.g. "tls.sni" */
  sink_value_type type;
  const uint8_t *bytes; /* STRING, BYTES: len bytes (plus a NUL after them) */
  size_t len;
  int64_t integer; /* BOOL, INT */
  double number;   /* FLOAT */
} sink_value_extra;

/*
 * One connection, handed to every output when it closed. Borrowed: valid
 * only during write(). Strings are NUL-terminated UTF-8.
 */
typedef struct sink_record {
  size_t struct_size;     /* sizeof(sink_record) of the host */
  int64_t accept_unix_ns; /* wall-clock accept time, ns since the epoch */
  int64_t duration_ns;    /* accept to close, monotonic clock */
  const char *group;      /* config group name */
  const char *transport;  /* transport plugin name, e.g. "tcp" */
  const char *local_ip;   /* textual, IPv4-mapped IPv6 shown as IPv4 */
  uint16_t local_port;
  const char *remote_ip;
  uint16_t remote_port;
  const uint8_t *payload; /* first captured_len bytes of the stream */
  size_t captured_len;    /* <= capture limit of the group */
  uint64_t total_bytes;   /* every application byte received */
  sink_close_reason close_reason;
  const char *close_detail; /* human detail, e.g. "connection reset by peer"; "" if none */
  const sink_extra *extras; /* transport facts, extras_count entries */
  size_t extras_count;
  /* ---- ABI 1.1: present when struct_size covers them ---- */
  uint16_t listen_port;  /* port of the listening socket that accepted it;
                            equals local_port unless a firewall redirected */
  const char *sensor;    /* this sensor's name; "" when none is configured */
  const char *id;        /* 36-character UUIDv7 taken at accept: unique,
                            sortable, monotonic within a millisecond */
  size_t first_read_len; /* bytes the first raw read returned; 0 if none */
  const uint8_t *wire;   /* transports that transform bytes (TLS): the first
                            bytes as they arrived on the wire; else NULL */
  size_t wire_len;
  const sink_value_extra *values; /* every extra with its declared type */
  size_t values_count;
  size_t value_size; /* stride of `values`: sizeof(sink_value_extra) of the host */
} sink_record;

/* ABI 1.1: the i-th typed extra of a record. */
static inline const sink_value_extra *sink_record_value(const sink_record *r, size_t i) {
  return (const sink_value_extra *)((const char *)r->values + i * r->value_size);
}

/* Opaque host-side handle passed back with every host call. */
typedef struct sink_host_ctx sink_host_ctx;

/*
 * Services the host offers. Append-only: a plugin checks struct_size before
 * using a field added after ABI 1.0.
 */
typedef struct sink_host_api {
  size_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  /* Write one log line attributed to this plugin instance. */
  void (*log)(sink_host_ctx *ctx, sink_log_level level, const char *message);
} sink_host_api;

/* Everything a create() call gets. Borrowed for the duration of create. */
typedef struct sink_create_args {
  size_t struct_size;
  const sink_host_api *host;
  sink_host_ctx *host_ctx; /* keep it: pass it to host->log later */
  const char *config_json; /* the plugin's YAML subtree as a JSON object */
  char *error;             /* on failure, write a message here ... */
  size_t error_size;       /* ... of at most this many bytes incl. NUL */
  /* Transport plugins only (NULL / 0 for outputs): the group this instance
   * serves and how many payload bytes the host keeps per connection, so a
   * transport can keep as many of its own raw bytes. */
  const char *group;
  size_t capture_bytes;
  /* ---- ABI 1.1 ---- */
  const char *config_dir; /* absolute directory of the config file (the
                             working directory for flags / built-in config):
                             resolve relative paths in options against it */
  uint32_t worker;        /* transports: the network thread this instance
                             serves (0-based); 0 for other kinds */
} sink_create_args;

/* ---- output plugins ----------------------------------------------------
 * The output contract (ABI 1.1, and how a 1.0 output is driven too):
 *  - write hands one record to the plugin, which may buffer or submit it.
 *    SINK_OK means "taken", not yet "safe".
 *  - flush returns SINK_OK only when everything written before it is
 *    durable or acknowledged: on the OS for files, acknowledged by a broker,
 *    committed by a database. The host counts records as written, and
 *    moves that output's position past them, only on a successful flush.
 *    It flushes each time it has handed over what was waiting, and before
 *    destroy.
 *  - A failed write is retried later with the same record; a failed flush
 *    makes the host write again every record since the last successful
 *    flush, then flush again. So a retry must be harmless: on a failed
 *    flush, drop (or cut back) what you buffered since your last successful
 *    flush; write records idempotently (ids are unique) or atomically.
 *    Delivery is at-least-once.
 *  - A record the store will never take (a constraint or data error, not
 *    an outage) is refused by returning SINK_ERR_REFUSED from write; the
 *    host sets it aside and writes the next. A plugin that learns of such a
 *    refusal only at flush (a batch) fails the flush, then, when the host
 *    writes the batch again, returns SINK_ERR_REFUSED from the write of the
 *    record the store refused (e.g. by sending each record on its own).
 *  - Each output instance runs on its own thread; a write that blocks holds
 *    up only its own output. The host keeps a bounded backlog per output
 *    and counts what a stalled output had to skip as lost for it alone. */
typedef struct sink_output_ops {
  size_t struct_size;
  /* Make an instance from its config. Open files here. */
  int (*create)(const sink_create_args *args, void **instance);
  /* Take one record (see the contract above). */
  int (*write)(void *instance, const sink_record *record);
  /* Make everything written so far durable (see the contract above). */
  int (*flush)(void *instance);
  /* Reopen files (log rotation). May be NULL. */
  int (*reopen)(void *instance);
  /* Flush, close and free. Never fails. */
  void (*destroy)(void *instance);
} sink_output_ops;

/* ---- transport plugins --------------------------------------------------- */
struct event_base;
struct bufferevent;

/* Collects extras from a transport's conn_finish or an analyzer's analyze;
 * the host copies key and value immediately. Only valid during that call. */
typedef struct sink_extra_writer {
  void *ctx;
  /* ABI 1.0: a text value (NUL-terminated), recorded as a STRING. */
  void (*add)(void *ctx, const char *key, const char *value);
  /* ---- ABI 1.1: present when the host's minor is >= 1 (always, for a
   * plugin whose descriptor asks for minor 1) ---- */
  size_t struct_size;
  /* A value of a declared type; nothing is inferred from text.
   *   STRING, BYTES: value points to len bytes (any bytes, NUL included).
   *   BOOL: value points to a uint8_t (0 or 1), len 1.
   *   INT:  value points to an int64_t, len 8.
   *   FLOAT: value points to a double, len 8.
   * A STRING that is not valid UTF-8 is kept as BYTES, so nothing is lost.
   * A call with a NULL key, a bad type or a wrong len is ignored, and so is
   * a key the record already has: extras are never replaced (the transport's
   * come first, then each analyzer's in config order). */
  void (*add_typed)(void *ctx, const char *key, sink_value_type type, const void *value, size_t len);
  /* Transports that transform bytes (TLS): the first bytes as they arrived
   * on the wire (up to the group's capture_bytes) and how many bytes the
   * first raw read returned. NULL for analyzers. */
  void (*set_wire)(void *ctx, const uint8_t *wire, size_t wire_len, size_t first_read_len);
} sink_extra_writer;

/* ABI 1.1 conveniences over add_typed. */
static inline void sink_add_string(const sink_extra_writer *w, const char *key, const char *s, size_t len) {
  w->add_typed(w->ctx, key, SINK_VALUE_STRING, s, len);
}
static inline void sink_add_bytes(const sink_extra_writer *w, const char *key, const void *b, size_t len) {
  w->add_typed(w->ctx, key, SINK_VALUE_BYTES, b, len);
}
static inline void sink_add_bool(const sink_extra_writer *w, const char *key, int v) {
  uint8_t b = v ? 1 : 0;
  w->add_typed(w->ctx, key, SINK_VALUE_BOOL, &b, 1);
}
static inline void sink_add_int(const sink_extra_writer *w, const char *key, int64_t v) {
  w->add_typed(w->ctx, key, SINK_VALUE_INT, &v, sizeof v);
}
static inline void sink_add_float(const sink_extra_writer *w, const char *key, double v) {
  w->add_typed(w->ctx, key, SINK_VALUE_FLOAT, &v, sizeof v);
}

typedef struct sink_transport_ops {
  size_t struct_size;
  /* One instance per group that uses this transport. */
  int (*create)(const sink_create_args *args, void **instance);
  /* Wrap a freshly accepted, non-blocking socket in a bufferevent (created
   * with BEV_OPT_CLOSE_ON_FREE) on base. The host owns the bufferevent from
   * here on, sets its callbacks and frees it. *conn_state is the plugin's
   * per-connection state (may stay NULL). Return NULL on failure; the host
   * then closes fd itself and records the connection as an error.
   * Called once per connection when the client first makes the socket
   * readable (bytes, FIN or RST), or at the close if it never does: a silent
   * connection costs no bufferevent. With reads_plain_socket the host reads
   * the socket itself and never enables the returned bufferevent. */
  struct bufferevent *(*accept)(void *instance, struct event_base *base, int fd, void **conn_state);
  /* The connection is ending. events is the libevent BEV_EVENT_* mask that
   * ended it (0 for timeouts and shutdown); *reason holds the host's
   * classification, which the plugin may refine. Add extras via writer.
   * May be NULL. */
  void (*conn_finish)(void *instance, void *conn_state, struct bufferevent *bev, short events,
                      sink_close_reason *reason, const sink_extra_writer *writer);
  /* Free conn_state; called after the bufferevent was freed. May be NULL. */
  void (*conn_free)(void *instance, void *conn_state);
  void (*destroy)(void *instance);
  /* Non-zero when the bufferevent reads straight from the socket, so the
   * host may drain the kernel buffer itself at a server-side close. The
   * host then reads the socket itself and relies on its close: keep no
   * copy of the descriptor past the bufferevent's free. */
  int reads_plain_socket;
} sink_transport_ops;

/* ---- analyzer plugins (ABI 1.1) ------------------------------------------ */
typedef struct sink_analyzer_ops {
  size_t struct_size;
  /* One instance per `analyzers:` entry. */
  int (*create)(const sink_create_args *args, void **instance);
  /* Called once per record, off the network thread, before the record
   * reaches any output (or journal). The record shows the extras added so
   * far (the transport's, then earlier analyzers'); add your own through
   * writer (add / add_typed; set_wire is NULL). An analyzer never changes
   * or drops a record; an error return is logged and the record goes on. */
  int (*analyze)(void *instance, const sink_record *record, const sink_extra_writer *writer);
  void (*destroy)(void *instance);
} sink_analyzer_ops;

/* ---- the descriptor -------------------------------------------------------- */
typedef struct sink_plugin_descriptor {
  size_t struct_size; /* sizeof(sink_plugin_descriptor) */
  uint32_t abi_major; /* SINK_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor; /* the LOWEST host minor this plugin needs (0 or 1) */
  sink_plugin_kind kind;
  const char *name;                    /* unique, e.g. "csv" */
  const char *version;                 /* the plugin's own version, e.g. "1.0.0" */
  const char *description;             /* one line */
  const sink_output_ops *output;       /* kind == SINK_PLUGIN_OUTPUT */
  const sink_transport_ops *transport; /* kind == SINK_PLUGIN_TRANSPORT */
  /* ---- ABI 1.1 ---- */
  const sink_analyzer_ops *analyzer; /* kind == SINK_PLUGIN_ANALYZER */
} sink_plugin_descriptor;

typedef const sink_plugin_descriptor *(*sink_plugin_entry_fn)(void);

/* Declare the entry point in a plugin:
 *   SINK_PLUGIN_DEFINE_ENTRY(my_descriptor)
 * where my_descriptor is a static const sink_plugin_descriptor. */
#ifdef __cplusplus
#define SINK_EXTERN_C extern "C"
#else
#define SINK_EXTERN_C
#endif
#define SINK_PLUGIN_DEFINE_ENTRY(descriptor)                                                                 \
  SINK_EXTERN_C SINK_PLUGIN_EXPORT const sink_plugin_descriptor *sink_plugin_entry(void) {                   \
    return &(descriptor);                                                                                    \
  }

#ifdef __cplusplus
}
#endif

#endif /* SINK_PLUGIN_H */
