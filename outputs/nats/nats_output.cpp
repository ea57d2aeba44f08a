// outputs/nats: every record as JSON (the JSONL encoding, without the
// trailing newline) published to NATS JetStream on
// <subject_prefix>.<sensor>.<group>, with header Nats-Msg-Id = record id.
//
// The output contract with JetStream: write publishes asynchronously
// (at most max_in_flight unacknowledged), flush waits until JetStream has
// acknowledged every message written since the last successful flush. Any
// failure (negative ack, no ack within ack_timeout, link lost) fails the
// flush; the host then publishes the whole batch again and JetStream drops
// what it already stored by Nats-Msg-Id within the stream's duplicate window.
// An unreachable server is an outage, not a configuration error: libnats
// reconnects forever with back-off, and write returns SINK_ERR_IO until it is
// connected and the stream is in place, so records wait in the host's backlog.
// A message NATS refuses for good (over the server's max_payload, or the
// stream's max_msg_size) is answered with SINK_ERR_REFUSED: at once, or when
// the host writes the failed batch again; the host sets it aside.
#include <sink/plugin.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "NatsConnection.h"
#include "PluginOptions.h"
#include "RecordFormat.h"

namespace {

using namespace sink::nats;
using sink::plugin::OptionError;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kDefaultMaxInFlight = 1024;
constexpr milliseconds kDefaultAckTimeout{5000};
// After libnats gave up on a connection (closed), a new one is made at most
// this often.
constexpr milliseconds kReconnectPause{5000};

class NatsOutput {
public:
  NatsOutput(const sink_create_args &args, NatsSettings settings, size_t max_in_flight,
             milliseconds ack_timeout)
      : host_(args.host), ctx_(args.host_ctx), settings_(std::move(settings)), max_in_flight_(max_in_flight),
        ack_timeout_(ack_timeout) {
    gate_ = CallbackGate::open(this);
    try {
      open_connection();
    } catch (...) {
      CallbackGate::close(gate_); // the destructor does not run
      throw;
    }
    failing_ = !conn_->connected();
    if (failing_)
      log(SINK_LOG_WARN, "cannot reach the NATS server" +
                             std::string(settings_.servers.size() > 1 ? "s " : " ") + conn_->servers_text() +
                             describe(conn_->last_error()) +
                             "; retrying in the background, records wait in the backlog");
  }

  ~NatsOutput() {
    CallbackGate::close(gate_); // no ack or link callback reaches us any more
    js_.reset();
    conn_.reset();
  }

  int write(const sink_record &r) {
    if (r.struct_size < offsetof(sink_record, id) + sizeof r.id || !r.id || !*r.id) {
      fail_once("records carry no id (host older than ABI 1.1)");
      return SINK_ERR;
    }
    const std::string id = r.id;
    if (take_refusal(id))
      return refuse(id, "JetStream refused it for good (larger than the stream's max_msg_size)");
    if (!ready()) return SINK_ERR_IO;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (batch_failed_) return SINK_OK; // taken; the failing flush has the host write it again
      if (!room_.wait_for(lock, ack_timeout_,
                          [&] { return pending_.size() < max_in_flight_ || batch_failed_; })) {
        lock.unlock();
        fail_once("no room: " + std::to_string(max_in_flight_) + " messages without acknowledgement for " +
                  std::to_string(ack_timeout_.count()) + " ms");
        return SINK_ERR_IO;
      }
      if (batch_failed_) return SINK_OK;
      pending_.insert(id); // before publishing: the ack may come back at once
    }
    std::string body = sink::format::jsonl_line(r);
    if (!body.empty() && body.back() == '\n') body.pop_back();
    const std::string subject = settings_.subject_prefix + "." + subject_token(r.sensor ? r.sensor : "") +
                                "." + subject_token(r.group ? r.group : "");
    natsMsg *raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    MsgPtr msg(raw);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), "Nats-Msg-Id", id.c_str());
    if (s == NATS_OK) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = ack_timeout_.count(); // a missing ack is reported as a timeout
      natsMsg *m = msg.get();
      s = js_PublishMsgAsync(js_.get(), &m, &po);
      if (m == nullptr) msg.release(); // libnats owns it now
    }
    if (s != NATS_OK) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_.erase(id);
      }
      if (s == NATS_MAX_PAYLOAD)
        return refuse(id, std::to_string(body.size()) +
                              " bytes of JSON are more than the server's max_payload (" +
                              std::to_string(natsConnection_GetMaxPayload(conn_->get())) + " bytes)");
      fail_once(status_text("publishing to \"" + subject + "\"", s));
      return SINK_ERR_IO; // the host writes this record again later
    }
    return SINK_OK;
  }

  int flush() {
    std::unique_lock<std::mutex> lock(mutex_);
    const bool done = room_.wait_for(lock, ack_timeout_, [&] { return pending_.empty() || batch_failed_; }) &&
                      !batch_failed_;
    if (done) {
      lock.unlock();
      if (failing_) log(SINK_LOG_INFO, "publishing to JetStream works again");
      failing_ = false;
      return SINK_OK;
    }
    std::string why = batch_failed_ ? batch_error_
                                    : std::to_string(pending_.size()) + " messages not acknowledged within " +
                                          std::to_string(ack_timeout_.count()) + " ms";
    // The host publishes every record since the last good flush again:
    // forget this batch, including what libnats still waits for.
    pending_.clear();
    batch_failed_ = false;
    batch_error_.clear();
    lock.unlock();
    drop_libnats_pending();
    fail_once("flush: " + why);
    return SINK_ERR_IO;
  }

private:
  void log(sink_log_level level, const std::string &text) const {
    if (host_ && host_->log) host_->log(ctx_, level, text.c_str());
  }
  // A refusal JetStream gave for this id in an earlier batch (consumed).
  bool take_refusal(const std::string &id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return refused_.erase(id) != 0;
  }
  int refuse(const std::string &id, const std::string &why) {
    log(SINK_LOG_ERROR, "record " + id + " refused for good: " + why);
    return SINK_ERR_REFUSED;
  }

  static std::string describe(const std::string &err) { return err.empty() ? "" : " (" + err + ")"; }

  // The first failure of a run is logged; later ones are not, until a
  // successful flush ends the run.
  void fail_once(const std::string &why) {
    if (!failing_) log(SINK_LOG_ERROR, why + "; the host retries, records wait in the backlog");
    failing_ = true;
  }

  void open_connection() {
    js_.reset();
    conn_.reset();
    // The connection's own lines, without repeating one that ends an
    // outage the same way as the last (a connection made again after libnats
    // gave up on a refused login says the same thing every time).
    auto logger = [this](sink_log_level level, const std::string &text) {
      {
        std::lock_guard<std::mutex> lock(log_mutex_);
        if (level >= SINK_LOG_WARN && text == last_link_log_) return;
        last_link_log_ = level >= SINK_LOG_WARN ? text : std::string();
      }
      log(level, text);
    };
    conn_ = NatsConnection::connect(settings_, logger, [this](LinkEvent e) { on_link(e); });
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = settings_.request_timeout.count();
    jo.PublishAsync.MaxPending = static_cast<int64_t>(max_in_flight_);
    jo.PublishAsync.StallWait = ack_timeout_.count();
    jo.PublishAsync.AckHandler = &NatsOutput::ack_cb;
    jo.PublishAsync.AckHandlerClosure = gate_;
    js_ = conn_->jetstream(&jo);
    stream_generation_ = 0;
    opened_at_ = Clock::now();
  }

  // Connected, and the stream checked on this connection.
  bool ready() {
    if (conn_->closed() && Clock::now() - opened_at_ >= kReconnectPause) {
      try {
        open_connection();
      } catch (const std::exception &e) {
        fail_once(e.what());
        return false;
      }
    }
    if (!conn_->connected()) {
      failing_ = true; // the connection logs the outage itself, once
      return false;
    }
    const uint64_t generation = conn_->generation();
    if (generation == stream_generation_) return true;
    try {
      std::string note;
      const StreamState state =
          ensure_stream(js_.get(), stream_spec(settings_), settings_.request_timeout, &note);
      if (state == StreamState::created)
        log(SINK_LOG_INFO, "created stream \"" + settings_.stream + "\" for subjects \"" +
                               settings_.subject_prefix + ".>\" (" + std::to_string(settings_.replicas) +
                               " replica(s), duplicate window " +
                               std::to_string(settings_.duplicate_window.count()) + " ms)");
      if (!note.empty() && note != stream_note_) log(SINK_LOG_WARN, note);
      stream_note_ = note;
      stream_generation_ = generation;
      return true;
    } catch (const std::exception &e) {
      fail_once(e.what());
      return false;
    }
  }

  void drop_libnats_pending() {
    natsMsgList list{};
    if (js_PublishAsyncGetPendingList(&list, js_.get()) == NATS_OK) natsMsgList_Destroy(&list);
  }

  // ---- from libnats threads, through the gate ----
  void on_link(LinkEvent e) {
    if (e == LinkEvent::up) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!pending_.empty() && !batch_failed_) {
      batch_failed_ = true;
      batch_error_ =
          "lost the connection with " + std::to_string(pending_.size()) + " messages unacknowledged";
    }
    room_.notify_all();
  }

  void on_ack(natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae) {
    const char *id = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id) return;
    std::lock_guard<std::mutex> lock(mutex_);
    // An id this batch does not wait for is a late answer to an earlier
    // batch: a positive one still means JetStream has it.
    const bool ours = pending_.count(id) != 0;
    if (pa && ours) {
      pending_.erase(id);
    } else if (!pa && ours && pae && pae->ErrCode == JSStreamMessageExceedsMaximumErr) {
      // Sending it again cannot help: the host's rewrite of the batch learns
      // of it in write.
      refused_.insert(id);
    }
    if (!pa && ours && !batch_failed_) {
      batch_failed_ = true;
      batch_error_ =
          pae ? status_text("JetStream refused message " + std::string(id), pae->Err, pae->ErrCode) +
                    (pae->ErrText ? std::string(": ") + pae->ErrText : std::string())
              : "JetStream refused message " + std::string(id);
    }
    room_.notify_all();
  }

  static void ack_cb(jsCtx *, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
    MsgPtr owned(msg); // the handler owns the message
    CallbackGate::with<NatsOutput>(closure, [&](NatsOutput &out) { out.on_ack(msg, pa, pae); });
  }

  const sink_host_api *host_;
  sink_host_ctx *ctx_;
  const NatsSettings settings_;
  const size_t max_in_flight_;
  const milliseconds ack_timeout_;
  void *gate_ = nullptr;
  std::unique_ptr<NatsConnection> conn_;
  JsPtr js_;
  uint64_t stream_generation_ = 0; // connection generation the stream was checked on
  std::string stream_note_;
  Clock::time_point opened_at_{};
  bool failing_ = false; // output thread only
  std::mutex log_mutex_;
  std::string last_link_log_;

  // Shared with the ack and link callbacks.
  std::mutex mutex_;
  std::condition_variable room_;
  std::unordered_set<std::string> pending_; // ids written since the last good flush, not yet acked
  std::unordered_set<std::string> refused_; // ids JetStream refused for good, until written again
  bool batch_failed_ = false;
  std::string batch_error_;
};

size_t max_in_flight_option(const nlohmann::json &o) {
  if (!o.contains("max_in_flight")) return kDefaultMaxInFlight;
  const auto &v = o["max_in_flight"];
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1000000)
    throw OptionError("option \"max_in_flight\" must be an integer from 1 to 1000000");
  return static_cast<size_t>(v.get<int64_t>());
}

milliseconds ack_timeout_option(const nlohmann::json &o) {
  // Parsed like the library's durations by wrapping it as request_timeout.
  if (!o.contains("ack_timeout")) return kDefaultAckTimeout;
  nlohmann::json probe = nlohmann::json::object();
  probe["request_timeout"] = o["ack_timeout"];
  try {
    return parse_nats_settings(probe).request_timeout;
  } catch (const OptionError &e) {
    std::string text = e.what();
    const std::string from = "request_timeout";
    if (auto at = text.find(from); at != std::string::npos) text.replace(at, from.size(), "ack_timeout");
    throw OptionError(text);
  }
}

int nats_create(const sink_create_args *args, void **instance) noexcept {
  try {
    sink::plugin::PluginOptions opts(args->config_json);
    std::vector<const char *> known = nats_option_names();
    known.push_back("max_in_flight");
    known.push_back("ack_timeout");
    opts.only(known);
    const nlohmann::json o = nlohmann::json::parse(args->config_json ? args->config_json : "{}");
    const bool has_dir =
        args->struct_size >= offsetof(sink_create_args, config_dir) + sizeof args->config_dir &&
        args->config_dir;
    NatsSettings settings = parse_nats_settings(o, has_dir ? args->config_dir : "");
    auto out = std::make_unique<NatsOutput>(*args, std::move(settings), max_in_flight_option(o),
                                            ack_timeout_option(o));
    *instance = out.release();
    return SINK_OK;
  } catch (const OptionError &e) {
    sink::plugin::set_create_error(args, e.what());
    return SINK_ERR_CONFIG;
  } catch (const std::exception &e) {
    sink::plugin::set_create_error(args, e.what());
    return SINK_ERR;
  } catch (...) {
    sink::plugin::set_create_error(args, "unexpected failure");
    return SINK_ERR;
  }
}

int nats_write(void *instance, const sink_record *record) noexcept {
  try {
    return static_cast<NatsOutput *>(instance)->write(*record);
  } catch (...) {
    return SINK_ERR;
  }
}

int nats_flush(void *instance) noexcept {
  try {
    return static_cast<NatsOutput *>(instance)->flush();
  } catch (...) {
    return SINK_ERR_IO;
  }
}

void nats_destroy(void *instance) noexcept {
  std::unique_ptr<NatsOutput> owned(static_cast<NatsOutput *>(instance));
}

const sink_output_ops kOps{
    sizeof(sink_output_ops), nats_create, nats_write, nats_flush, nullptr, nats_destroy,
};

const sink_plugin_descriptor kDescriptor{
    sizeof(sink_plugin_descriptor),
    SINK_ABI_MAJOR,
    1, // needs record ids and sensors (ABI 1.1)
    SINK_PLUGIN_OUTPUT,
    "nats",
    "1.0.0",
    "NATS JetStream: each record as JSON on <prefix>.<sensor>.<group>, deduplicated by record id",
    &kOps,
    nullptr,
    nullptr, // analyzer
};

} // namespace

SINK_PLUGIN_DEFINE_ENTRY(kDescriptor)
