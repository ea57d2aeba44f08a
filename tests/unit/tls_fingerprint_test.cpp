// ClientHello parsing and JA3/JA4 against vectors computed independently:
// the JA4 specification's own example, and ClientHellos captured from
// openssl s_client whose fingerprints tests/tools/tls_fingerprint.py (a
// separate implementation) produced.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "ClientHello.h"
#include "ClientHelloBuilder.h"
#include "Fingerprint.h"

using sink::tls::ClientHello;
using sink::tls::ClientHelloReader;
using namespace sinktest;

namespace {

Bytes from_hex(const std::string &hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

Bytes read_vector(const std::string &name) {
  std::ifstream in(std::string(SINK_SOURCE_DIR) + "/tests/data/" + name);
  std::string hex;
  in >> hex;
  return from_hex(hex);
}

ClientHello parse_all(const Bytes &wire, size_t chunk = 1) {
  ClientHelloReader r;
  for (size_t off = 0; off < wire.size(); off += chunk)
    r.feed(wire.data() + off, std::min(chunk, wire.size() - off));
  EXPECT_EQ(r.state(), ClientHelloReader::State::kDone);
  return r.hello().value_or(ClientHello{});
}

// The JA4 specification's example hello, with GREASE sprinkled in.
Bytes spec_example_hello(bool with_sigs, size_t record_size = 16384) {
  const std::vector<uint16_t> ciphers{0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030,
                                      0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035};
  std::vector<Ext> exts{{0x2a2a, {}}};
  for (uint16_t t : {0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
                     0x002b, 0xff01, 0x000b, 0x000a, 0x0015}) {
    if (t == 0x0000)
      exts.push_back(sni_ext("example.org"));
    else if (t == 0x0010)
      exts.push_back(alpn_ext({"h2", "http/1.1"}));
    else if (t == 0x000d)
      exts.push_back({t, with_sigs
                             ? u16_vector({0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601})
                             : u16_vector({})});
    else if (t == 0x002b)
      exts.push_back({t, u16_vector({0x3a3a, 0x0304, 0x0303}, true)});
    else if (t == 0x000a)
      exts.push_back({t, u16_vector({0x4a4a, 0x001d, 0x0017, 0x0018})});
    else
      exts.push_back({t, {}});
  }
  return build_hello(0x0303, ciphers, exts, record_size);
}

} // namespace

TEST(Grease, RecognisesAllSixteenValues) {
  for (uint16_t hi = 0; hi < 16; ++hi)
    EXPECT_TRUE(sink::tls::is_grease(static_cast<uint16_t>((hi << 12) | 0x0a00 | (hi << 4) | 0x0a)));
  EXPECT_FALSE(sink::tls::is_grease(0x0a1a));
  EXPECT_FALSE(sink::tls::is_grease(0x1301));
}

TEST(Ja4, MatchesTheSpecificationExample) {
  auto h = parse_all(spec_example_hello(true));
  EXPECT_EQ(sink::tls::ja4_cipher_hash(h), "8daaf6152771");
  EXPECT_EQ(sink::tls::ja4_extension_hash(h), "e5627efa2ab1");
  EXPECT_EQ(sink::tls::ja4(h), "t13d1516h2_8daaf6152771_e5627efa2ab1");
  EXPECT_EQ(h.sni, "example.org");
  EXPECT_EQ(h.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
}

TEST(Ja4, WithoutSignatureAlgorithmsTheStringHasNoUnderscore) {
  auto h = parse_all(spec_example_hello(false));
  EXPECT_EQ(sink::tls::ja4_extension_hash(h), "6d807ffa2a79");
}

TEST(Ja4, HelloSplitAcrossRecordsParsesTheSame) {
  EXPECT_EQ(sink::tls::ja4(parse_all(spec_example_hello(true, 50), 7)),
            "t13d1516h2_8daaf6152771_e5627efa2ab1");
}

TEST(Ja4, AlpnAndEmptyListRules) {
  auto h = parse_all(build_hello(0x0301, {}, {alpn_ext({"\xab\xcd"})}));
  EXPECT_EQ(sink::tls::ja4(h), "t10i0001ad_000000000000_000000000000");
  auto one = parse_all(build_hello(0x0303, {0x002f}, {alpn_ext({"h"}), sni_ext("x")}));
  EXPECT_EQ(sink::tls::ja4(one).substr(0, 10), "t12d0102hh");
  auto ssl3 = parse_all(build_hello(0x0300, {0x002f}, {}));
  EXPECT_EQ(sink::tls::ja4(ssl3).substr(0, 10), "ts3i010000");
}

TEST(Ja3, DropsGreaseKeepsOrder) {
  auto h = parse_all(spec_example_hello(true));
  EXPECT_EQ(sink::tls::ja3_string(h),
            "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
            "27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,");
}

TEST(CapturedVectors, OpensslTls13) {
  auto h = parse_all(read_vector("clienthello-openssl-tls13.hex"), 100);
  EXPECT_EQ(
      sink::tls::ja3_string(h),
      "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-"
      "103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-16-22-23-13-43-45-51,29-23-30-"
      "25-24-256-257-258-259-260,0-1-2");
  EXPECT_EQ(sink::tls::md5_hex(sink::tls::ja3_string(h)), "5a1edc7f170af1014fc65c994878e63c");
  EXPECT_EQ(sink::tls::ja4(h), "t13d3111h2_e8f1e7e78f70_1f22a2ca17c4");
  EXPECT_EQ(h.sni, "sink.example");
}

TEST(CapturedVectors, OpensslTls12) {
  auto h = parse_all(read_vector("clienthello-openssl-tls12.hex"));
  EXPECT_EQ(sink::tls::ja3_string(h), "771,49199-47-255,11-10-35-22-23-13,29-23-30-25-24,0-1-2");
  EXPECT_EQ(sink::tls::md5_hex(sink::tls::ja3_string(h)), "533647637b95e0b3c5a99d21785b9ff0");
  EXPECT_EQ(sink::tls::ja4(h), "t12i030600_78ff622567f0_e7e480e5a997");
}

TEST(ClientHelloReader, TellsNonTlsFromIncomplete) {
  const std::string http = "GET / HTTP/1.1\r\n";
  ClientHelloReader a;
  EXPECT_EQ(a.feed(reinterpret_cast<const uint8_t *>(http.data()), http.size()),
            ClientHelloReader::State::kNotTls);
  const Bytes sslv2{0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
  ClientHelloReader b;
  EXPECT_EQ(b.feed(sslv2.data(), sslv2.size()), ClientHelloReader::State::kSslV2);
  EXPECT_STREQ(b.format(), "sslv2");
  EXPECT_NE(b.error().find("SSLv2-compatible"), std::string::npos);
  EXPECT_STREQ(a.format(), "");
  EXPECT_EQ(a.error(), "not a TLS handshake record");
  Bytes hello = spec_example_hello(true);
  ClientHelloReader c;
  EXPECT_EQ(c.feed(hello.data(), 20), ClientHelloReader::State::kNeedMore);
  EXPECT_FALSE(c.hello());
  Bytes bad = hello;
  bad[5] = 2; // a ServerHello is not a ClientHello
  ClientHelloReader d;
  EXPECT_EQ(d.feed(bad.data(), bad.size()), ClientHelloReader::State::kMalformed);
  EXPECT_EQ(d.error(), "first handshake message has type 2, not ClientHello");
}

TEST(ClientHelloReader, HundredsOfExtensions) {
  std::vector<Ext> exts;
  for (uint16_t i = 0; i < 600; ++i)
    exts.push_back({static_cast<uint16_t>(0x1000 + i), {1, 2}});
  auto h = parse_all(build_hello(0x0303, {0x1301}, exts), 4096);
  EXPECT_EQ(h.extensions.size(), 600u);
  EXPECT_EQ(sink::tls::ja4(h).substr(0, 10), "t12i019900");
}

TEST(ClientHelloReader, ExtensionsLengthPastTheEndIsAnErrorNotZeroExtensions) {
  // A valid hello whose extensions length claims more than the message holds.
  Bytes hello = build_hello(0x0303, {0x1301, 0xc02f}, {sni_ext("x.example")});
  // record(5) + handshake header(4) + version(2) + random(32) + sid(1) + ciphers(2+4) + comp(2)
  const size_t ext_len_at = 5 + 4 + 2 + 32 + 1 + 2 + 4 + 2;
  hello[ext_len_at] = 0x7f; // extensions length far beyond the message
  ClientHelloReader r;
  EXPECT_EQ(r.feed(hello.data(), hello.size()), ClientHelloReader::State::kMalformed);
  EXPECT_FALSE(r.hello()) << "no fingerprint of something the client never sent";
  EXPECT_EQ(r.error(), "ClientHello extensions length runs past the end of the message");
  EXPECT_STREQ(r.format(), "tls");
}

namespace {
const Bytes kEmptyHandshakeRecord{0x16, 0x03, 0x01, 0x00, 0x00};

Bytes with_empty_records_before(const Bytes &hello, size_t count) {
  Bytes out;
  for (size_t i = 0; i < count; ++i)
    out.insert(out.end(), kEmptyHandshakeRecord.begin(), kEmptyHandshakeRecord.end());
  out.insert(out.end(), hello.begin(), hello.end());
  return out;
}
} // namespace

TEST(ClientHelloReader, EmptyRecordsBeforeTheHelloAreSkippedLikeOpensslDoes) {
  const Bytes hello = read_vector("clienthello-openssl-tls13.hex");
  const auto plain = parse_all(hello, 100);
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{4096}}) {
    const auto h = parse_all(with_empty_records_before(hello, 1), chunk);
    EXPECT_EQ(sink::tls::ja3_string(h), sink::tls::ja3_string(plain)) << "chunk " << chunk;
    EXPECT_EQ(sink::tls::ja4(h), "t13d3111h2_e8f1e7e78f70_1f22a2ca17c4") << "chunk " << chunk;
  }
  const auto most = parse_all(with_empty_records_before(hello, ClientHelloReader::kMaxEmptyRecordsInARow));
  EXPECT_EQ(sink::tls::ja4(most), sink::tls::ja4(plain));
}

TEST(ClientHelloReader, EmptyRecordsBetweenFragmentsAreSkipped) {
  // The hello in 50-byte records with an empty record after each.
  const Bytes split = spec_example_hello(true, 50);
  Bytes interleaved;
  for (size_t off = 0; off < split.size();) {
    size_t len = static_cast<size_t>(split[off + 3] << 8 | split[off + 4]);
    interleaved.insert(interleaved.end(), split.begin() + off, split.begin() + off + 5 + len);
    interleaved.insert(interleaved.end(), kEmptyHandshakeRecord.begin(), kEmptyHandshakeRecord.end());
    off += 5 + len;
  }
  EXPECT_EQ(sink::tls::ja4(parse_all(interleaved, 7)), "t13d1516h2_8daaf6152771_e5627efa2ab1");
}

TEST(ClientHelloReader, MoreEmptyRecordsInARowThanOpensslAllowsAreMalformed) {
  const Bytes wire =
      with_empty_records_before(spec_example_hello(true), ClientHelloReader::kMaxEmptyRecordsInARow + 1);
  ClientHelloReader r;
  EXPECT_EQ(r.feed(wire.data(), wire.size()), ClientHelloReader::State::kMalformed);
  EXPECT_EQ(r.error(), "more than 32 empty TLS records in a row");
}
