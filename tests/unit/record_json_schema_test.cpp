// What the collector accepts from a stream: every field of a JSONL line is
// checked against the schema; a line that breaks it is refused whole.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "RecordFormat.h"
#include "RecordJson.h"

namespace {

nlohmann::ordered_json valid_line() {
  return nlohmann::ordered_json::parse(R"({"schema_version":2,"ts":"2023-11-14T22:13:20.000Z",
    "ts_ms":1700000000000,"ts_ns":1700000000000000000,"id":"0190a0b0-0000-7000-8000-000000000001",
    "sensor":"vp-a","group":"edge","transport":"tcp","local_ip":"127.0.0.1","local_port":8080,
    "listen_port":8080,"remote_ip":"::1","remote_port":40000,"payload_hex":"6869","payload_len":2,
    "captured_len":2,"truncated":false,"duration":0.5,"duration_ns":500000000,"close_reason":"client_fin",
    "close_detail":"","first_read_len":2,"extra":{"k.str":"v"}})");
}

std::string why_refused(const nlohmann::ordered_json &line) {
  sink::OwnedTextRecord r;
  std::string why;
  EXPECT_FALSE(sink::record_from_jsonl(line.dump(), r, &why)) << line.dump();
  return why;
}

TEST(RecordJsonSchema, AValidLineIsTakenAndOwnsItsNames) {
  sink::OwnedTextRecord r;
  std::string why;
  ASSERT_TRUE(sink::record_from_jsonl(valid_line().dump(), r, &why)) << why;
  EXPECT_EQ(r.group, &r.group_text);
  EXPECT_EQ(*r.group, "edge");
  EXPECT_EQ(r.sensor, r.sensor_text.c_str());
  EXPECT_EQ(r.local.port, 8080);
  EXPECT_EQ(r.total_bytes, 2u);
}

TEST(RecordJsonSchema, RangesTypesAndSizesAreChecked) {
  auto with = [](const char *key, nlohmann::ordered_json v) {
    auto l = valid_line();
    l[key] = std::move(v);
    return l;
  };
  EXPECT_EQ(why_refused(with("local_port", 70000)), "local_port is 70000, outside 0..65535");
  EXPECT_EQ(why_refused(with("remote_port", -1)), "remote_port is -1, outside 0..65535");
  EXPECT_EQ(why_refused(with("listen_port", "80")), "listen_port is not a whole number");
  EXPECT_EQ(why_refused(with("payload_len", -5)), "payload_len is not a whole number >= 0");
  EXPECT_EQ(why_refused(with("payload_len", 1)), "payload_len is less than the bytes in payload_hex");
  // Beyond what a sensor can count: a store's bigint would clamp it silently.
  auto huge = with("payload_len", 18446744073709551615u);
  huge["truncated"] = true;
  EXPECT_EQ(why_refused(huge), "payload_len is 18446744073709551615, more than 9223372036854775807");
  // One read(2) returns less than 2 GiB; the store keeps it in an integer.
  EXPECT_EQ(why_refused(with("first_read_len", 4294967296u)),
            "first_read_len is 4294967296, more than 2147483647");
  EXPECT_EQ(why_refused(with("captured_len", 3)), "captured_len is not the number of bytes in payload_hex");
  EXPECT_EQ(why_refused(with("close_detail", std::string("a\0b", 3))), "close_detail holds a NUL byte");
  EXPECT_EQ(why_refused(with("group", std::string(1025, 'g'))), "group has 1025 bytes, more than 1024");
  EXPECT_EQ(why_refused(with("sensor", std::string(254, 's'))), "sensor has 254 bytes, more than 253");
  EXPECT_EQ(why_refused(with("remote_ip", "not-an-ip")), "remote_ip is not an IP address");
  EXPECT_EQ(why_refused(with("id", "0190a0b0-0000-7000-8000-00000000000z")), "id is not a 36-character UUID");
  EXPECT_EQ(why_refused(with("duration_ns", -1)), "duration_ns is -1, outside 0..9223372036854775807");
  EXPECT_EQ(why_refused(with("close_reason", "gone")), "close_reason \"gone\" is not a known reason");
  EXPECT_EQ(why_refused(with("colour", "blue")), "unknown field \"colour\"");
  EXPECT_EQ(why_refused(with("extra", nlohmann::ordered_json::array())), "extra is not an object");
  auto l = valid_line();
  l.erase("group");
  EXPECT_EQ(why_refused(l), "group is missing");
}

TEST(RecordJsonSchema, ExtrasWithoutATypedFormAreCarriedAsTheirJsonText) {
  auto l = valid_line();
  l["extra"] = nlohmann::ordered_json::parse(R"({"a":[1,"two",null],"o":{"b":{}},"n":null,
    "big":18446744073709551615,"i":-3,"f":0.5,"t":true,"s":"x\u0000y"})");
  sink::OwnedTextRecord r;
  std::string why;
  ASSERT_TRUE(sink::record_from_jsonl(l.dump(), r, &why)) << why;
  const auto back = nlohmann::ordered_json::parse(sink::format::jsonl_line(sink::RecordView(r).get()));
  EXPECT_EQ(back["extra"].dump(),
            R"({"a":"[1,\"two\",null]","o":"{\"b\":{}}","n":"null","big":"18446744073709551615","i":-3,)"
            R"("f":0.5,"t":true,"s":"x\u0000y"})");
}

} // namespace
