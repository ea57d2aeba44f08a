#include <gtest/gtest.h>

#include "Duration.h"

using namespace std::chrono_literals;
using sink::format_go_duration;
using sink::parse_go_duration;

TEST(GoDuration, ParsesGoSyntax) {
  EXPECT_EQ(parse_go_duration("5s", nullptr), 5s);
  EXPECT_EQ(parse_go_duration("1m0s", nullptr), 60s);
  EXPECT_EQ(parse_go_duration("1m30s", nullptr), 90s);
  EXPECT_EQ(parse_go_duration("500ms", nullptr), 500ms);
  EXPECT_EQ(parse_go_duration("1h", nullptr), 1h);
  EXPECT_EQ(parse_go_duration("1.5s", nullptr), 1500ms);
  EXPECT_EQ(parse_go_duration("0", nullptr), 0s);
  EXPECT_EQ(parse_go_duration("0s", nullptr), 0s);
  EXPECT_EQ(parse_go_duration("2h45m", nullptr), 165min);
  EXPECT_EQ(parse_go_duration("300us", nullptr), 300us);
  EXPECT_EQ(parse_go_duration("300\xc2\xb5s", nullptr), 300us);
  EXPECT_EQ(parse_go_duration("10ns", nullptr), 10ns);
  EXPECT_EQ(parse_go_duration(".5s", nullptr), 500ms);
  EXPECT_EQ(parse_go_duration("-1s", nullptr), -1s);
}

TEST(GoDuration, RejectsWithReason) {
  for (const char *bad :
       {"", "5", "1.5", "s", "abc", "5x", "1m5", "--1s", "1e3s", " 5s", "5 s", "9999999999h"}) {
    std::string why;
    EXPECT_FALSE(parse_go_duration(bad, &why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(GoDuration, FormatsLikeGo) {
  EXPECT_EQ(format_go_duration(0s), "0s");
  EXPECT_EQ(format_go_duration(1s), "1s");
  EXPECT_EQ(format_go_duration(60s), "1m0s");
  EXPECT_EQ(format_go_duration(90s), "1m30s");
  EXPECT_EQ(format_go_duration(1h), "1h0m0s");
  EXPECT_EQ(format_go_duration(1500ms), "1.5s");
  EXPECT_EQ(format_go_duration(500ms), "500ms");
  EXPECT_EQ(format_go_duration(1500us), "1.5ms");
  EXPECT_EQ(format_go_duration(300us), "300\xc2\xb5s");
  EXPECT_EQ(format_go_duration(10ns), "10ns");
  EXPECT_EQ(format_go_duration(-5s), "-5s");
}

TEST(GoDuration, RoundTrips) {
  for (sink::Duration d : {sink::Duration(1ns), sink::Duration(1500us), sink::Duration(2500ms),
                           sink::Duration(61s), sink::Duration(3601s), sink::Duration(26h)}) {
    auto back = parse_go_duration(format_go_duration(d), nullptr);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, d);
  }
}
