#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "Record.h"

namespace {
struct Fixture {
  std::string group = "g";
  sink::Record r;
  Fixture() { r.group = &group; }
};
} // namespace

TEST(ExtraCollector, KeepsDeclaredTypesAndTheirOnePointZeroText) {
  Fixture f;
  sink::ExtraCollector c(f.r, false);
  const sink_extra_writer *w = c.writer();
  EXPECT_EQ(w->struct_size, sizeof(sink_extra_writer));
  EXPECT_EQ(w->set_wire, nullptr) << "analyzers may not set the wire bytes";
  w->add(w->ctx, "legacy", "a\\b");
  sink_add_string(w, "nul", "x\0y", 3);
  sink_add_bytes(w, "bytes", "\x00\xff", 2);
  sink_add_string(w, "not_utf8", "\xff", 1);
  sink_add_bool(w, "flag", 7);
  sink_add_int(w, "n", -5);
  sink_add_float(w, "f", 2.5);
  ASSERT_EQ(f.r.extras.size(), 7u);
  const auto &e = f.r.extras;
  EXPECT_EQ(e[0].type, SINK_VALUE_STRING);
  EXPECT_EQ(e[0].text, "a\\x5cb");
  EXPECT_EQ(e[1].bytes, std::string("x\0y", 3));
  EXPECT_EQ(e[1].text, "x\\x00y");
  EXPECT_EQ(e[2].type, SINK_VALUE_BYTES);
  EXPECT_EQ(e[2].text, "\\x00\\xff");
  EXPECT_EQ(e[3].type, SINK_VALUE_BYTES) << "text that is not UTF-8 is kept as bytes";
  EXPECT_EQ(e[4].type, SINK_VALUE_BOOL);
  EXPECT_EQ(e[4].integer, 1);
  EXPECT_EQ(e[4].text, "true");
  EXPECT_EQ(e[5].integer, -5);
  EXPECT_EQ(e[5].text, "-5");
  EXPECT_EQ(e[6].number, 2.5);
  EXPECT_EQ(e[6].text, "2.5");
}

TEST(ExtraCollector, IgnoresMalformedCalls) {
  Fixture f;
  sink::ExtraCollector c(f.r, true);
  const sink_extra_writer *w = c.writer();
  int32_t small = 1;
  w->add_typed(w->ctx, "short_int", SINK_VALUE_INT, &small, sizeof small);
  w->add_typed(w->ctx, nullptr, SINK_VALUE_STRING, "x", 1);
  w->add_typed(w->ctx, "bad_type", static_cast<sink_value_type>(99), "x", 1);
  w->add_typed(w->ctx, "null_value", SINK_VALUE_BYTES, nullptr, 4);
  sink_add_float(w, "nan", std::numeric_limits<double>::quiet_NaN());
  sink_add_float(w, "inf", std::numeric_limits<double>::infinity());
  w->add(w->ctx, "null_text", nullptr);
  EXPECT_TRUE(f.r.extras.empty());
  w->add_typed(w->ctx, "empty", SINK_VALUE_BYTES, nullptr, 0);
  EXPECT_EQ(f.r.extras.size(), 1u);
}

TEST(ExtraCollector, TransportsSetTheWireBytes) {
  Fixture f;
  sink::ExtraCollector c(f.r, true);
  const uint8_t wire[] = {0x16, 0x03, 0x01};
  c.writer()->set_wire(c.writer()->ctx, wire, sizeof wire, 517);
  EXPECT_EQ(f.r.wire, std::vector<uint8_t>(wire, wire + 3));
  EXPECT_EQ(f.r.first_read_len, 517u);
}

TEST(RecordView, BothExtrasArraysDescribeTheSameExtras) {
  Fixture f;
  sink::ExtraCollector c(f.r, false);
  sink_add_int(c.writer(), "n", 3);
  sink_add_bytes(c.writer(), "b", "\x01", 1);
  f.r.listen_port = 12345;
  f.r.id = {'x', '\0'};
  sink::RecordView v(f.r);
  const sink_record &r = v.get();
  EXPECT_EQ(r.struct_size, sizeof(sink_record));
  ASSERT_EQ(r.extras_count, 2u);
  ASSERT_EQ(r.values_count, 2u);
  EXPECT_EQ(r.value_size, sizeof(sink_value_extra));
  EXPECT_STREQ(r.extras[1].key, "b");
  EXPECT_STREQ(r.extras[1].value, "\\x01");
  EXPECT_EQ(sink_record_value(&r, 1)->type, SINK_VALUE_BYTES);
  EXPECT_EQ(sink_record_value(&r, 0)->integer, 3);
  EXPECT_EQ(r.listen_port, 12345);
  EXPECT_STREQ(r.id, "x");
  EXPECT_STREQ(r.sensor, "");
  EXPECT_EQ(r.wire, nullptr);
}

TEST(ExtraCollector, AKeyIsNeverReplaced) {
  Fixture f;
  sink::ExtraCollector c(f.r, false);
  sink_add_bool(c.writer(), "unread_at_close", 0);
  sink_add_bool(c.writer(), "unread_at_close", 1);
  c.writer()->add(c.writer()->ctx, "unread_at_close", "true");
  ASSERT_EQ(f.r.extras.size(), 1u);
  EXPECT_EQ(f.r.extras[0].integer, 0);
}
