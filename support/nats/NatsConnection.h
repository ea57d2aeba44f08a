#pragma once
// sink_nats: the NATS options and connection shared by the bundled `nats`
// output and, later, the collector (`sink collect`), so both accept the same
// options and connect the same way.
//
//   NatsSettings s = parse_nats_settings(options_json, config_dir);  // OptionError
//   auto conn = NatsConnection::connect(s, log);   // never fails for an unreachable server
//   JsPtr js = conn->jetstream(js_options);        // once per connection
//   ensure_stream(js.get(), stream_spec(s), s.request_timeout);  // NatsError
//
// Every libnats handle lives in a unique_ptr with its deleter. libnats calls
// back on threads of its own (detached, so they may outlive a Close): every
// closure handed to libnats goes through a CallbackGate, which guarantees
// that no callback reaches an object after its gate is closed.
#include <sink/plugin.h>

#include <nats/nats.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "PluginOptions.h"

namespace sink::nats {

using OptionError = sink::plugin::OptionError;

// A failed NATS or JetStream call, with libnats' text.
class NatsError : public std::runtime_error {
public:
  NatsError(const std::string &what, natsStatus status) : std::runtime_error(what), status_(status) {}
  natsStatus status() const { return status_; }

private:
  natsStatus status_;
};

// "what: <libnats text>" for a failed status (also the JetStream error code).
std::string status_text(const std::string &what, natsStatus s, jsErrCode code = static_cast<jsErrCode>(0));

// ---- RAII for libnats handles ---------------------------------------------
struct OptionsDeleter {
  void operator()(natsOptions *p) const noexcept { natsOptions_Destroy(p); }
};
struct ConnectionDeleter { // closes, then releases
  void operator()(natsConnection *p) const noexcept {
    natsConnection_Close(p);
    natsConnection_Destroy(p);
  }
};
struct JsDeleter {
  void operator()(jsCtx *p) const noexcept { jsCtx_Destroy(p); }
};
struct MsgDeleter {
  void operator()(natsMsg *p) const noexcept { natsMsg_Destroy(p); }
};
struct StreamInfoDeleter {
  void operator()(jsStreamInfo *p) const noexcept { jsStreamInfo_Destroy(p); }
};
struct SubscriptionDeleter {
  void operator()(natsSubscription *p) const noexcept { natsSubscription_Destroy(p); }
};
using OptionsPtr = std::unique_ptr<natsOptions, OptionsDeleter>;
using ConnectionPtr = std::unique_ptr<natsConnection, ConnectionDeleter>;
using JsPtr = std::unique_ptr<jsCtx, JsDeleter>;
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;
using StreamInfoPtr = std::unique_ptr<jsStreamInfo, StreamInfoDeleter>;
using SubscriptionPtr = std::unique_ptr<natsSubscription, SubscriptionDeleter>;

// ---- callbacks from libnats threads -----------------------------------------
// open() registers an object and returns the closure to hand to libnats;
// a callback calls with() to reach the object, which runs under the gate's
// lock only while the gate is open; close() waits for a running callback and
// makes every later one a no-op. Keep callbacks short and never call close()
// from inside one.
class CallbackGate {
public:
  static void *open(void *target);
  static void close(void *closure) noexcept;
  template <typename T, typename F> static void with(void *closure, F &&f) noexcept {
    std::lock_guard<std::mutex> lock(mutex());
    if (void *t = lookup(closure)) {
      try {
        f(*static_cast<T *>(t));
      } catch (...) {
      }
    }
  }

private:
  static std::mutex &mutex();
  static void *lookup(void *closure);
};

// ---- settings -----------------------------------------------------------------
struct TlsSettings {
  std::string ca;   // CA bundle to verify the servers with ("" = system default)
  std::string cert; // client certificate chain (with key)
  std::string key;
};

struct NatsSettings {
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string stream = "SINK";
  std::string subject_prefix = "sink";
  std::string creds; // .creds file (JWT + nkey seed)
  std::string nkey;  // nkey seed file
  std::string user;  // with password
  std::string password;
  std::string token;
  std::optional<TlsSettings> tls; // present: TLS to every server
  int replicas = 1;               // for a stream we create
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)}; // per server and attempt
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)}; // JetStream API calls
  std::string client_name = "sink";
};

// The option names parse_nats_settings reads; a caller that has options of
// its own refuses everything else with PluginOptions::only(names + its own).
const std::vector<const char *> &nats_option_names();

// Reads the options above from a plugin's option object (other keys are
// ignored), with defaults. Paths (creds, nkey, tls.*) are resolved against
// config_dir unless absolute. Checks syntax only: URLs, names, durations, that
// files exist and are readable, that credentials come in one consistent
// form. Throws OptionError naming the option.
NatsSettings parse_nats_settings(const nlohmann::json &options, const std::string &config_dir = {});

// Checks one server URL: "nats://" or "tls://", then
// "[user[:password]@]host[:port]" with host a name, IPv4 or [IPv6] and
// nothing after the port but an optional "/".
// Returns why it is not, or "" when it is fine.
std::string check_server_url(const std::string &url);

// NATS subject tokens cannot be empty or hold '.', '*', '>' or whitespace:
// every byte outside printable ASCII (0x21-0x7e) and every '.', '*', '>'
// becomes '_'; an empty string becomes "_".
std::string subject_token(const std::string &text);

// The public key (U...) of the user nkey seed (SU...) in a seed file.
// Throws OptionError naming "nkey".
std::string nkey_public_from_seed_file(const std::string &path);

// ---- connection ---------------------------------------------------------------
using LogFn = std::function<void(sink_log_level, const std::string &)>;

enum class LinkEvent { up, down, closed };

class NatsConnection {
public:
  // Called from libnats threads (through the gate): up on every (re)connect,
  // down when the link is lost, closed when libnats gave up (e.g. a server
  // that rejected the credentials twice).
  using EventFn = std::function<void(LinkEvent)>;

  // Connects with the settings. A server that is unreachable (or rejects the
  // login) is not an error: the call returns after one round over the servers
  // (each bounded by connect_timeout) and libnats keeps trying in the
  // background forever with back-off (100 ms doubling to 5 s, jittered).
  // Throws NatsError only for what cannot work at all (bad files, no memory).
  static std::unique_ptr<NatsConnection> connect(const NatsSettings &settings, LogFn log,
                                                 EventFn on_event = {});
  ~NatsConnection(); // no callback reaches this object after it returns
  NatsConnection(const NatsConnection &) = delete;
  NatsConnection &operator=(const NatsConnection &) = delete;

  natsConnection *get() const { return nc_.get(); }
  bool connected() const { return natsConnection_Status(nc_.get()) == NATS_CONN_STATUS_CONNECTED; }
  bool closed() const { return natsConnection_Status(nc_.get()) == NATS_CONN_STATUS_CLOSED; }
  // Grows on every successful (re)connect: per-connection work (a stream
  // check) is redone when it changed.
  uint64_t generation() const { return generation_.load(); }
  // libnats' last error on this connection ("" if none).
  std::string last_error() const;
  std::string servers_text() const; // "nats://a:4222, nats://b:4222"

  // A JetStream context on this connection; opts may be null.
  JsPtr jetstream(jsOptions *opts) const;

private:
  struct Private {};

public:
  NatsConnection(Private, const NatsSettings &settings, LogFn log, EventFn on_event); // use connect()

private:
  void on_link(LinkEvent e, natsConnection *nc) noexcept;
  static void connected_cb(natsConnection *nc, void *closure);
  static void disconnected_cb(natsConnection *nc, void *closure);
  static void closed_cb(natsConnection *nc, void *closure);
  static void error_cb(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure);
  static int64_t reconnect_delay_cb(natsConnection *nc, int attempts, void *closure);

  NatsSettings settings_;
  LogFn log_;
  EventFn on_event_;
  void *gate_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> was_up_{false}; // log each transition once
  std::atomic<bool> ever_up_{false};
  OptionsPtr opts_;
  ConnectionPtr nc_;
};

// ---- streams -------------------------------------------------------------------
struct StreamSpec {
  std::string name;
  std::vector<std::string> subjects;
  int replicas = 1;
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
};

// The stream the settings describe: <stream> over "<subject_prefix>.>".
StreamSpec stream_spec(const NatsSettings &settings);

enum class StreamState { existed, created };

// Uses the stream if it exists (whatever its configuration; *note says when
// its subjects do not list ours), else creates it with file storage, the
// replicas and duplicate window of spec. Bounded by timeout. Throws NatsError.
StreamState ensure_stream(jsCtx *js, const StreamSpec &spec, std::chrono::milliseconds timeout,
                          std::string *note = nullptr);

} // namespace sink::nats
