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
 * are only ever appended to the structs below (each carries struct_size) and
 * bump SINK_ABI_MINOR; the host refuses a plugin built for a newer minor than
 * its own and reads only the fields a plugin's struct_size covers.
 *
 * Threading contract.
 *  - Output plugins: create, write, flush, reopen and destroy of one instance
 *    are never called concurrently. create and destroy run on the main
 *    thread; write, flush and reopen run on the single output thread. Nothing
 *    is called after destroy.
 *  - Transport plugins: create and destroy run on the main thread before any
 *    connection is accepted / after the last one is gone; accept,
 *    conn_finish and conn_free run on the network thread that owns the
 *    connection's event_base.
 *  - sink_host_api functions may be called from any thread, at any time
 *    between create and destroy.
 *
 * Errors. Every entry point returns SINK_OK or a negative sink_status and
 * must not let a C++ exception escape (mark them noexcept / catch all).
 * create reports why it failed by writing a NUL-terminated message into
 * the caller's buffer.
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
#define SINK_ABI_MINOR 0

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
  SINK_ERR_IO = -3      /* the plugin's sink (file, socket...) failed */
} sink_status;

typedef enum sink_plugin_kind { SINK_PLUGIN_OUTPUT = 1, SINK_PLUGIN_TRANSPORT = 2 } sink_plugin_kind;

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

/* One transport-provided fact about a connection, e.g. {"tls.sni", "x"}. */
typedef struct sink_extra {
  const char *key;
  const char *value;
} sink_extra;

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
} sink_record;

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
} sink_create_args;

/* ---- output plugins ---------------------------------------------------- */
typedef struct sink_output_ops {
  size_t struct_size;
  /* Make an instance from its config. Open files here. */
  int (*create)(const sink_create_args *args, void **instance);
  /* Deliver one record. Return SINK_OK once it is handed to the OS or
   * buffered under the plugin's own flush policy. */
  int (*write)(void *instance, const sink_record *record);
  /* Push everything buffered to the OS. Called when the queue runs dry and
   * before destroy. */
  int (*flush)(void *instance);
  /* Reopen files (log rotation). May be NULL. */
  int (*reopen)(void *instance);
  /* Flush, close and free. Never fails. */
  void (*destroy)(void *instance);
} sink_output_ops;

/* ---- transport plugins --------------------------------------------------- */
struct event_base;
struct bufferevent;

/* Collects extras from conn_finish; copies key and value immediately. */
typedef struct sink_extra_writer {
  void *ctx;
  void (*add)(void *ctx, const char *key, const char *value);
} sink_extra_writer;

typedef struct sink_transport_ops {
  size_t struct_size;
  /* One instance per group that uses this transport. */
  int (*create)(const sink_create_args *args, void **instance);
  /* Wrap a freshly accepted, non-blocking socket in a bufferevent (created
   * with BEV_OPT_CLOSE_ON_FREE) on base. The host owns the bufferevent from
   * here on, sets its callbacks and frees it. *conn_state is the plugin's
   * per-connection state (may stay NULL). Return NULL on failure; the host
   * then closes fd itself and records the connection as an error. */
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
   * host may drain the kernel buffer itself at a server-side close. */
  int reads_plain_socket;
} sink_transport_ops;

/* ---- the descriptor -------------------------------------------------------- */
typedef struct sink_plugin_descriptor {
  size_t struct_size; /* sizeof(sink_plugin_descriptor) */
  uint32_t abi_major; /* SINK_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor; /* SINK_ABI_MINOR the plugin was built with */
  sink_plugin_kind kind;
  const char *name;                    /* unique, e.g. "csv" */
  const char *version;                 /* the plugin's own version, e.g. "1.0.0" */
  const char *description;             /* one line */
  const sink_output_ops *output;       /* kind == SINK_PLUGIN_OUTPUT */
  const sink_transport_ops *transport; /* kind == SINK_PLUGIN_TRANSPORT */
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
