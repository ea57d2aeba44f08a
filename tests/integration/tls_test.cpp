// The TLS transport against real clients: openssl s_client, Python's ssl,
// curl, and raw sockets sending what probers send.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "ClientHelloBuilder.h"
#include "Records.h"
#include "SinkProcess.h"
#include "TestClient.h"

using namespace sinktest;
using namespace std::chrono_literals;

namespace {

// server.crt / server.key in dir: a self-signed RSA-2048 pair for CN=cn.
void make_rsa_certificate(const TempDir &dir, const std::string &cn) {
  auto gen = run_program(dir,
                         {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
                          "-out", "server.crt", "-days", "2", "-subj", "/CN=" + cn},
                         "");
  ASSERT_EQ(gen.code, 0) << gen.err;
}

// A TLS group on an ephemeral loopback port with a self-signed certificate.
struct TlsSink {
  TempDir dir;
  std::unique_ptr<SinkProcess> sink;
  uint16_t port = 0;

  explicit TlsSink(const std::string &timeout = "2s") {
    write_file(dir.file("c.yaml"),
               "log: {path: sink.log}\nplugin_path: [\"" + bundled_plugin_dir() +
                   "\"]\ngroups:\n  - name: tls\n    transport: tls\n    listen: 127.0.0.1\n"
                   "    ports: 0\n    timeout: " +
                   timeout +
                   "\n    capture_bytes: 4096\noutputs:\n  - plugin: jsonl\n    path: out.jsonl\n"
                   "  - plugin: csv\n    path: out.csv\n");
    sink = std::make_unique<SinkProcess>(dir, std::vector<std::string>{"--config", "c.yaml"});
    port = sink->wait_listening(1, dir.file("sink.log"))[0];
  }

  std::map<uint16_t, nlohmann::json> records(size_t n) {
    return jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), n));
  }
  // The only record, once it is written.
  nlohmann::json only_record() {
    auto all = records(1);
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? nlohmann::json() : all.begin()->second;
  }
  std::string target() const { return "127.0.0.1:" + std::to_string(port); }
};

// The independent oracle's view of a raw ClientHello (tests/tools).
std::map<std::string, std::string> oracle(const TempDir &dir, const std::string &raw_hex) {
  write_file(dir.file("hello.hex"), raw_hex);
  auto r = run_program(
      dir, {"python3", std::string(SINK_SOURCE_DIR) + "/tests/tools/tls_fingerprint.py", "hello.hex"}, "");
  std::map<std::string, std::string> out;
  for (const auto &line : split(r.out, '\n')) {
    auto sp = line.find(' ');
    if (sp != std::string::npos) out[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return out;
}

void expect_ok_handshake(const nlohmann::json &j, const std::string &version, const std::string &payload) {
  SCOPED_TRACE(j.dump());
  const auto &x = j["extra"];
  EXPECT_EQ(j["transport"], "tls");
  EXPECT_EQ(x["tls.handshake"], "ok");
  EXPECT_EQ(x["tls.error"], "");
  EXPECT_EQ(x["tls.version"], version);
  EXPECT_NE(x["tls.cipher"], "");
  EXPECT_EQ(j["payload_hex"], hex(payload));
  EXPECT_EQ(j["payload_len"], payload.size());
  EXPECT_TRUE(
      std::regex_match(x["tls.ja3"].get<std::string>(), std::regex(R"(\d+,[\d-]+,[\d-]*,[\d-]*,[\d-]*)")));
  EXPECT_TRUE(std::regex_match(x["tls.ja3_hash"].get<std::string>(), std::regex("[0-9a-f]{32}")));
  EXPECT_TRUE(std::regex_match(x["tls.ja4"].get<std::string>(),
                               std::regex(R"(t1[0-3][di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12})")));
  EXPECT_EQ(x["tls.raw_hex"].get<std::string>().substr(0, 6), "160301");
}

std::string sslv2_hello() {
  // SSLv2-format CLIENT-HELLO offering SSL 3.0 and two ciphers.
  const Bytes b{0x80, 0x1f, 0x01, 0x03, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x10,
                0x00, 0x00, 0x04, 0x01, 0x00, 0x80, 0x11, 0x22, 0x33, 0x44, 0x55,
                0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00};
  return std::string(b.begin(), b.end());
}

// The start of every Python TLS client below: a context that accepts the
// sink's self-signed certificate.
const std::string kPythonTlsClient = R"(import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
)";

// What openssl s_client saw of the server in one handshake.
struct ServerIdentity {
  int code = -1;             // s_client's exit status: 0 once the handshake completed
  std::string key;           // the certificate's key: "EC P-256", "RSA 2048", or what openssl says
  std::string signature;     // the handshake signature: "ECDSA", "RSA", "RSA-PSS"
  std::string subject;       // the certificate's subject
  std::string client_output; // all of it, for failure messages
};

// Connects with openssl s_client and extra arguments (-tls1_3, -sigalgs,
// -cipher ...), sends payload, and describes the certificate and signature
// the server used.
ServerIdentity s_client_identity(const TempDir &dir, const std::string &target,
                                 const std::vector<std::string> &extra, const std::string &payload) {
  std::vector<std::string> argv{"openssl", "s_client", "-connect", target, "-nocommands", "-no_ign_eof"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto client = run_program(dir, argv, payload);
  ServerIdentity id;
  id.code = client.code;
  id.client_output = client.out + client.err;
  std::smatch m;
  if (std::regex_search(client.out, m, std::regex("Peer signature type: (\\S+)"))) id.signature = m[1];
  const auto begin = client.out.find("-----BEGIN CERTIFICATE-----");
  const auto end = client.out.find("-----END CERTIFICATE-----");
  if (begin == std::string::npos || end == std::string::npos) return id;
  const std::string pem = client.out.substr(begin, end + 25 - begin) + "\n";
  auto text = run_program(dir, {"openssl", "x509", "-noout", "-subject", "-text"}, pem).out;
  if (std::regex_search(text, m, std::regex("subject=\\s*(.*)"))) id.subject = m[1];
  const bool ec = text.find("Public Key Algorithm: id-ecPublicKey") != std::string::npos;
  const bool rsa = text.find("Public Key Algorithm: rsaEncryption") != std::string::npos;
  std::string bits;
  if (std::regex_search(text, m, std::regex("Public-Key: \\((\\d+) bit\\)"))) bits = m[1];
  std::string curve;
  if (std::regex_search(text, m, std::regex("NIST CURVE: (\\S+)"))) curve = m[1];
  id.key = ec ? "EC " + curve : rsa ? "RSA " + bits : text;
  return id;
}

} // namespace

TEST(Tls, OpensslClientTls13WithSniAndAlpn) {
  TlsSink s;
  auto client = run_program(s.dir,
                            {"openssl", "s_client", "-connect", s.target(), "-tls1_3", "-servername",
                             "sink.example", "-alpn", "h2,http/1.1", "-quiet", "-no_ign_eof"},
                            "hello over tls 1.3");
  EXPECT_EQ(client.out, "") << "the client must receive no application data";
  auto j = s.only_record();
  expect_ok_handshake(j, "TLSv1.3", "hello over tls 1.3");
  EXPECT_EQ(j["extra"]["tls.sni"], "sink.example");
  EXPECT_EQ(j["extra"]["tls.alpn"], "h2,http/1.1");
  EXPECT_EQ(j["close_reason"], "client_fin");
  // The fingerprints agree with the independent implementation.
  auto o = oracle(s.dir, j["extra"]["tls.raw_hex"]);
  EXPECT_EQ(j["extra"]["tls.ja3"], o["ja3"]);
  EXPECT_EQ(j["extra"]["tls.ja3_hash"], o["ja3_hash"]);
  EXPECT_EQ(j["extra"]["tls.ja4"], o["ja4"]);
  EXPECT_EQ(j["extra"]["tls.ja4"].get<std::string>().substr(0, 4), "t13d");
  EXPECT_EQ(s.sink->stop().code, 0);
  // CSV stays the original's: decrypted payload and its length.
  auto csv = csv_by_remote_port(read_lines(s.dir.file("out.csv")));
  ASSERT_EQ(csv.size(), 1u);
  EXPECT_EQ(csv.begin()->second.payload_hex, hex("hello over tls 1.3"));
  EXPECT_EQ(csv.begin()->second.len, 18u);
}

TEST(Tls, OpensslClientTls12) {
  TlsSink s;
  auto client = run_program(
      s.dir, {"openssl", "s_client", "-connect", s.target(), "-tls1_2", "-quiet", "-no_ign_eof"}, "twelve");
  EXPECT_EQ(client.out, "");
  auto j = s.only_record();
  expect_ok_handshake(j, "TLSv1.2", "twelve");
  EXPECT_EQ(j["extra"]["tls.sni"], "");
  EXPECT_EQ(j["extra"]["tls.ja4"].get<std::string>().substr(0, 4), "t12i");
  auto o = oracle(s.dir, j["extra"]["tls.raw_hex"]);
  EXPECT_EQ(j["extra"]["tls.ja4"], o["ja4"]);
  EXPECT_EQ(j["extra"]["tls.ja3"], o["ja3"]);
}

TEST(Tls, PythonSslClientGetsNothingBack) {
  TlsSink s("1s");
  const std::string script = R"(
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
tls = ctx.wrap_socket(raw, server_hostname="py.example", suppress_ragged_eofs=False)
tls.sendall(b"from python")
got = b""
end = "?"
try:
    while True:
        d = tls.recv(4096)
        if not d:
            end = "close_notify"
            break
        got += d
except ssl.SSLEOFError:
    end = "eof"  # closed without close_notify
except (ssl.SSLError, OSError) as e:
    end = type(e).__name__
print(len(got), end)
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "");
  EXPECT_EQ(client.code, 0) << client.err;
  EXPECT_EQ(client.out, "0 eof\n") << "no application bytes, and no close_notify at our close";
  auto j = s.only_record();
  expect_ok_handshake(j, "TLSv1.3", "from python");
  EXPECT_EQ(j["extra"]["tls.sni"], "py.example");
  EXPECT_EQ(j["close_reason"], "timeout");
}

TEST(Tls, CloseWithoutCloseNotifyIsAFinAndLosesNoBytes) {
  TlsSink s("5s");
  // Sends 100,000 bytes and closes the socket at once, without close_notify,
  // so the last bytes and the EOF arrive in the same read pass. Also reports
  // whether the server sent a session ticket.
  const std::string script = R"(
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx.minimum_version = ctx.maximum_version = version
    raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    tls = ctx.wrap_socket(raw)
    tls.setblocking(False)
    try:
        tls.recv(1)  # lets a TLS 1.3 NewSessionTicket arrive, if one were sent
    except (ssl.SSLWantReadError, BlockingIOError):
        pass
    tls.setblocking(True)
    tls.sendall(b"z" * 100000)
    print(version.name, tls.session is not None and tls.session.has_ticket)
    raw.close()
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "");
  EXPECT_EQ(client.code, 0) << client.err;
  EXPECT_EQ(client.out, "TLSv1_3 False\nTLSv1_2 False\n") << "no session tickets";
  auto all = s.records(2);
  ASSERT_EQ(all.size(), 2u);
  for (auto &[p, j] : all) {
    SCOPED_TRACE(j.dump().substr(0, 400));
    EXPECT_EQ(j["close_reason"], "client_fin");
    EXPECT_EQ(j["payload_len"], 100000);
    EXPECT_EQ(j["captured_len"], 4096);
    EXPECT_EQ(j["truncated"], true);
    EXPECT_EQ(j["extra"]["tls.handshake"], "ok");
    EXPECT_EQ(j["extra"]["tls.error"], "");
  }
}

TEST(Tls, OldClientsAreAcceptedToo) {
  TlsSink s;
  auto client = run_program(s.dir,
                            {"openssl", "s_client", "-connect", s.target(), "-tls1", "-cipher",
                             "DEFAULT:@SECLEVEL=0", "-quiet", "-no_ign_eof"},
                            "tls one point oh");
  auto j = s.only_record();
  expect_ok_handshake(j, "TLSv1", "tls one point oh");
  EXPECT_EQ(j["extra"]["tls.ja4"].get<std::string>().substr(0, 3), "t10");
}

TEST(Tls, CurlRequestIsRecordedDecrypted) {
  TlsSink s("1s");
  auto client =
      run_program(s.dir, {"curl", "-sk", "--max-time", "5", "https://" + s.target() + "/probe?x=1"}, "");
  EXPECT_EQ(client.out, "");
  EXPECT_NE(client.code, 0) << "curl gets no reply";
  auto j = s.only_record();
  SCOPED_TRACE(j.dump());
  EXPECT_EQ(j["extra"]["tls.handshake"], "ok");
  EXPECT_EQ(j["payload_hex"].get<std::string>().substr(0, 2 * 23), hex("GET /probe?x=1 HTTP/1.1"));
  EXPECT_NE(j["extra"]["tls.alpn"].get<std::string>().find("http/1.1"), std::string::npos);
}

TEST(Tls, NonTlsProbesAreCapturedRaw) {
  TlsSink s("1s");
  const std::string http = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe\r\n\r\n";
  const std::string garbage = std::string("\x00\xff\x13garbage, not TLS\n", 20);
  std::map<std::string, uint16_t> port;
  std::map<std::string, std::string> got;
  for (const auto &[name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"http", http}, {"garbage", garbage}, {"sslv2", sslv2_hello()}}) {
    TestClient c("127.0.0.1", s.port);
    port[name] = c.local_port();
    c.send(bytes);
    bool closed = false;
    got[name] = c.read_until_closed(5, &closed);
    EXPECT_TRUE(closed) << name;
  }
  auto all = s.records(3);
  ASSERT_EQ(all.size(), 3u);
  for (const auto &[name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"http", http}, {"garbage", garbage}, {"sslv2", sslv2_hello()}}) {
    const auto &j = all[port[name]];
    SCOPED_TRACE(name + ": " + j.dump());
    // At most one TLS alert record (OpenSSL's answer to a bad hello): no data.
    EXPECT_TRUE(got[name].empty() || (got[name].size() == 7 && got[name][0] == '\x15')) << hex(got[name]);
    EXPECT_EQ(j["extra"]["tls.handshake"], "failed");
    EXPECT_NE(j["extra"]["tls.error"], "");
    EXPECT_EQ(j["extra"]["tls.raw_hex"], hex(bytes));
    EXPECT_EQ(j["extra"]["tls.ja3"], "");
    EXPECT_EQ(j["payload_hex"], "");
    EXPECT_EQ(j["payload_len"], 0);
    EXPECT_EQ(j["close_reason"], "error");
  }
  EXPECT_EQ(all[port["http"]]["extra"]["tls.error"], "http request");
  EXPECT_EQ(s.sink->stop().code, 0);
  for (const auto &[p, row] : csv_by_remote_port(read_lines(s.dir.file("out.csv")))) {
    EXPECT_EQ(row.payload_hex, "");
    EXPECT_EQ(row.len, 0u);
  }
}

TEST(Tls, StalledAndResetHandshakesAreRecorded) {
  TlsSink s("1s");
  Bytes hello = build_hello(0x0303, {0x1301, 0x002f}, {sni_ext("stall.example")});
  const std::string head(hello.begin(), hello.begin() + 30);
  uint16_t stalled, reset, silent;
  std::thread quiet([&] {
    TestClient c("127.0.0.1", s.port);
    silent = c.local_port();
    bool closed;
    c.read_until_closed(5, &closed);
  });
  std::thread stall([&] {
    TestClient c("127.0.0.1", s.port);
    stalled = c.local_port();
    c.send(head);
    bool closed;
    c.read_until_closed(5, &closed);
  });
  {
    TestClient c("127.0.0.1", s.port);
    reset = c.local_port();
    c.send(head);
    std::this_thread::sleep_for(100ms);
    c.reset();
  }
  stall.join();
  quiet.join();
  auto all = s.records(3);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[silent]["extra"]["tls.handshake"], "incomplete");
  EXPECT_EQ(all[silent]["extra"]["tls.raw_hex"], "");
  EXPECT_EQ(all[silent]["close_reason"], "timeout");
  for (uint16_t p : {stalled, reset}) {
    const auto &j = all[p];
    SCOPED_TRACE(j.dump());
    EXPECT_EQ(j["extra"]["tls.handshake"], "incomplete");
    EXPECT_EQ(j["extra"]["tls.raw_hex"], hex(head));
    EXPECT_EQ(j["payload_len"], 0);
  }
  EXPECT_EQ(all[stalled]["close_reason"], "timeout");
  EXPECT_EQ(all[reset]["close_reason"], "client_rst");
}

TEST(Tls, HelloWithHundredsOfExtensionsDoesNotDisturbOthers) {
  TlsSink s("1s");
  std::vector<Ext> exts{sni_ext("many.example")};
  for (uint16_t i = 0; i < 400; ++i)
    exts.push_back({static_cast<uint16_t>(0x3000 + i), {0, 1, 2, 3}});
  Bytes hello = build_hello(0x0303, {0xc02f, 0x002f}, exts, 4000);
  uint16_t many;
  {
    TestClient c("127.0.0.1", s.port);
    many = c.local_port();
    c.send(std::string(hello.begin(), hello.end()));
    std::this_thread::sleep_for(200ms);
    c.close();
  }
  auto client = run_program(s.dir, {"openssl", "s_client", "-connect", s.target(), "-quiet", "-no_ign_eof"},
                            "still fine");
  auto all = s.records(2);
  ASSERT_EQ(all.size(), 2u);
  const auto &j = all[many];
  SCOPED_TRACE(j.dump());
  EXPECT_EQ(j["extra"]["tls.sni"], "many.example");
  std::string ja3 = j["extra"]["tls.ja3"];
  auto fields = split(ja3, ',');
  ASSERT_GE(fields.size(), 3u);
  EXPECT_EQ(split(fields[2], '-').size(), 401u);
  EXPECT_EQ(j["extra"]["tls.ja4"].get<std::string>().substr(0, 10), "t12d029900");
  for (auto &[p, r] : all)
    if (p != many) {
      EXPECT_EQ(r["payload_hex"], hex("still fine"));
    }
}

// With no certificate configured the sink holds two identities: a client
// that offers only ECDSA gets the P-256 certificate and an ECDSA signature,
// an RSA-only client still connects and gets the RSA-2048 one.
TEST(Tls, DefaultIdentitiesServeEcdsaAndRsaOnlyClients) {
  TlsSink s;
  const std::string log = read_file(s.dir.file("sink.log"));
  EXPECT_NE(log.find("ECDSA P-256 for clients that offer ECDSA"), std::string::npos) << log;
  EXPECT_NE(log.find("RSA-2048 for RSA-only clients"), std::string::npos) << log;
  struct Case {
    std::string payload; // also tells the records apart
    std::vector<std::string> args;
    std::string version, key, signature;
  };
  const std::string ecdsa = "ecdsa_secp256r1_sha256", rsa = "rsa_pss_rsae_sha256:rsa_pkcs1_sha256";
  const std::vector<Case> cases{
      {"ecdsa over tls 1.3", {"-tls1_3", "-sigalgs", ecdsa}, "TLSv1.3", "EC P-256", "ECDSA"},
      {"ecdsa over tls 1.2",
       {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-sigalgs", ecdsa},
       "TLSv1.2",
       "EC P-256",
       "ECDSA"},
      {"rsa over tls 1.3", {"-tls1_3", "-sigalgs", rsa}, "TLSv1.3", "RSA 2048", "RSA-PSS"},
      {"rsa over tls 1.2", {"-tls1_2", "-cipher", "aRSA", "-sigalgs", rsa}, "TLSv1.2", "RSA 2048", ""},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.payload);
    const auto id = s_client_identity(s.dir, s.target(), c.args, c.payload);
    EXPECT_EQ(id.code, 0) << id.client_output;
    EXPECT_EQ(id.key, c.key) << id.client_output;
    EXPECT_EQ(id.subject, "CN = sink");
    if (c.signature.empty())
      EXPECT_TRUE(id.signature == "RSA" || id.signature == "RSA-PSS") << id.signature;
    else
      EXPECT_EQ(id.signature, c.signature);
  }
  std::map<std::string, nlohmann::json> by_payload;
  for (auto &[port, j] : s.records(cases.size()))
    by_payload[j["payload_hex"]] = j;
  for (const auto &c : cases) {
    SCOPED_TRACE(c.payload);
    ASSERT_EQ(by_payload.count(hex(c.payload)), 1u) << "no record with this payload";
    const auto &j = by_payload[hex(c.payload)];
    expect_ok_handshake(j, c.version, c.payload);
    EXPECT_EQ(j["close_reason"], "client_fin");
  }
  EXPECT_EQ(s.sink->stop().code, 0);
}

// A configured RSA certificate is the only identity: no ECDSA appears
// beside it, so an ECDSA-only client is refused as before.
TEST(Tls, AConfiguredCertificateIsTheOnlyIdentity) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(make_rsa_certificate(dir, "configured"));
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\nplugin_path: [\"" + bundled_plugin_dir() +
                                     "\"]\ngroups:\n  - name: tls\n    transport: tls\n    listen: "
                                     "127.0.0.1\n    ports: 0\n    timeout: 2s\n"
                                     "    tls: {cert: server.crt, key: server.key}\n"
                                     "outputs:\n  - plugin: jsonl\n    path: out.jsonl\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  const std::string target = "127.0.0.1:" + std::to_string(sink.wait_listening(1, dir.file("sink.log"))[0]);
  EXPECT_EQ(read_file(dir.file("sink.log")).find("self-signed"), std::string::npos);
  const auto rsa = s_client_identity(dir, target, {"-tls1_3"}, "configured rsa");
  EXPECT_EQ(rsa.code, 0) << rsa.client_output;
  EXPECT_EQ(rsa.key, "RSA 2048") << rsa.client_output;
  EXPECT_EQ(rsa.subject, "CN = configured");
  const auto ecdsa =
      s_client_identity(dir, target, {"-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256"}, "configured ecdsa");
  EXPECT_NE(ecdsa.code, 0) << ecdsa.client_output;
  EXPECT_EQ(ecdsa.key, "");
  auto all = jsonl_by_remote_port(wait_for_lines(dir.file("out.jsonl"), 2));
  ASSERT_EQ(all.size(), 2u);
  std::map<std::string, int> handshakes;
  for (auto &[port, j] : all)
    ++handshakes[j["extra"]["tls.handshake"]];
  EXPECT_EQ(handshakes["ok"], 1);
  EXPECT_EQ(handshakes["failed"], 1);
  EXPECT_EQ(sink.stop().code, 0);
}

// A socket shared by a tcp and a tls group is logged as both; the
// self-signed certificate notice comes once, not once per network thread.
TEST(Tls, ASharedListenerNamesBothTransportsAndTheSelfSignedNoticeComesOnce) {
  TempDir dir;
  const std::string port = std::to_string(free_port());
  write_file(dir.file("c.yaml"), "log: {path: sink.log}\nworkers: 3\nplugin_path: [\"" +
                                     bundled_plugin_dir() +
                                     "\"]\ngroups:\n"
                                     "  - {name: plain, ports: " +
                                     port +
                                     ", timeout: 2s}\n"
                                     "  - {name: tls, transport: tls, ports: " +
                                     port +
                                     ", redirect_from: \"443\", timeout: 5s}\n"
                                     "outputs:\n  - plugin: jsonl\n    path: out.jsonl\n");
  SinkProcess sink(dir, {"--config", "c.yaml"});
  sink.wait_listening(1, dir.file("sink.log"));
  EXPECT_EQ(sink.stop().code, 0);
  const std::string log = read_file(dir.file("sink.log"));
  // One line for the one socket (all addresses: redirected groups cannot listen on loopback).
  const auto listening = log.find(" server is listening on ");
  ASSERT_NE(listening, std::string::npos) << log;
  const size_t line_start = log.rfind('\n', listening) + 1;
  const std::string line = log.substr(line_start, log.find('\n', listening) - line_start);
  EXPECT_NE(line.find(" TCP and TLS server is listening on "), std::string::npos) << line;
  EXPECT_NE(line.find(":" + port + ", timeout value: 2s / 5s"), std::string::npos) << line;
  EXPECT_EQ(log.find(" server is listening on ", listening + 1), std::string::npos) << log;
  const auto first = log.find("self-signed");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("self-signed", first + 1), std::string::npos) << log;
}

TEST(Tls, LegacyFlagsWithCertificateFiles) {
  TempDir dir;
  ASSERT_NO_FATAL_FAILURE(make_rsa_certificate(dir, "localhost"));
  SinkProcess sink(
      dir, {"-tls", "-ip", "127.0.0.1", "-p", "0", "-timeout", "2s", "-out", "out.csv", "-log", "sink.log"});
  const uint16_t port = sink.wait_listening(1, dir.file("sink.log"))[0];
  EXPECT_NE(read_file(dir.file("sink.log")).find("TLS server is listening on 127.0.0.1:"), std::string::npos);
  run_program(
      dir, {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-quiet", "-no_ign_eof"},
      "legacy tls");
  {
    TestClient c("127.0.0.1", port);
    c.send("GET / HTTP/1.1\r\n\r\n");
    bool closed;
    c.read_until_closed(5, &closed);
  }
  auto rows = wait_for_lines(dir.file("out.csv"), 2);
  EXPECT_EQ(sink.stop().code, 0);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_NE(rows[0].find("," + hex("legacy tls") + ",10,"), std::string::npos) << rows[0];
  EXPECT_NE(rows[1].find(",,0,"), std::string::npos) << rows[1];
}

TEST(Tls, LegacyFlagsRefuseMissingOrMismatchedCertificates) {
  TempDir dir;
  auto missing = run_sink(dir, {"-tls", "-ip", "127.0.0.1", "-p", "0", "-out", "out.csv"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("server.crt"), std::string::npos) << missing.err;
  run_program(dir,
              {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "a.key", "-out",
               "a.crt", "-days", "2", "-subj", "/CN=a"},
              "");
  run_program(dir, {"openssl", "genrsa", "-out", "b.key", "2048"}, "");
  auto mismatch =
      run_sink(dir, {"-tls", "-tlsCert", "a.crt", "-tlsKey", "b.key", "-ip", "127.0.0.1", "-p", "0"});
  EXPECT_EQ(mismatch.code, 2);
  EXPECT_NE(mismatch.err.find("private key \"" + dir.path() + "/b.key\" does not belong to certificate"),
            std::string::npos)
      << mismatch.err;
  // An EC key with an RSA certificate, and a missing file, said in words.
  run_program(dir, {"openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ec.key"}, "");
  auto ec = run_sink(dir, {"-tls", "-tlsCert", "a.crt", "-tlsKey", "ec.key", "-ip", "127.0.0.1", "-p", "0"});
  EXPECT_EQ(ec.code, 2);
  EXPECT_NE(ec.err.find("does not belong to certificate"), std::string::npos) << ec.err;
  EXPECT_NE(missing.err.find("cannot read certificate file"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("No such file or directory"), std::string::npos) << missing.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.csv"))) << "a refused start creates no output file";
}

TEST(Tls, NothingLeavesTheSinkAfterTheHandshakeEvenForABogusRecord) {
  TlsSink s("1s");
  // TLS 1.3: application data, then a bogus application_data record written
  // on the raw socket. OpenSSL answers such a record with an alert; sink
  // must discard it. Everything the server sends after the handshake is read.
  const std::string script = kPythonTlsClient + R"(
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
tls = ctx.wrap_socket(raw, server_hostname="bogus.example", do_handshake_on_connect=True)
tls.sendall(b"before the bogus record")
fd = socket.socket(fileno=tls.detach())  # the same TCP connection, now raw
fd.sendall(b"\x17\x03\x03\x00\x05hello")
fd.settimeout(5)
got = b""
try:
    while True:
        d = fd.recv(4096)
        if not d:
            break
        got += d
except ConnectionResetError:
    got += b"<RST>"
print(len(got), got.hex())
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "");
  ASSERT_EQ(client.code, 0) << client.err;
  EXPECT_EQ(client.out, "0 \n") << "no alert, no data: a FIN only";
  auto j = s.only_record();
  EXPECT_EQ(j["extra"]["tls.handshake"], "ok") << j.dump();
  EXPECT_EQ(j["extra"]["tls.version"], "TLSv1.3");
  EXPECT_NE(j["extra"]["tls.cipher"], "");
  EXPECT_NE(j["extra"]["tls.error"], "") << "the bad record is reported as an error after the handshake";
  EXPECT_EQ(j["payload_hex"], hex("before the bogus record"));
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, BytesAfterCloseNotifyAreKeptAndTheCloseIsAFin) {
  TlsSink s("1s");
  const std::string script = kPythonTlsClient + R"(
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
tls = ctx.wrap_socket(raw, server_hostname="notify.example")
tls.sendall(b"inside")
tls.setblocking(False)
try:
    tls.unwrap()  # sends close_notify; the sink never answers it
except ssl.SSLWantReadError:
    pass
raw = socket.socket(fileno=tls.detach())
raw.setblocking(True)
raw.sendall(b"23 bytes of plaintext!!")
raw.settimeout(5)
try:
    print("fin" if raw.recv(100) == b"" else "data")
except ConnectionResetError:
    print("rst")
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "");
  ASSERT_EQ(client.code, 0) << client.err;
  EXPECT_EQ(client.out, "fin\n");
  auto j = s.only_record();
  EXPECT_EQ(j["extra"]["tls.handshake"], "ok") << j.dump();
  EXPECT_EQ(j["extra"]["tls.trailing_bytes"], 23);
  const std::string raw = j["extra"]["tls.raw_hex"];
  EXPECT_EQ(raw.substr(raw.size() - 46), hex("23 bytes of plaintext!!"));
  EXPECT_EQ(j["payload_hex"], hex("inside"));
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, ClientControlledTextIsKeptLosslessly) {
  TlsSink s("1s");
  const std::string sni("a\xff\n,\"b\x00"
                        "c\x01",
                        9);
  std::map<std::string, uint16_t> port;
  for (const auto &[name, alpn] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"binary", {std::string("\x00\xffx", 3), "h2"}}, {"empty_entry", {"", "z"}}}) {
    Bytes hello = build_hello(0x0303, {0x1301, 0xc02f}, {sni_ext(sni), alpn_ext(alpn)});
    TestClient c("127.0.0.1", s.port);
    port[name] = c.local_port();
    c.send(std::string(hello.begin(), hello.end()));
    bool closed = false;
    c.read_until_closed(5, &closed);
  }
  auto all = s.records(2);
  auto b64 = [](const std::string &bytes) {
    static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
      uint32_t v =
          uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
      for (int sh : {18, 12, 6, 0})
        out += a[(v >> sh) & 63];
    }
    if (bytes.size() - i == 1) {
      uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
      out += std::string{a[(v >> 18) & 63], a[(v >> 12) & 63]} + "==";
    } else if (bytes.size() - i == 2) {
      uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8;
      out += std::string{a[(v >> 18) & 63], a[(v >> 12) & 63], a[(v >> 6) & 63]} + "=";
    }
    return out;
  };
  // Not UTF-8: kept as bytes, base64 in JSONL; never cut at the NUL.
  EXPECT_EQ(all[port["binary"]]["extra"]["tls.sni"], b64(sni)) << all[port["binary"]].dump();
  EXPECT_EQ(all[port["binary"]]["extra"]["tls.alpn"], b64(std::string("\x00\xffx,h2", 6)));
  EXPECT_EQ(all[port["empty_entry"]]["extra"]["tls.alpn"], ",z") << "empty ALPN entries are kept";
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, MalformedAndSslV2HellosSaySoInsteadOfAFingerprint) {
  TlsSink s("1s");
  Bytes broken = build_hello(0x0303, {0x1301, 0xc02f}, {sni_ext("x.example")});
  broken[5 + 4 + 2 + 32 + 1 + 2 + 4 + 2] = 0x7f; // extensions length past the end
  std::map<std::string, uint16_t> port;
  for (const auto &[name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"broken", std::string(broken.begin(), broken.end())}, {"sslv2", sslv2_hello()}}) {
    TestClient c("127.0.0.1", s.port);
    port[name] = c.local_port();
    c.send(bytes);
    bool closed = false;
    c.read_until_closed(5, &closed);
  }
  auto all = s.records(2);
  const auto &b = all[port["broken"]];
  EXPECT_EQ(b["extra"]["tls.hello_error"], "ClientHello extensions length runs past the end of the message")
      << b.dump();
  EXPECT_EQ(b["extra"]["tls.ja3"], "");
  EXPECT_EQ(b["extra"]["tls.ja4"], "");
  EXPECT_EQ(b["extra"]["tls.hello_format"], "tls");
  const auto &v2 = all[port["sslv2"]];
  EXPECT_EQ(v2["extra"]["tls.hello_format"], "sslv2") << v2.dump();
  EXPECT_EQ(v2["extra"]["tls.raw_hex"], hex(sslv2_hello()));
  EXPECT_EQ(v2["extra"]["tls.ja3"], "");
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, ClosedConnectionsLeaveNoDescriptorBehind) {
  TlsSink s("300ms");
  const std::string script = kPythonTlsClient + R"(
for i in range(40):
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="fd.example")
    t.sendall(b"x")
    t.close()
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "");
  ASSERT_EQ(client.code, 0) << client.err;
  s.records(40);
  std::this_thread::sleep_for(500ms);
  const std::string pid = std::to_string(s.sink->pid());
  size_t sockets = 0;
  for (const auto &line : split(run_program(s.dir, {"ls", "-l", "/proc/" + pid + "/fd"}, "").out, '\n'))
    if (line.find("socket:") != std::string::npos) ++sockets;
  EXPECT_LE(sockets, 4u) << "listener and internal sockets only, not one per closed connection";
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, AFloodAcrossTheDeadlineIsFlaggedUnreadAtClose) {
  TlsSink s("1s");
  const std::string script = kPythonTlsClient + R"(
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="flood.example")
chunk = b"x" * 16384
try:
    while True:
        t.sendall(chunk)
except OSError:
    pass
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "", 20s);
  EXPECT_EQ(client.code, 0) << client.err;
  auto j = s.only_record();
  EXPECT_EQ(j["close_reason"], "timeout");
  EXPECT_EQ(j["extra"]["unread_at_close"], true) << j.dump();
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, ARenegotiationAttemptGetsNoAnswer) {
  TlsSink s("2s");
  // s_client renegotiates on "R"; -msg shows every message it receives.
  auto client = run_program(
      s.dir,
      {"sh", "-c",
       "(sleep 0.5; echo R; sleep 1) | openssl s_client -connect " + s.target() + " -tls1_2 -msg 2>&1"},
      "", 20s);
  const std::string out = client.out;
  const auto reneg = out.find("RENEGOTIATING");
  ASSERT_NE(reneg, std::string::npos) << out;
  EXPECT_NE(out.find("<<< TLS 1.2, Handshake"), std::string::npos) << "the handshake itself was answered";
  EXPECT_EQ(out.find("<<<", reneg), std::string::npos) << "nothing after the handshake, not even an alert:\n"
                                                       << out.substr(reneg);
  auto j = s.only_record();
  EXPECT_EQ(j["extra"]["tls.handshake"], "ok");
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, BytesSentWellAfterCloseNotifyAreWaitedForAndKept) {
  TlsSink s("5s");
  // close_notify, a pause, then more bytes in a later packet: the sink waits
  // close_grace (1 s) for them instead of closing at once with a RST.
  const std::string script = kPythonTlsClient + R"(
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="late.example")
tls.sendall(b"inside")
tls.setblocking(False)
try:
    tls.unwrap()
except ssl.SSLWantReadError:
    pass
raw = socket.socket(fileno=tls.detach())
raw.setblocking(True)
time.sleep(0.2)
raw.sendall(b"x" * 100)
raw.settimeout(5)
try:
    print("fin" if raw.recv(100) == b"" else "data")
except ConnectionResetError:
    print("rst")
)";
  auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port)}, "");
  ASSERT_EQ(client.code, 0) << client.err;
  EXPECT_EQ(client.out, "fin\n");
  auto j = s.only_record();
  EXPECT_EQ(j["close_reason"], "client_fin") << j.dump();
  EXPECT_EQ(j["extra"]["tls.trailing_bytes"], 100);
  EXPECT_EQ(j["extra"]["unread_at_close"], false);
  EXPECT_LT(j["duration"].get<double>(), 1.0) << "duration ends at the client's close_notify";
  EXPECT_EQ(s.sink->stop().code, 0);
}

TEST(Tls, BrokenLengthsInsideExtensionsAndTruncatedHellosSaySo) {
  TlsSink s("1s");
  auto ext = [](uint16_t type, Bytes body) { return Ext{type, std::move(body)}; };
  std::map<std::string, uint16_t> port;
  const Bytes whole = build_hello(0x0303, {0x1301}, {});
  const std::vector<std::pair<std::string, Bytes>> hellos = {
      {"alpn", build_hello(0x0303, {0x1301}, {ext(16, {0x00, 0x05, 0x09, 0x61, 0x62})})},
      {"sni", build_hello(0x0303, {0x1301}, {ext(0, {0x00, 0x09, 0x00, 0x00, 0x20, 0x61, 0x62, 0x63})})},
      {"truncated", Bytes(whole.begin(), whole.begin() + 30)},
  };
  for (const auto &[name, bytes] : hellos) {
    TestClient c("127.0.0.1", s.port);
    port[name] = c.local_port();
    c.send(std::string(bytes.begin(), bytes.end()));
    c.close();
  }
  auto all = s.records(3);
  EXPECT_EQ(all[port["alpn"]]["extra"]["tls.hello_error"],
            "a length inside the ALPN extension runs past its end");
  EXPECT_EQ(all[port["sni"]]["extra"]["tls.hello_error"],
            "a length inside the server_name extension runs past its end");
  EXPECT_EQ(all[port["truncated"]]["extra"]["tls.hello_error"],
            "ClientHello incomplete: the connection ended after 30 bytes");
  EXPECT_EQ(all[port["truncated"]]["extra"]["tls.hello_format"], "tls");
  for (const auto &[p, j] : all)
    EXPECT_EQ(j["extra"]["tls.ja3"], "") << j.dump();
  EXPECT_EQ(s.sink->stop().code, 0);
}

// Five bytes (an empty handshake record) before a real client's hello:
// OpenSSL skips the empty record and completes the handshake, so the
// fingerprint must be the one the same client gets without them.
TEST(Tls, AnEmptyRecordBeforeTheHelloDoesNotHideTheFingerprint) {
  TlsSink s("1s");
  const std::string script = kPythonTlsClient + R"(
prefix = bytes.fromhex(sys.argv[2])
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="empty.example")
first = True
while True:
    try:
        tls.do_handshake()
        done = True
    except ssl.SSLWantReadError:
        done = False
    data = out.read()
    if data:
        raw.sendall((prefix if first else b"") + data)
        first = False
    if done:
        break
    got = raw.recv(65536)
    if not got:
        sys.exit("closed during the handshake")
    inc.write(got)
tls.write(b"after empty record")
raw.sendall(out.read())
print(raw.getsockname()[1], tls.version())
raw.close()
)";
  std::map<std::string, uint16_t> port;
  for (const std::string prefix : {"", "1603010000"}) {
    auto client = run_program(s.dir, {"python3", "-c", script, std::to_string(s.port), prefix}, "");
    ASSERT_EQ(client.code, 0) << client.err;
    const auto words = split(client.out, ' ');
    ASSERT_EQ(words.size(), 2u) << client.out;
    EXPECT_EQ(words[1], "TLSv1.3\n") << "the handshake completed with prefix '" << prefix << "'";
    port[prefix] = static_cast<uint16_t>(std::stoi(words[0]));
  }
  auto all = s.records(2);
  ASSERT_EQ(all.size(), 2u);
  const auto &plain = all[port[""]];
  const auto &prefixed = all[port["1603010000"]];
  for (const auto *j : {&plain, &prefixed})
    expect_ok_handshake(*j, "TLSv1.3", "after empty record");
  EXPECT_EQ(prefixed["extra"].value("tls.hello_error", ""), "") << prefixed.dump();
  EXPECT_EQ(prefixed["extra"]["tls.ja3"], plain["extra"]["tls.ja3"]);
  EXPECT_EQ(prefixed["extra"]["tls.ja4"], plain["extra"]["tls.ja4"]);
  EXPECT_EQ(prefixed["extra"]["tls.sni"], "empty.example");
  EXPECT_EQ(s.sink->stop().code, 0);
}
