#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "RecordFormat.h"

namespace {

struct RecordFixture {
  std::vector<uint8_t> payload{'a', ',', '"', '\n', 0x00, 0xff};
  sink_extra extras[2] = {{"tls.sni", "example.org"}, {"tls.alpn", "h2,http/1.1"}};
  sink_record r{};
  RecordFixture() {
    r.struct_size = sizeof r;
    r.accept_unix_ns = 1700000000123456789LL;
    r.duration_ns = 1000191334;
    r.group = "web";
    r.transport = "tcp";
    r.local_ip = "127.0.0.1";
    r.local_port = 23010;  // dialed
    r.listen_port = 12345; // accepted on, after a firewall redirect
    r.remote_ip = "::1";
    r.remote_port = 39772;
    r.payload = payload.data();
    r.captured_len = payload.size();
    r.total_bytes = 9000;
    r.close_reason = SINK_CLOSE_TIMEOUT;
    r.close_detail = "i/o timeout";
    r.extras = extras;
    r.extras_count = 2;
  }
};

} // namespace

TEST(CsvFormat, HeaderIsTheOriginals) {
  EXPECT_EQ(sink::format::csv_header(),
            "ts,localIP,localPort,remoteIP,remotePort,truncatedPayload,len,duration\n");
}

TEST(CsvFormat, RowMatchesTheOriginalByteForByte) {
  RecordFixture f;
  EXPECT_EQ(sink::format::csv_row(f.r), "1700000000123,127.0.0.1,23010,::1,39772,612c220a00ff,9000,1.000\n");
}

TEST(CsvFormat, EmptyPayloadAndRounding) {
  RecordFixture f;
  f.r.captured_len = 0;
  f.r.total_bytes = 0;
  f.r.duration_ns = 571000; // 0.000571 s
  EXPECT_EQ(sink::format::csv_row(f.r), "1700000000123,127.0.0.1,23010,::1,39772,,0,0.001\n");
  f.r.duration_ns = 1999600000;
  EXPECT_EQ(sink::format::csv_row(f.r), "1700000000123,127.0.0.1,23010,::1,39772,,0,2.000\n");
}

TEST(CsvFormat, QuotesLikeGoEncodingCsv) {
  EXPECT_EQ(sink::format::csv_field("plain"), "plain");
  EXPECT_EQ(sink::format::csv_field(""), "");
  EXPECT_EQ(sink::format::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(sink::format::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(sink::format::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(sink::format::csv_field("cr\r"), "\"cr\r\"");
  EXPECT_EQ(sink::format::csv_field(" lead"), "\" lead\"");
  EXPECT_EQ(sink::format::csv_field("\\."), "\"\\.\"");
}

TEST(CsvFormat, HexCoversEveryByte) {
  std::vector<uint8_t> all(256);
  std::string expected;
  for (int i = 0; i < 256; ++i) {
    all[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
    char b[3];
    std::snprintf(b, sizeof b, "%02x", i);
    expected += b;
  }
  EXPECT_EQ(sink::text::hex(all.data(), all.size()), expected);
}

TEST(JsonlFormat, HasExactlyTheDocumentedKeysInOrder) {
  RecordFixture f;
  std::string line = sink::format::jsonl_line(f.r);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto j = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it)
    keys.push_back(it.key());
  EXPECT_EQ(
      keys,
      (std::vector<std::string>{
          "schema_version", "ts",           "ts_ms",        "ts_ns",          "id",          "sensor",
          "group",          "transport",    "local_ip",     "local_port",     "listen_port", "remote_ip",
          "remote_port",    "payload_hex",  "payload_len",  "captured_len",   "truncated",   "duration",
          "duration_ns",    "close_reason", "close_detail", "first_read_len", "extra"}));
  EXPECT_EQ(j["ts_ns"], 1700000000123456789LL);
  EXPECT_EQ(j["ts"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["ts_ms"], 1700000000123LL);
  EXPECT_EQ(j["group"], "web");
  EXPECT_EQ(j["transport"], "tcp");
  EXPECT_EQ(j["local_ip"], "127.0.0.1");
  EXPECT_EQ(j["local_port"], 23010);
  EXPECT_EQ(j["listen_port"], 12345);
  EXPECT_EQ(j["remote_ip"], "::1");
  EXPECT_EQ(j["remote_port"], 39772);
  EXPECT_EQ(j["payload_hex"], "612c220a00ff");
  EXPECT_EQ(j["payload_len"], 9000);
  EXPECT_EQ(j["captured_len"], 6);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 1.000191334);
  EXPECT_EQ(j["close_reason"], "timeout");
  EXPECT_EQ(j["close_detail"], "i/o timeout");
  EXPECT_EQ(j["extra"], (nlohmann::ordered_json{{"tls.sni", "example.org"}, {"tls.alpn", "h2,http/1.1"}}));
}

TEST(JsonlFormat, NotTruncatedWhenEverythingCaptured) {
  RecordFixture f;
  f.r.total_bytes = f.r.captured_len;
  f.r.extras_count = 0;
  auto j = nlohmann::json::parse(sink::format::jsonl_line(f.r));
  EXPECT_EQ(j["truncated"], false);
  EXPECT_TRUE(j["extra"].is_object());
  EXPECT_TRUE(j["extra"].empty());
}

TEST(JsonlFormat, InvalidUtf8FromPeersNeverThrows) {
  RecordFixture f;
  sink_extra bad[1] = {{"tls.sni", "\xff\xfe"}};
  f.r.extras = bad;
  f.r.extras_count = 1;
  std::string line;
  EXPECT_NO_THROW(line = sink::format::jsonl_line(f.r));
  EXPECT_TRUE(nlohmann::json::accept(line));
}

TEST(JsonlFormat, CloseReasonNames) {
  RecordFixture f;
  const char *names[] = {"client_fin", "client_rst", "timeout", "idle_timeout", "shutdown", "error"};
  for (int i = 0; i < 6; ++i) {
    f.r.close_reason = static_cast<sink_close_reason>(i);
    EXPECT_EQ(nlohmann::json::parse(sink::format::jsonl_line(f.r))["close_reason"], names[i]);
  }
}

TEST(JsonlFormat, ARecordWithoutListenPortShowsTheLocalPort) {
  RecordFixture f;
  f.r.struct_size = offsetof(sink_record, listen_port); // an ABI 1.0 host's record
  auto j = nlohmann::json::parse(sink::format::jsonl_line(f.r));
  EXPECT_EQ(j["listen_port"], 23010);
  EXPECT_EQ(j["extra"]["tls.sni"], "example.org");
}

TEST(JsonlFormat, DurationsArePlainDecimalSeconds) {
  RecordFixture f;
  for (const auto &[ns, text] : std::vector<std::pair<int64_t, std::string>>{{55533, "0.000055533"},
                                                                             {1500000000, "1.5"},
                                                                             {0, "0"},
                                                                             {1000191334, "1.000191334"},
                                                                             {7, "0.000000007"}}) {
    f.r.duration_ns = ns;
    const std::string line = sink::format::jsonl_line(f.r);
    EXPECT_NE(line.find("\"duration\":" + text + ","), std::string::npos) << line;
    EXPECT_DOUBLE_EQ(nlohmann::json::parse(line)["duration"].get<double>(), static_cast<double>(ns) / 1e9);
  }
}

TEST(CsvFormat, ChosenColumnsIncludingExtras) {
  RecordFixture f;
  std::vector<sink::format::CsvColumn> cols{{"group"},        {"remotePort"},    {"close_reason"},
                                            {"close_detail"}, {"extra:tls.sni"}, {"extra:missing"},
                                            {"len"}};
  EXPECT_EQ(sink::format::csv_header(cols),
            "group,remotePort,close_reason,close_detail,extra:tls.sni,extra:missing,len\n");
  EXPECT_EQ(sink::format::csv_row(f.r, cols), "web,39772,timeout,i/o timeout,example.org,,9000\n");
  std::string why;
  EXPECT_FALSE(sink::format::valid_csv_column("nope", &why));
  EXPECT_NE(why.find("unknown column \"nope\""), std::string::npos);
  EXPECT_TRUE(sink::format::valid_csv_column("extra:tls.ja3", &why));
}

namespace {
sink_value_extra typed(const char *key, sink_value_type type, const void *bytes, size_t len, int64_t i = 0,
                       double d = 0) {
  sink_value_extra v{};
  v.struct_size = sizeof v;
  v.key = key;
  v.type = type;
  v.bytes = static_cast<const uint8_t *>(bytes);
  v.len = len;
  v.integer = i;
  v.number = d;
  return v;
}
} // namespace

TEST(ExtrasJsonb, TypedExtrasKeepTheirTypesAndNulStringsBecomeBase64) {
  RecordFixture f;
  const char nul_string[] = {'a', '\0', 'b'};
  const uint8_t raw[] = {0x00, 0xff, 0x10};
  sink_value_extra values[] = {
      typed("tls.sni", SINK_VALUE_STRING, "example.org", 11),
      typed("odd", SINK_VALUE_STRING, nul_string, 3),
      typed("raw", SINK_VALUE_BYTES, raw, 3),
      typed("ok", SINK_VALUE_BOOL, nullptr, 0, 1),
      typed("n", SINK_VALUE_INT, nullptr, 0, -42),
      typed("x", SINK_VALUE_FLOAT, nullptr, 0, 0, 0.5),
      typed("ctl", SINK_VALUE_STRING, "tab\there \"q\" \\", 14),
  };
  f.r.values = values;
  f.r.values_count = std::size(values);
  f.r.value_size = sizeof(sink_value_extra);
  const std::string text = sink::format::extras_jsonb(f.r);
  EXPECT_EQ(text,
            "{\"tls.sni\":\"example.org\",\"odd\":\"YQBi\",\"raw\":\"AP8Q\",\"ok\":true,\"n\":-42,\"x\":0.5,"
            "\"ctl\":\"tab\\there \\\"q\\\" \\\\\"}");
  EXPECT_EQ(text.find("\\u0000"), std::string::npos);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  // JSONL keeps such a string as a string (JSON can hold \u0000).
  auto j = nlohmann::json::parse(sink::format::jsonl_line(f.r));
  EXPECT_EQ(j["extra"]["odd"], std::string("a\0b", 3));
}

TEST(ExtrasJsonb, Abi10TextExtrasAndInvalidUtf8) {
  RecordFixture f;
  EXPECT_EQ(sink::format::extras_jsonb(f.r), "{\"tls.sni\":\"example.org\",\"tls.alpn\":\"h2,http/1.1\"}");
  sink_extra bad[1] = {{"tls.sni", "a\xff"}};
  f.r.extras = bad;
  f.r.extras_count = 1;
  f.r.struct_size = offsetof(sink_record, listen_port); // an ABI 1.0 host's record
  EXPECT_EQ(sink::format::extras_jsonb(f.r), "{\"tls.sni\":\"a\xef\xbf\xbd\"}");
  f.r.extras_count = 0;
  EXPECT_EQ(sink::format::extras_jsonb(f.r), "{}");
}
