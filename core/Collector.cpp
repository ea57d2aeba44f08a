#include "Collector.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "ConfigPaths.h"
#include "ConfigValidation.h"
#include "DeadLetter.h"
#include "Duration.h"
#include "MetricsServer.h"
#include "OutputWorker.h"
#include "RecordJson.h"
#include "SensorMetrics.h"
#include "Server.h"

#ifdef SINK_HAVE_NATS
#include "NatsConnection.h"
#endif

namespace sink {

#ifndef SINK_HAVE_NATS

struct Collector::State {};
Collector::Collector(const Config &, PluginLoader &, Logger &) {
  throw PluginError("sink collect: this build has no NATS support (install libnats-dev and rebuild)");
}
Collector::~Collector() = default;
bool Collector::run() { return true; }
bool collector_available() { return false; }

#else

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reopen{false};
void on_stop_signal(int) { g_stop = true; }
void on_hup_signal(int) { g_reopen = true; }

// Sensors whose last record time is shown; more would make the label set
// (and memory) grow with whatever names the stream carries.
constexpr size_t kMaxTrackedSensors = 1024;
// How often the consumer's pending counts are asked for.
constexpr auto kLagPollInterval = std::chrono::seconds(1);

// How long one fetch waits for messages: also how often a stop is noticed.
constexpr int64_t kFetchWaitMs = 500;

struct CollectSettings {
  nats::NatsSettings nats;
  std::string durable = "sink-collector";
  std::string subject; // "" = <subject_prefix>.>
  int batch = 256;
  std::chrono::milliseconds ack_wait{std::chrono::seconds(30)};
  size_t max_in_flight = 10000;
  std::string dead_letter; // messages and records set aside
};

CollectSettings parse_collect(const nlohmann::json &o, const std::string &config_dir) {
  std::vector<const char *> known = nats::nats_option_names();
  for (const char *k : {"durable", "subject", "batch", "ack_wait", "max_in_flight", "dead_letter"})
    known.push_back(k);
  plugin::PluginOptions opts(o.dump().c_str());
  opts.only(known);
  CollectSettings s;
  s.nats = nats::parse_nats_settings(o, config_dir);
  if (!o.contains("client_name")) s.nats.client_name = "sink-collector"; // the sensors' default is theirs
  s.durable = opts.string("durable", s.durable);
  if (s.durable.empty() || s.durable.find_first_of(" \t\r\n.*>/\\") != std::string::npos)
    throw plugin::OptionError(
        "option \"durable\" must be a name without whitespace, '.', '*', '>', '/' or '\\'");
  s.subject = opts.string("subject", s.nats.subject_prefix + ".>");
  auto number = [&](const char *key, int64_t fallback, int64_t lo, int64_t hi) {
    if (!o.contains(key)) return fallback;
    const auto &v = o[key];
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      throw plugin::OptionError(std::string("option \"") + key + "\" must be a whole number from " +
                                std::to_string(lo) + " to " + std::to_string(hi));
    return v.get<int64_t>();
  };
  s.batch = static_cast<int>(number("batch", s.batch, 1, 10000));
  s.max_in_flight =
      static_cast<size_t>(number("max_in_flight", static_cast<int64_t>(s.max_in_flight), 1, 1000000));
  s.dead_letter = opts.string("dead_letter", "");
  s.dead_letter =
      s.dead_letter.empty() ? default_dead_letter_path() : resolve_path(config_dir, s.dead_letter);
  const std::string dir = std::filesystem::path(s.dead_letter).parent_path().string();
  if (::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0)
    throw plugin::OptionError("option \"dead_letter\": cannot create files in \"" + dir +
                              "\" (set dead_letter: to a writable path)");
  if (o.contains("ack_wait")) {
    std::string why;
    const auto text = o["ack_wait"].is_string() ? o["ack_wait"].get<std::string>() : std::string("?");
    auto d = parse_go_duration(text, &why);
    if (!d || *d < std::chrono::seconds(1))
      throw plugin::OptionError("option \"ack_wait\" must be a duration of at least 1s, such as \"30s\"");
    s.ack_wait = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  }
  return s;
}

struct MsgListDeleter {
  void operator()(natsMsgList *l) const noexcept {
    natsMsgList_Destroy(l);
    delete l; // allocated by std::make_unique below
  }
};

} // namespace

struct Collector::State {
  State(const Config &c, Logger &l) : config(c), logger(l) {}
  const Config &config;
  Logger &logger;
  CollectSettings settings;
  std::vector<std::unique_ptr<OutputWorker>> outputs;
  std::atomic<uint64_t> received{0}, acknowledged{0}, undecodable{0}, in_flight{0};
  // What /healthz and the lag metrics report; written by the consumer loop
  // and libnats' link callback, read by the metrics thread.
  std::atomic<bool> nats_connected{false}, subscribed{false}, lag_known{false};
  std::atomic<uint64_t> stream_pending{0}, ack_pending{0};
  // Newest record time (accept, unix seconds) per sensor, bounded.
  std::mutex sensors_mutex;
  std::map<std::string, double> sensor_last_record;
  std::atomic<uint64_t> sensors_untracked{0};
  std::shared_ptr<DeadLetterFile> dead_letter;

  bool dead_letter_failing = false; // logged once until it works again

  void saw_record(const Record &r);
  void reopen_files();
  void poll_lag(natsSubscription *sub, std::chrono::milliseconds timeout);
  // Appends a message that is no valid record to the dead-letter file
  // (synced by finish_set_aside). False when it could not.
  bool set_aside_message(natsMsg *m, std::string_view body, const std::string &why);
  // Syncs the dead-letter file, then terminates the messages set aside, so
  // JetStream never delivers them again; on failure they stay
  // unacknowledged and come back.
  void finish_set_aside(std::vector<nats::MsgPtr> &set_aside);
  std::string metrics_text();
  Health health();
};

void Collector::State::saw_record(const Record &r) {
  const double t = static_cast<double>(r.accept_unix_ns) / 1e9;
  std::lock_guard<std::mutex> lock(sensors_mutex);
  auto it = sensor_last_record.find(r.sensor);
  if (it == sensor_last_record.end()) {
    if (sensor_last_record.size() >= kMaxTrackedSensors) {
      if (sensors_untracked++ == 0)
        logger.warn("collect: more than " + std::to_string(kMaxTrackedSensors) +
                    " sensors; the last record time of further ones is not shown");
      return;
    }
    it = sensor_last_record.emplace(r.sensor, t).first;
  }
  it->second = std::max(it->second, t);
}

std::string Collector::State::metrics_text() {
  PrometheusText m;
  m.family("sink_collector_received_total", "counter", "Messages fetched from the stream.");
  m.sample("sink_collector_received_total", static_cast<double>(received));
  m.family("sink_collector_acknowledged_total", "counter", "Messages acknowledged (every output confirmed).");
  m.sample("sink_collector_acknowledged_total", static_cast<double>(acknowledged));
  m.family("sink_collector_undecodable_total", "counter",
           "Messages that were no valid record: set aside in the dead-letter file and terminated.");
  m.sample("sink_collector_undecodable_total", static_cast<double>(undecodable));
  m.family("sink_collector_in_flight", "gauge", "Messages fetched and not yet acknowledged.");
  m.sample("sink_collector_in_flight", static_cast<double>(in_flight));
  m.family("sink_collector_nats_connected", "gauge", "1 while connected to NATS.");
  m.sample("sink_collector_nats_connected", nats_connected ? 1 : 0);
  if (lag_known) {
    m.family("sink_collector_stream_pending_messages", "gauge",
             "Messages in the stream not yet delivered to this consumer (its lag).");
    m.sample("sink_collector_stream_pending_messages", static_cast<double>(stream_pending));
    m.family("sink_collector_stream_ack_pending_messages", "gauge",
             "Messages delivered to this consumer and not yet acknowledged.");
    m.sample("sink_collector_stream_ack_pending_messages", static_cast<double>(ack_pending));
  }
  {
    std::lock_guard<std::mutex> lock(sensors_mutex);
    m.family("sink_collector_sensor_last_record_timestamp_seconds", "gauge",
             "Accept time of the newest record received from each sensor (unix seconds).");
    for (const auto &[sensor, t] : sensor_last_record)
      m.sample("sink_collector_sensor_last_record_timestamp_seconds", t, {{"sensor", sensor}});
  }
  add_output_metrics(m, outputs);
  return m.text();
}

Health Collector::State::health() {
  Health h = outputs_health(outputs, config.metrics);
  if (!nats_connected) {
    h.ok = false;
    // No server URLs here: they may carry a password.
    h.why += "nats: not connected to any server of stream " + settings.nats.stream +
             " (records wait in the stream)\n";
  } else if (!subscribed) {
    h.ok = false;
    h.why += "nats: connected, but the consumer is not subscribed to stream " + settings.nats.stream + "\n";
  }
  return h;
}

bool collector_available() { return true; }

// SIGHUP: as on a sensor, the log and every output's files are reopened
// (logrotate renamed them).
void Collector::State::reopen_files() {
  if (!logger.reopen()) logger.error("cannot reopen log file " + config.log.path);
  for (auto &o : outputs)
    o->request_reopen();
  logger.info("collect: SIGHUP: log and output files reopened");
}

// The consumer's lag, from JetStream (bounded by the request timeout).
void Collector::State::poll_lag(natsSubscription *sub, std::chrono::milliseconds timeout) {
  if (!sub || !nats_connected) return;
  jsConsumerInfo *ci = nullptr;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = timeout.count();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (natsSubscription_GetConsumerInfo(&ci, sub, &jo, &jerr) != NATS_OK || !ci) return;
  stream_pending = ci->NumPending;
  ack_pending = static_cast<uint64_t>(std::max<int64_t>(ci->NumAckPending, 0));
  lag_known = true;
  jsConsumerInfo_Destroy(ci);
}

// A message that is no valid record into the dead-letter file. False when
// it could not be written (then it must not be acknowledged).
bool Collector::State::set_aside_message(natsMsg *m, std::string_view body, const std::string &why) {
  const std::string subject = natsMsg_GetSubject(m);
  std::string error;
  if (!dead_letter->append(dead_letter_message_line(body, subject, why, unix_now_ns()), &error, false)) {
    if (!dead_letter_failing)
      logger.error("collect: a message on " + subject + " is no valid record (" + why +
                   ") and cannot be set aside (" + error + "); it is left unacknowledged");
    dead_letter_failing = true;
    return false;
  }
  const uint64_t n = ++undecodable;
  // Logged for the first ones; a flood is counted, not logged line by line.
  if (n <= 10)
    logger.error("collect: a message on " + subject + " is no valid record (" + why + "); set aside in " +
                 dead_letter->path() + " and terminated (" + std::to_string(n) + " so far)");
  return true;
}

void Collector::State::finish_set_aside(std::vector<nats::MsgPtr> &set_aside) {
  if (set_aside.empty()) return;
  std::string error;
  if (!dead_letter->sync(&error)) {
    if (!dead_letter_failing)
      logger.error("collect: cannot set messages aside (" + error + "); they are left unacknowledged");
    dead_letter_failing = true;
  } else {
    dead_letter_failing = false;
    for (auto &m : set_aside)
      natsMsg_Term(m.get(), nullptr);
  }
  set_aside.clear();
}

Collector::Collector(const Config &config, PluginLoader &loader, Logger &logger)
    : state_(std::make_unique<State>(config, logger)) {
  const std::string where = config.source + ":" + std::to_string(config.collect.line) + ": collect";
  try {
    state_->settings = parse_collect(config.collect.options, config.config_dir);
  } catch (const plugin::OptionError &e) {
    throw PluginError(where + ": " + e.what());
  }
  state_->dead_letter = dead_letter_file(state_->settings.dead_letter);
  // Outputs as on a sensor, without a journal: the stream is the journal,
  // and nothing is acknowledged before every output confirmed it.
  for (size_t i = 0; i < config.outputs.size(); ++i) {
    const auto &oc = config.outputs[i];
    const std::string at = plugin_location(config, oc.line, "outputs", i, oc.plugin);
    const LoadedPlugin *p = &loader.load_for(at, oc.plugin, SINK_PLUGIN_OUTPUT);
    const std::string label =
        "output " + (oc.name.empty() ? std::string(p->descriptor->name) + "#" + std::to_string(i) : oc.name);
    // Never skip: the consumer holds at most max_in_flight records.
    state_->outputs.push_back(std::make_unique<OutputWorker>(
        label, p->descriptor->output, logger, state_->settings.max_in_flight + 1, nullptr, nullptr));
    auto &o = *state_->outputs.back();
    o.set_dead_letter(state_->settings.dead_letter);
    o.set_instance(
        create_plugin_instance(o.ops()->create, o.ctx(), oc.options.dump(), at, config.config_dir));
  }
}

Collector::~Collector() = default;

bool Collector::run() {
  State &st = *state_;
  const auto &s = st.settings;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGHUP, on_hup_signal); // logrotate: reopen the log and the outputs' files
  sigset_t held;
  sigemptyset(&held);
  sigaddset(&held, SIGINT);
  sigaddset(&held, SIGTERM);
  sigaddset(&held, SIGHUP);
  pthread_sigmask(SIG_UNBLOCK, &held, nullptr);

  // Metrics on an event loop of their own.
  EventBasePtr base(event_base_new());
  std::unique_ptr<MetricsServer> metrics;
  std::thread metrics_thread;
  if (!st.config.metrics.listen.empty()) {
    metrics = std::make_unique<MetricsServer>(
        base.get(), st.config.metrics.listen, [&st] { return st.metrics_text(); },
        [&st] { return st.health(); });
    st.logger.info("metrics on http://" + st.config.metrics.listen + "/metrics and /healthz");
  }
  if (metrics) {
    metrics_thread = std::thread([&] {
      while (!g_stop) {
        timeval tick{0, 200 * 1000};
        event_base_loopexit(base.get(), &tick);
        event_base_dispatch(base.get());
      }
    });
  }
  for (auto &o : st.outputs)
    o->start();

  auto log = [&st](sink_log_level level, const std::string &m) { st.logger.log(level, "collect: " + m); };
  auto conn = nats::NatsConnection::connect(s.nats, log, [&st](nats::LinkEvent e) {
    st.nats_connected = e == nats::LinkEvent::up;
    if (e != nats::LinkEvent::up) st.subscribed = false;
  });
  st.nats_connected = conn->connected();
  nats::JsPtr js;
  nats::SubscriptionPtr sub;
  uint64_t generation = 0;
  bool setup_error_logged = false;
  // Messages fetched and not yet acknowledged, numbered as the outputs see them.
  std::deque<std::pair<uint64_t, nats::MsgPtr>> pending;
  uint64_t next_seq = 1;
  auto last_progress_note = std::chrono::steady_clock::now();
  auto next_lag_poll = std::chrono::steady_clock::now();
  // Acknowledges every message whose record every output confirmed.
  auto acknowledge_confirmed = [&] {
    uint64_t confirmed = UINT64_MAX;
    for (const auto &o : st.outputs)
      confirmed = std::min(confirmed, o->confirmed_until());
    while (!pending.empty() && pending.front().first < confirmed) {
      natsMsg_Ack(pending.front().second.get(), nullptr);
      pending.pop_front();
      ++st.acknowledged;
    }
  };
  // Said once the stream exists and the consumer is subscribed: from then
  // on a sensor's publish is stored (tests and operators wait for it).
  bool consuming_logged = false;

  while (!g_stop) {
    if (g_reopen.exchange(false)) st.reopen_files();
    st.nats_connected = conn->connected();
    // (Re)subscribe when the connection is new.
    if (!sub || conn->generation() != generation) {
      if (!conn->connected()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      generation = conn->generation();
      sub.reset();
      js = conn->jetstream(nullptr);
      try {
        nats::ensure_stream(js.get(), nats::stream_spec(s.nats), s.nats.request_timeout);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = s.nats.stream.c_str();
        so.Config.Durable = s.durable.c_str();
        so.Config.AckPolicy = js_AckExplicit;
        so.Config.AckWait = std::chrono::duration_cast<std::chrono::nanoseconds>(s.ack_wait).count();
        so.Config.MaxAckPending = static_cast<int64_t>(s.max_in_flight);
        natsSubscription *raw = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        const natsStatus rc =
            js_PullSubscribe(&raw, js.get(), s.subject.c_str(), s.durable.c_str(), nullptr, &so, &jerr);
        if (rc != NATS_OK) throw nats::NatsError(nats::status_text("cannot subscribe", rc, jerr), rc);
        sub.reset(raw);
        st.subscribed = true;
        if (!consuming_logged)
          st.logger.info("collect: consuming stream " + s.nats.stream + " (subjects " + s.subject +
                         ") as durable " + s.durable + " from " + conn->servers_text());
        else if (setup_error_logged)
          st.logger.info("collect: subscribed again");
        consuming_logged = true;
        setup_error_logged = false;
        // Messages held from the old connection are delivered again anyway.
        pending.clear();
      } catch (const nats::NatsError &e) {
        if (!setup_error_logged) st.logger.error(std::string("collect: ") + e.what() + "; retrying");
        setup_error_logged = true;
        sub.reset();
        st.subscribed = false;
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
    }
    acknowledge_confirmed();
    st.in_flight = pending.size();
    if (std::chrono::steady_clock::now() >= next_lag_poll) {
      st.poll_lag(sub.get(), s.nats.request_timeout);
      next_lag_poll = std::chrono::steady_clock::now() + kLagPollInterval;
    }
    // Outputs lagging: tell JetStream the messages are still being worked on.
    if (!pending.empty() && std::chrono::steady_clock::now() - last_progress_note > s.ack_wait / 3) {
      for (auto &[seq, m] : pending)
        natsMsg_InProgress(m.get(), nullptr);
      last_progress_note = std::chrono::steady_clock::now();
    }
    const size_t room = s.max_in_flight > pending.size() ? s.max_in_flight - pending.size() : 0;
    if (room == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    auto list = std::unique_ptr<natsMsgList, MsgListDeleter>(new natsMsgList{});
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus rc = natsSubscription_Fetch(
        list.get(), sub.get(), static_cast<int>(std::min<size_t>(room, s.batch)), kFetchWaitMs, &jerr);
    if (rc == NATS_TIMEOUT) continue;
    if (rc != NATS_OK) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    std::vector<OutputWorker::Item> items;
    items.reserve(static_cast<size_t>(list->Count));
    std::vector<nats::MsgPtr> set_aside;
    for (int i = 0; i < list->Count; ++i) {
      nats::MsgPtr m(list->Msgs[i]);
      list->Msgs[i] = nullptr; // ours now
      ++st.received;
      // The record owns its names: nothing from the stream is kept after it.
      auto r = std::make_shared<OwnedTextRecord>();
      std::string why;
      const std::string_view body(natsMsg_GetData(m.get()),
                                  static_cast<size_t>(natsMsg_GetDataLength(m.get())));
      if (!record_from_jsonl(body, *r, &why)) {
        // Delivering it again would fail again: set aside, then terminate.
        // When even that fails it stays unacknowledged and comes back later.
        if (st.set_aside_message(m.get(), body, why)) set_aside.push_back(std::move(m));
        continue;
      }
      st.saw_record(*r);
      items.push_back({next_seq, std::shared_ptr<const Record>(std::move(r))});
      pending.emplace_back(next_seq++, std::move(m));
    }
    st.finish_set_aside(set_aside);
    if (!items.empty())
      for (auto &o : st.outputs)
        o->submit(items);
  }
  st.logger.info("received signal, stopping: " + std::to_string(pending.size()) +
                 " records in flight are acknowledged once the outputs confirm them");
  for (auto &o : st.outputs)
    o->close();
  bool clean = true;
  for (auto &o : st.outputs) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!o->finished() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    o->release();
    clean = clean && o->finished();
  }
  acknowledge_confirmed();
  if (conn->connected()) natsConnection_FlushTimeout(conn->get(), 2000);
  std::string line = "final stats: received=" + std::to_string(st.received) +
                     " acknowledged=" + std::to_string(st.acknowledged) +
                     " undecodable=" + std::to_string(st.undecodable) +
                     " unacknowledged=" + std::to_string(pending.size());
  for (const auto &o : st.outputs)
    line += " | " + o->stats();
  st.logger.info(line);
  if (!pending.empty())
    st.logger.warn("collect: " + std::to_string(pending.size()) +
                   " messages were not confirmed by every output; JetStream delivers them again");
  pending.clear();
  sub.reset();
  js.reset();
  conn.reset();
  if (metrics_thread.joinable()) metrics_thread.join();
  return clean;
}

#endif

} // namespace sink
