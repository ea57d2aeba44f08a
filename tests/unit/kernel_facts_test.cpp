// The saved-SYN parser on hand-built IPv4 and IPv6 SYNs and broken ones.
#include <gtest/gtest.h>

#include <vector>

#include "KernelFacts.h"

namespace {

// A TCP header (20 bytes + options) with the given window.
std::vector<uint8_t> tcp_syn(uint16_t window, const std::vector<uint8_t> &options) {
  std::vector<uint8_t> t(20, 0);
  t[12] = static_cast<uint8_t>(((20 + options.size()) / 4) << 4);
  t[13] = 0x02; // SYN
  t[14] = static_cast<uint8_t>(window >> 8);
  t[15] = static_cast<uint8_t>(window);
  t.insert(t.end(), options.begin(), options.end());
  return t;
}

const std::vector<uint8_t> kLinuxOptions = {2, 4,  0x05, 0xb4,                   // mss 1460
                                            4, 2,                                // sack permitted
                                            8, 10, 0,    0,    0, 1, 0, 0, 0, 0, // timestamps
                                            1,                                   // nop
                                            3, 3,  7};                           // window scale 7

} // namespace

TEST(KernelFacts, AnIpv4SynGivesTtlIdDfWindowAndOptionsInOrder) {
  std::vector<uint8_t> p = {0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 57, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
  const auto t = tcp_syn(64240, kLinuxOptions);
  p.insert(p.end(), t.begin(), t.end());
  sink::SynFacts f;
  ASSERT_TRUE(sink::parse_saved_syn(p.data(), p.size(), &f));
  EXPECT_TRUE(f.saved);
  EXPECT_FALSE(f.v6);
  EXPECT_EQ(f.ttl, 57);
  EXPECT_EQ(f.ip_id, 0x1234);
  EXPECT_TRUE(f.df);
  EXPECT_EQ(f.window, 64240);
  EXPECT_EQ(f.mss, 1460);
  EXPECT_EQ(f.wscale, 7);
  EXPECT_EQ(sink::syn_option_names(f), "mss,sok,ts,nop,ws");
}

TEST(KernelFacts, AnIpv6SynGivesTheHopLimitAndNoIpId) {
  std::vector<uint8_t> p(40, 0);
  p[0] = 0x60;
  p[6] = 6; // next header: TCP
  p[7] = 44;
  const auto t = tcp_syn(1000, {1, 1, 5, 2, 30, 2, 0, 0}); // nop, nop, sack(len 2), kind 30, eol
  p.insert(p.end(), t.begin(), t.end());
  sink::SynFacts f;
  ASSERT_TRUE(sink::parse_saved_syn(p.data(), p.size(), &f));
  EXPECT_TRUE(f.v6);
  EXPECT_EQ(f.ttl, 44);
  EXPECT_EQ(f.mss, -1);
  EXPECT_EQ(f.wscale, -1);
  EXPECT_EQ(sink::syn_option_names(f), "nop,nop,sack,30,eol");
}

TEST(KernelFacts, BrokenSynsAreRefusedOrReadUpToTheDamage) {
  sink::SynFacts f;
  const std::vector<uint8_t> empty;
  EXPECT_FALSE(sink::parse_saved_syn(empty.data(), 0, &f));
  std::vector<uint8_t> short_ip = {0x45, 0, 0};
  EXPECT_FALSE(sink::parse_saved_syn(short_ip.data(), short_ip.size(), &f));
  std::vector<uint8_t> v5(60, 0);
  v5[0] = 0x55;
  EXPECT_FALSE(sink::parse_saved_syn(v5.data(), v5.size(), &f));
  // An option whose length runs past the header: the options before it stay.
  std::vector<uint8_t> p = {0x45, 0, 0, 60, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
  const auto t = tcp_syn(5, {2, 4, 0x01, 0x00, 3, 9, 1, 1});
  p.insert(p.end(), t.begin(), t.end());
  ASSERT_TRUE(sink::parse_saved_syn(p.data(), p.size(), &f));
  EXPECT_EQ(f.mss, 256);
  EXPECT_EQ(sink::syn_option_names(f), "mss,ws");
  EXPECT_EQ(f.wscale, -1) << "a malformed option is not read";
}
