#include <gtest/gtest.h>

#include "PortList.h"

using sink::format_port_list;
using sink::parse_port_list;
using Ports = std::vector<uint16_t>;

TEST(PortList, ParsesListsAndRanges) {
  EXPECT_EQ(parse_port_list("12345", nullptr), Ports({12345}));
  EXPECT_EQ(parse_port_list("3000,4000-4002", nullptr), Ports({3000, 4000, 4001, 4002}));
  EXPECT_EQ(parse_port_list("0,65535", nullptr), Ports({0, 65535}));
  EXPECT_EQ(parse_port_list("5-5", nullptr), Ports({5}));
  EXPECT_EQ(parse_port_list(" 80 , 443 ", nullptr), Ports({80, 443}));
}

TEST(PortList, DropsDuplicatesKeepingOrder) {
  EXPECT_EQ(parse_port_list("9000,80,9000,79-81", nullptr), Ports({9000, 80, 79, 81}));
}

TEST(PortList, RejectsBadInputNamingIt) {
  struct Case {
    const char *input;
    const char *mentions;
  } cases[] = {
      {"70000", "70000"}, {"5-3", "5-3"},
      {"abc", "abc"},     {"", "empty"},
      {"80,", "empty"},   {"-5", "-5"},
      {"1-2-3", "1-2-3"}, {"80x", "80x"},
      {"65536", "65536"}, {"99999999999999999999", "out of range"},
  };
  for (const auto &c : cases) {
    std::string why;
    EXPECT_FALSE(parse_port_list(c.input, &why)) << c.input;
    EXPECT_NE(why.find(c.mentions), std::string::npos) << c.input << " -> " << why;
  }
}

TEST(PortList, FormatsCompactly) {
  EXPECT_EQ(format_port_list({3000, 4000, 4001, 4002}), "3000,4000-4002");
  EXPECT_EQ(format_port_list({12345}), "12345");
  EXPECT_EQ(format_port_list({0, 0}), "0,0");
  auto back = parse_port_list(format_port_list({5, 7, 8, 9, 1}), nullptr);
  EXPECT_EQ(back, Ports({5, 7, 8, 9, 1}));
}
