#include <gtest/gtest.h>

#include "GoText.h"

namespace {
std::string q(const std::string &s) {
  return sink::go_quote(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}
} // namespace

TEST(GoQuote, MatchesStrconvQuote) {
  EXPECT_EQ(q("hello\nworld, \"x\""), R"("hello\nworld, \"x\"")");
  EXPECT_EQ(q(""), R"("")");
  EXPECT_EQ(q("a\\b"), R"("a\\b")");
  EXPECT_EQ(q(std::string("\x00\x01\x7f", 3)), R"("\x00\x01\x7f")");
  EXPECT_EQ(q("\a\b\f\r\t\v"), R"("\a\b\f\r\t\v")");
  EXPECT_EQ(q("\xff\xfe"), R"("\xff\xfe")");
  EXPECT_EQ(q("h\xc3\xa9llo"), "\"h\xc3\xa9llo\"");         // valid UTF-8 stays
  EXPECT_EQ(q("\xc2\x85"), R"("\u0085")");                  // C1 control
  EXPECT_EQ(q("\xef\xbb\xbf"), R"("\ufeff")");              // BOM
  EXPECT_EQ(q("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\""); // emoji printable
  EXPECT_EQ(q("\xe2\x82"), R"("\xe2\x82")");                // truncated rune
  EXPECT_EQ(q("GET / HTTP/1.1\r\n"), R"("GET / HTTP/1.1\r\n")");
}

TEST(GoFloat, MatchesPercentV) {
  EXPECT_EQ(sink::go_float(0.000571), "0.000571");
  EXPECT_EQ(sink::go_float(1.000191334), "1.000191334");
  EXPECT_EQ(sink::go_float(8.8579e-05), "8.8579e-05");
  EXPECT_EQ(sink::go_float(2.0), "2");
  EXPECT_EQ(sink::go_float(0.0), "0");
  EXPECT_EQ(sink::go_float(0.0001), "0.0001");
}
