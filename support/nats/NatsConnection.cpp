#include "NatsConnection.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <unordered_map>

#include "Duration.h"

namespace sink::nats {
namespace {

using std::chrono::milliseconds;

// ---- the gate's registry: built once, never destroyed, because detached
// libnats threads may still call back while the process exits.
struct GateRegistry {
  std::mutex mutex;
  std::unordered_map<uintptr_t, void *> live;
  uintptr_t next = 1;
};

GateRegistry &registry() {
  alignas(GateRegistry) static unsigned char storage[sizeof(GateRegistry)];
  static GateRegistry *r = std::construct_at(reinterpret_cast<GateRegistry *>(storage));
  return *r;
}

void check(natsStatus s, const std::string &what) {
  if (s != NATS_OK) throw NatsError(status_text(what, s), s);
}

std::string key_name(const char *prefix, const char *key) { return std::string(prefix) + key; }

std::string get_string(const nlohmann::json &o, const char *key, const std::string &fallback,
                       const char *prefix = "") {
  if (!o.contains(key)) return fallback;
  const auto &v = o[key];
  if (!v.is_string()) throw OptionError("option \"" + key_name(prefix, key) + "\" must be a string");
  return v.get<std::string>();
}

std::string resolve(const std::string &config_dir, const std::string &p) {
  if (config_dir.empty() || p.empty() || p.front() == '/') return p;
  return config_dir + (config_dir.back() == '/' ? "" : "/") + p;
}

// A file option: non-empty, exists and is readable.
std::string readable_file(const nlohmann::json &o, const char *key, const std::string &config_dir,
                          const char *prefix = "") {
  const std::string name = key_name(prefix, key);
  std::string p = get_string(o, key, "", prefix);
  if (p.empty()) throw OptionError("option \"" + name + "\" must name a file");
  p = resolve(config_dir, p);
  if (::access(p.c_str(), R_OK) != 0)
    throw OptionError("option \"" + name + "\": cannot read \"" + p + "\": " + std::strerror(errno));
  return p;
}

milliseconds get_duration(const nlohmann::json &o, const char *key, milliseconds fallback) {
  if (!o.contains(key)) return fallback;
  const auto &v = o[key];
  if (!v.is_string())
    throw OptionError(std::string("option \"") + key + "\" must be a duration such as \"2m\" or \"500ms\"");
  std::string why;
  auto d = sink::parse_go_duration(v.get<std::string>(), &why);
  if (!d) throw OptionError(std::string("option \"") + key + "\": expected " + why);
  auto ms = std::chrono::duration_cast<milliseconds>(*d);
  if (ms.count() <= 0) throw OptionError(std::string("option \"") + key + "\" must be at least 1ms");
  return ms;
}

bool valid_subject(const std::string &s, bool allow_wildcards) {
  if (s.empty()) return false;
  size_t start = 0;
  for (;;) {
    size_t dot = s.find('.', start);
    std::string tok = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (tok.empty()) return false;
    for (unsigned char c : tok)
      if (c <= 0x20 || c == 0x7f) return false;
    if (!allow_wildcards && (tok.find('*') != std::string::npos || tok.find('>') != std::string::npos))
      return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

bool valid_host_name(const std::string &h) {
  if (h.empty() || h.size() > 253) return false;
  for (unsigned char c : h)
    if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_')) return false;
  return h.front() != '.' && h.front() != '-';
}

constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

std::vector<uint8_t> base32_decode(const std::string &text) {
  std::vector<uint8_t> out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const char *p = std::strchr(kBase32, c);
    if (!p || !c) throw OptionError("option \"nkey\": the seed is not base32");
    buffer = (buffer << 5) | static_cast<uint32_t>(p - kBase32);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  return out;
}

std::string base32_encode(const std::vector<uint8_t> &data) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kBase32[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

uint16_t crc16_xmodem(const uint8_t *data, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; ++i) {
    crc ^= static_cast<uint16_t>(data[i] << 8);
    for (int k = 0; k < 8; ++k)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

} // namespace

std::string nkey_public_from_seed_file(const std::string &path) {
  std::ifstream in(path);
  if (!in) throw OptionError("option \"nkey\": cannot read \"" + path + "\"");
  std::string word, seed;
  while (in >> word)
    if (word.size() == 58 && word[0] == 'S' && word[1] == 'U') seed = word;
  if (seed.empty()) throw OptionError("option \"nkey\": \"" + path + "\" holds no user seed (SU...)");
  std::vector<uint8_t> raw = base32_decode(seed);
  if (raw.size() != 36) throw OptionError("option \"nkey\": malformed seed in \"" + path + "\"");
  const uint16_t crc = static_cast<uint16_t>(raw[34] | (raw[35] << 8));
  if (crc16_xmodem(raw.data(), 34) != crc)
    throw OptionError("option \"nkey\": the seed in \"" + path + "\" fails its checksum");
  const uint8_t prefix = static_cast<uint8_t>(((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3));
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw.data() + 2, 32), &EVP_PKEY_free);
  std::fill(raw.begin(), raw.end(), 0);
  if (!key) throw OptionError("option \"nkey\": the seed in \"" + path + "\" is not an ed25519 key");
  std::vector<uint8_t> pub(1 + 32 + 2);
  size_t len = 32;
  pub[0] = prefix;
  if (EVP_PKEY_get_raw_public_key(key.get(), pub.data() + 1, &len) != 1 || len != 32)
    throw OptionError("option \"nkey\": cannot derive the public key");
  const uint16_t pcrc = crc16_xmodem(pub.data(), 33);
  pub[33] = static_cast<uint8_t>(pcrc & 0xff);
  pub[34] = static_cast<uint8_t>(pcrc >> 8);
  return base32_encode(pub);
}

std::string status_text(const std::string &what, natsStatus s, jsErrCode code) {
  std::string text = what + ": " + natsStatus_GetText(s);
  // The thread's last error often says more (the server's words).
  natsStatus last = NATS_OK;
  const char *detail = nats_GetLastError(&last);
  if (detail && *detail && last == s && std::strstr(detail, natsStatus_GetText(s)) != detail)
    text += std::string(" (") + detail + ")";
  if (code != 0) text += " [JetStream error " + std::to_string(static_cast<int>(code)) + "]";
  return text;
}

// ---- CallbackGate ---------------------------------------------------------------
void *CallbackGate::open(void *target) {
  auto &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const uintptr_t key = r.next++;
  r.live.emplace(key, target);
  return reinterpret_cast<void *>(key);
}

void CallbackGate::close(void *closure) noexcept {
  auto &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.live.erase(reinterpret_cast<uintptr_t>(closure));
}

std::mutex &CallbackGate::mutex() { return registry().mutex; }

void *CallbackGate::lookup(void *closure) {
  auto &r = registry();
  auto it = r.live.find(reinterpret_cast<uintptr_t>(closure));
  return it == r.live.end() ? nullptr : it->second;
}

// ---- settings -------------------------------------------------------------------
const std::vector<const char *> &nats_option_names() {
  static const std::vector<const char *> names{"servers",
                                               "stream",
                                               "subject_prefix",
                                               "creds",
                                               "nkey",
                                               "user",
                                               "password",
                                               "token",
                                               "tls",
                                               "replicas",
                                               "duplicate_window",
                                               "connect_timeout",
                                               "request_timeout",
                                               "client_name"};
  return names;
}

std::string check_server_url(const std::string &url) {
  std::string rest;
  for (const char *scheme : {"nats://", "tls://"})
    if (url.rfind(scheme, 0) == 0) rest = url.substr(std::strlen(scheme));
  if (rest.empty() && url.find("://") == std::string::npos)
    return "expected nats://host:port or tls://host:port";
  if (rest.empty()) return "the scheme must be nats:// or tls://, with a host after it";
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    if (at == 0) return "empty user before '@'";
    rest = rest.substr(at + 1);
  }
  if (rest.find_first_of("/?#") != std::string::npos) return "no path, query or fragment allowed";
  std::string host, port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return "unterminated [IPv6] address";
    host = rest.substr(1, close - 1);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos)
      return "bad [IPv6] address";
    std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "expected ':port' after the [IPv6] address";
      port = after.substr(1);
      if (port.empty()) return "empty port";
    }
  } else {
    auto colon = rest.find(':');
    host = rest.substr(0, colon);
    if (colon != std::string::npos) {
      port = rest.substr(colon + 1);
      if (port.empty()) return "empty port";
    }
    if (!valid_host_name(host)) return "bad host name \"" + host + "\"";
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return "bad port";
    const int p = std::stoi(port);
    if (p < 1 || p > 65535) return "port out of range 1-65535";
  }
  return "";
}

std::string subject_token(const std::string &text) {
  if (text.empty()) return "_";
  std::string out = text;
  for (char &c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '.' || c == '*' || c == '>') c = '_';
  }
  return out;
}

NatsSettings parse_nats_settings(const nlohmann::json &o, const std::string &config_dir) {
  if (!o.is_object()) throw OptionError("options are not a JSON object");
  NatsSettings s;
  if (o.contains("servers")) {
    const auto &v = o["servers"];
    std::vector<std::string> list;
    if (v.is_string()) {
      list.push_back(v.get<std::string>());
    } else if (v.is_array() && !v.empty()) {
      for (const auto &e : v) {
        if (!e.is_string()) throw OptionError("option \"servers\" must list URLs as strings");
        list.push_back(e.get<std::string>());
      }
    } else {
      throw OptionError("option \"servers\" must be a non-empty list of nats:// or tls:// URLs");
    }
    s.servers = std::move(list);
  }
  for (const auto &url : s.servers)
    if (auto why = check_server_url(url); !why.empty())
      throw OptionError("option \"servers\": bad URL \"" + url + "\": " + why);

  s.stream = get_string(o, "stream", s.stream);
  if (s.stream.empty() || s.stream.find_first_of(" \t\r\n.*>/\\") != std::string::npos ||
      !valid_subject(s.stream, false))
    throw OptionError("option \"stream\" must be a non-empty name without whitespace, '.', '*', '>', '/' "
                      "or '\\'");
  s.subject_prefix = get_string(o, "subject_prefix", s.subject_prefix);
  if (!valid_subject(s.subject_prefix, false))
    throw OptionError("option \"subject_prefix\" must be a NATS subject: dot-separated non-empty tokens "
                      "without whitespace, '*' or '>'");

  int methods = 0;
  if (o.contains("creds")) s.creds = readable_file(o, "creds", config_dir), ++methods;
  if (o.contains("nkey")) {
    s.nkey = readable_file(o, "nkey", config_dir), ++methods;
    nkey_public_from_seed_file(s.nkey); // the seed must parse
  }
  s.user = get_string(o, "user", "");
  s.password = get_string(o, "password", "");
  if (o.contains("user") || o.contains("password")) {
    if (s.user.empty()) throw OptionError("option \"password\" needs a non-empty \"user\"");
    if (!o.contains("password")) throw OptionError("option \"user\" needs a \"password\"");
    ++methods;
  }
  if (o.contains("token")) {
    s.token = get_string(o, "token", "");
    if (s.token.empty()) throw OptionError("option \"token\" must not be empty");
    ++methods;
  }
  if (methods > 1)
    throw OptionError("options \"creds\", \"nkey\", \"user\"/\"password\" and \"token\" are alternatives: "
                      "give at most one");

  if (o.contains("tls")) {
    const auto &t = o["tls"];
    if (!t.is_object()) throw OptionError("option \"tls\" must be an object with ca, cert and key");
    for (auto it = t.begin(); it != t.end(); ++it)
      if (it.key() != "ca" && it.key() != "cert" && it.key() != "key")
        throw OptionError("unknown option \"tls." + it.key() + "\" (expected one of ca, cert, key)");
    TlsSettings tls;
    if (t.contains("ca")) tls.ca = readable_file(t, "ca", config_dir, "tls.");
    if (t.contains("cert") != t.contains("key"))
      throw OptionError("options \"tls.cert\" and \"tls.key\" go together");
    if (t.contains("cert")) {
      tls.cert = readable_file(t, "cert", config_dir, "tls.");
      tls.key = readable_file(t, "key", config_dir, "tls.");
    }
    s.tls = std::move(tls);
  }

  if (o.contains("replicas")) {
    const auto &v = o["replicas"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 5)
      throw OptionError("option \"replicas\" must be an integer from 1 to 5");
    s.replicas = static_cast<int>(v.get<int64_t>());
  }
  s.duplicate_window = get_duration(o, "duplicate_window", s.duplicate_window);
  s.connect_timeout = get_duration(o, "connect_timeout", s.connect_timeout);
  s.request_timeout = get_duration(o, "request_timeout", s.request_timeout);
  s.client_name = get_string(o, "client_name", s.client_name);
  return s;
}

// ---- NatsConnection -------------------------------------------------------------------
NatsConnection::NatsConnection(Private, const NatsSettings &settings, LogFn log, EventFn on_event)
    : settings_(settings), log_(std::move(log)), on_event_(std::move(on_event)) {}

std::unique_ptr<NatsConnection> NatsConnection::connect(const NatsSettings &settings, LogFn log,
                                                        EventFn on_event) {
  auto c = std::make_unique<NatsConnection>(Private{}, settings, std::move(log), std::move(on_event));
  c->gate_ = CallbackGate::open(c.get());
  natsOptions *raw = nullptr;
  check(natsOptions_Create(&raw), "natsOptions_Create");
  c->opts_.reset(raw);
  natsOptions *o = raw;
  std::vector<const char *> urls;
  for (const auto &u : settings.servers)
    urls.push_back(u.c_str());
  check(natsOptions_SetServers(o, urls.data(), static_cast<int>(urls.size())), "servers");
  check(natsOptions_SetName(o, settings.client_name.c_str()), "client_name");
  check(natsOptions_SetTimeout(o, settings.connect_timeout.count()), "connect_timeout");
  check(natsOptions_SetMaxReconnect(o, -1), "natsOptions_SetMaxReconnect");
  check(natsOptions_SetCustomReconnectDelay(o, reconnect_delay_cb, c->gate_), "reconnect delay");
  check(natsOptions_SetRetryOnFailedConnect(o, true, connected_cb, c->gate_), "retry on failed connect");
  check(natsOptions_SetReconnectedCB(o, connected_cb, c->gate_), "reconnected callback");
  check(natsOptions_SetDisconnectedCB(o, disconnected_cb, c->gate_), "disconnected callback");
  check(natsOptions_SetClosedCB(o, closed_cb, c->gate_), "closed callback");
  check(natsOptions_SetErrorHandler(o, error_cb, c->gate_), "error handler");
  // A dead peer that sends no FIN is noticed within ~30 s.
  check(natsOptions_SetPingInterval(o, 10000), "ping interval");
  check(natsOptions_SetMaxPingsOut(o, 2), "max pings out");
  // JetStream API requests fail at once when the link drops instead of
  // waiting out their timeout.
  check(natsOptions_SetFailRequestsOnDisconnect(o, true), "fail requests on disconnect");
  if (!settings.creds.empty())
    check(natsOptions_SetUserCredentialsFromFiles(o, settings.creds.c_str(), nullptr),
          "creds \"" + settings.creds + "\"");
  if (!settings.nkey.empty()) {
    // libnats wants the public key beside the seed file: derive it.
    const std::string pub = nkey_public_from_seed_file(settings.nkey);
    check(natsOptions_SetNKeyFromSeed(o, pub.c_str(), settings.nkey.c_str()),
          "nkey \"" + settings.nkey + "\"");
  }
  if (!settings.user.empty())
    check(natsOptions_SetUserInfo(o, settings.user.c_str(), settings.password.c_str()), "user");
  if (!settings.token.empty()) check(natsOptions_SetToken(o, settings.token.c_str()), "token");
  bool tls_url = false;
  for (const auto &u : settings.servers)
    tls_url = tls_url || u.rfind("tls://", 0) == 0;
  if (tls_url && !settings.tls) check(natsOptions_SetSecure(o, true), "tls");
  if (settings.tls) {
    check(natsOptions_SetSecure(o, true), "tls");
    if (!settings.tls->ca.empty())
      check(natsOptions_LoadCATrustedCertificates(o, settings.tls->ca.c_str()),
            "tls.ca \"" + settings.tls->ca + "\"");
    if (!settings.tls->cert.empty())
      check(natsOptions_LoadCertificatesChain(o, settings.tls->cert.c_str(), settings.tls->key.c_str()),
            "tls.cert/tls.key");
  }
  natsConnection *nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, o);
  if (s == NATS_OK) {
    c->nc_.reset(nc);
    c->generation_.fetch_add(1);
    char url[256] = "";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    if (c->log_) c->log_(SINK_LOG_INFO, std::string("connected to ") + url);
    c->was_up_ = true;
    c->ever_up_ = true;
  } else if (s == NATS_NOT_YET_CONNECTED) {
    c->nc_.reset(nc); // libnats keeps trying; connected_cb says when it made it
  } else {
    throw NatsError(status_text("connecting to " + c->servers_text(), s), s);
  }
  return c;
}

NatsConnection::~NatsConnection() {
  CallbackGate::close(gate_); // first: no callback reaches us from here on
  nc_.reset();
}

std::string NatsConnection::servers_text() const {
  std::string out;
  for (const auto &u : settings_.servers)
    out += (out.empty() ? "" : ", ") + u;
  return out;
}

std::string NatsConnection::last_error() const {
  const char *text = nullptr;
  if (nc_ && natsConnection_GetLastError(nc_.get(), &text) != NATS_OK && text) return text;
  return "";
}

JsPtr NatsConnection::jetstream(jsOptions *opts) const {
  jsCtx *js = nullptr;
  check(natsConnection_JetStream(&js, nc_.get(), opts), "natsConnection_JetStream");
  return JsPtr(js);
}

void NatsConnection::on_link(LinkEvent e, natsConnection *nc) noexcept {
  // Runs under the gate lock: was_up_ needs nothing else.
  try {
    if (e == LinkEvent::up) {
      generation_.fetch_add(1);
      char url[256] = "";
      natsConnection_GetConnectedUrl(nc, url, sizeof url);
      if (log_) log_(SINK_LOG_INFO, std::string(ever_up_ ? "reconnected" : "connected") + " to " + url);
      was_up_ = true;
      ever_up_ = true;
    } else if (e == LinkEvent::down) {
      if (was_up_ && log_) {
        const char *why = nullptr;
        natsConnection_GetLastError(nc, &why);
        log_(SINK_LOG_WARN, std::string("lost the connection to the NATS server") +
                                (why && *why ? std::string(" (") + why + ")" : std::string()) +
                                "; reconnecting to " + servers_text() + " with back-off");
      }
      was_up_ = false;
    } else {
      const char *why = nullptr;
      natsConnection_GetLastError(nc, &why);
      if (log_)
        log_(SINK_LOG_ERROR, std::string("the NATS client gave up on ") + servers_text() +
                                 (why && *why ? std::string(": ") + why : std::string()));
      was_up_ = false;
    }
    if (on_event_) on_event_(e);
  } catch (...) {
  }
}

void NatsConnection::connected_cb(natsConnection *nc, void *closure) {
  CallbackGate::with<NatsConnection>(closure, [&](NatsConnection &c) { c.on_link(LinkEvent::up, nc); });
}
void NatsConnection::disconnected_cb(natsConnection *nc, void *closure) {
  CallbackGate::with<NatsConnection>(closure, [&](NatsConnection &c) { c.on_link(LinkEvent::down, nc); });
}
void NatsConnection::closed_cb(natsConnection *nc, void *closure) {
  CallbackGate::with<NatsConnection>(closure, [&](NatsConnection &c) { c.on_link(LinkEvent::closed, nc); });
}
void NatsConnection::error_cb(natsConnection *, natsSubscription *, natsStatus err, void *closure) {
  CallbackGate::with<NatsConnection>(closure, [&](NatsConnection &c) {
    if (c.log_ && err != NATS_OK)
      c.log_(SINK_LOG_WARN, std::string("NATS asynchronous error: ") + natsStatus_GetText(err));
  });
}

int64_t NatsConnection::reconnect_delay_cb(natsConnection *, int attempts, void *) {
  // 100 ms doubling to 5 s, plus up to 20 % jitter: never a tight loop.
  thread_local std::minstd_rand rng{std::random_device{}()};
  const int shift = std::clamp(attempts - 1, 0, 6);
  const int64_t base = std::min<int64_t>(int64_t{100} << shift, 5000);
  return base + static_cast<int64_t>(rng() % static_cast<uint32_t>(base / 5 + 1));
}

// ---- streams ------------------------------------------------------------------------------
StreamSpec stream_spec(const NatsSettings &s) {
  return StreamSpec{s.stream, {s.subject_prefix + ".>"}, s.replicas, s.duplicate_window};
}

StreamState ensure_stream(jsCtx *js, const StreamSpec &spec, std::chrono::milliseconds timeout,
                          std::string *note) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = timeout.count();
  jsErrCode code = static_cast<jsErrCode>(0);
  jsStreamInfo *raw = nullptr;
  natsStatus s = js_GetStreamInfo(&raw, js, spec.name.c_str(), &jo, &code);
  StreamInfoPtr info(raw);
  if (s == NATS_OK) {
    if (note) {
      note->clear();
      const jsStreamConfig *cfg = info->Config;
      bool covered = false;
      for (int i = 0; cfg && i < cfg->SubjectsLen; ++i)
        for (const auto &want : spec.subjects)
          covered = covered || want == cfg->Subjects[i] || std::string(">") == cfg->Subjects[i];
      if (!covered)
        *note = "stream \"" + spec.name + "\" exists but does not list the subjects \"" +
                spec.subjects.at(0) + "\": publishes may not be captured";
    }
    return StreamState::existed;
  }
  if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr)
    throw NatsError(status_text("looking up stream \"" + spec.name + "\"", s, code), s);

  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = spec.name.c_str();
  std::vector<const char *> subjects;
  for (const auto &subj : spec.subjects)
    subjects.push_back(subj.c_str());
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Storage = js_FileStorage;
  cfg.Replicas = spec.replicas;
  cfg.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(spec.duplicate_window).count();
  code = static_cast<jsErrCode>(0);
  raw = nullptr;
  s = js_AddStream(&raw, js, &cfg, &jo, &code);
  info.reset(raw);
  if (s == NATS_OK) return StreamState::created;
  if (code == JSStreamNameExistErr) return StreamState::existed; // another client was first
  throw NatsError(status_text("creating stream \"" + spec.name + "\"", s, code), s);
}

} // namespace sink::nats
