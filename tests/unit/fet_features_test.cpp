// The fet analyzer's rules at every threshold edge, with vectors whose
// features were counted by hand: 'U' (0x55) is printable with 4 set bits,
// 0x0f is not printable with 4 set bits, so fillers of those two keep the
// average popcount at exactly 4.0 and move only the printable counts.
#include <gtest/gtest.h>

#include "FetFeatures.h"

#include <string>

using namespace sink::fet;

namespace {

std::string U(size_t n) { return std::string(n, 'U'); }
std::string N(size_t n) { return std::string(n, '\x0f'); }

// n non-printable bytes with exactly `bits` set bits in total (0..8n).
std::string with_popcount(size_t n, size_t bits) {
  static const unsigned char kByPopcount[] = {0x00, 0x01, 0x03, 0x07, 0x0f, 0x8f, 0xcf, 0xef, 0xff};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const size_t left = n - i - 1;
    // as many bits as fit while leaving the rest at most 8 each, at least 0
    size_t b = bits > 8 * left ? bits - 8 * left : 0;
    const size_t even = bits / (n - i);
    if (even > b) b = even;
    if (b > 8) b = 8;
    s += static_cast<char>(kByPopcount[b]);
    bits -= b;
  }
  EXPECT_EQ(bits, 0u);
  return s;
}

} // namespace

TEST(FetFeatures, PopcountHelperIsExact) {
  const auto s = with_popcount(25000, 85001);
  uint64_t total = 0;
  for (unsigned char c : s) {
    total += static_cast<unsigned>(__builtin_popcount(c));
    ASSERT_FALSE(printable(c));
  }
  EXPECT_EQ(total, 85001u);
  EXPECT_EQ(s.size(), 25000u);
}

TEST(FetFeatures, EmptyInputFiresNothing) {
  const auto f = compute("");
  EXPECT_EQ(f.len, 0u);
  EXPECT_FALSE(f.exempt());
  EXPECT_EQ(f.exempt_by_names(), "");
}

TEST(FetFeatures, AsciiPrefixFiveVersusSix) {
  auto f = compute(U(5) + N(7)); // 5 of 12 printable: fraction below half
  EXPECT_EQ(f.ascii_prefix, 5u);
  EXPECT_EQ(f.longest_ascii_run, 5u);
  EXPECT_EQ(f.printable, 5u);
  EXPECT_EQ(f.popcount_total, 48u);
  EXPECT_DOUBLE_EQ(f.popcount_avg(), 4.0);
  EXPECT_DOUBLE_EQ(Features::round4(f.ascii_fraction()), 0.4167);
  EXPECT_EQ(f.protocol, "");
  EXPECT_FALSE(f.exempt());
  EXPECT_EQ(f.exempt_by_names(), "");

  f = compute(U(6) + N(7)); // 6 of 13
  EXPECT_EQ(f.ascii_prefix, 6u);
  EXPECT_TRUE(f.exempt());
  EXPECT_EQ(f.exempt_by_names(), "ascii_prefix");
  EXPECT_DOUBLE_EQ(Features::round4(f.ascii_fraction()), 0.4615);
}

TEST(FetFeatures, AsciiFractionExactlyHalfVersusJustAbove) {
  auto f = compute(N(1) + U(10) + N(9)); // 10 of 20: exactly half is not "more than"
  EXPECT_EQ(f.ascii_prefix, 0u);
  EXPECT_EQ(f.printable, 10u);
  EXPECT_EQ(f.len, 20u);
  EXPECT_DOUBLE_EQ(Features::round4(f.ascii_fraction()), 0.5);
  EXPECT_EQ(f.exempt_by_names(), "");

  f = compute(N(1) + U(10) + N(8)); // 10 of 19
  EXPECT_DOUBLE_EQ(Features::round4(f.ascii_fraction()), 0.5263);
  EXPECT_EQ(f.exempt_by_names(), "ascii_fraction");
}

TEST(FetFeatures, AsciiRunTwentyVersusTwentyOne) {
  auto f = compute(N(1) + U(20) + N(21)); // 20 of 42
  EXPECT_EQ(f.longest_ascii_run, 20u);
  EXPECT_EQ(f.exempt_by_names(), "");

  f = compute(N(1) + U(21) + N(22)); // 21 of 44
  EXPECT_EQ(f.longest_ascii_run, 21u);
  EXPECT_EQ(f.exempt_by_names(), "longest_ascii_run");

  // The longest of several runs counts, not the first or the sum.
  f = compute(N(1) + U(3) + N(30) + U(21) + N(2) + U(4));
  EXPECT_EQ(f.longest_ascii_run, 21u);
  EXPECT_EQ(f.ascii_prefix, 0u);
  EXPECT_EQ(f.printable, 28u);
}

TEST(FetFeatures, PopcountLowEdge) {
  // 4+4+4+4+1 = 17 bits over 5 bytes: exactly 3.4, exempt (<=).
  auto f = compute(std::string("\x0f\x0f\x0f\x0f\x01", 5));
  EXPECT_EQ(f.popcount_total, 17u);
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 3.4);
  EXPECT_EQ(f.exempt_by_names(), "popcount");

  f = compute(with_popcount(100, 341)); // 3.41
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 3.41);
  EXPECT_EQ(f.exempt_by_names(), "");

  // 85001 / 25000 = 3.40004: prints as 3.4 but is above it, so not exempt.
  f = compute(with_popcount(25000, 85001));
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 3.4);
  EXPECT_EQ(f.exempt_by_names(), "");
  f = compute(with_popcount(25000, 85000)); // exactly 3.4 again
  EXPECT_EQ(f.exempt_by_names(), "popcount");
}

TEST(FetFeatures, PopcountHighEdge) {
  // 5+5+5+4+4 = 23 bits over 5 bytes: exactly 4.6, exempt (>=).
  auto f = compute(std::string("\x8f\x8f\x8f\x0f\x0f", 5));
  EXPECT_EQ(f.popcount_total, 23u);
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 4.6);
  EXPECT_EQ(f.exempt_by_names(), "popcount");

  f = compute(with_popcount(100, 459)); // 4.59
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 4.59);
  EXPECT_EQ(f.exempt_by_names(), "");

  // 114999 / 25000 = 4.59996: prints as 4.6 but is below it.
  f = compute(with_popcount(25000, 114999));
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 4.6);
  EXPECT_EQ(f.exempt_by_names(), "");
  f = compute(with_popcount(25000, 115000));
  EXPECT_EQ(f.exempt_by_names(), "popcount");
  // All bits set, none set.
  EXPECT_EQ(compute(std::string(8, '\xff')).exempt_by_names(), "popcount");
  EXPECT_EQ(compute(std::string(8, '\0')).exempt_by_names(), "popcount");
}

TEST(FetFeatures, ProtocolFingerprints) {
  for (const std::string &tls : {std::string("\x16\x03\x01", 3), std::string("\x17\x03\x00", 3),
                                 std::string("\x16\x03\x09", 3), std::string("\x17\x03\x03\x00\x20", 5)})
    EXPECT_EQ(protocol_of(tls), "tls") << tls.size();
  for (const std::string &no :
       {std::string("\x16\x03\x0a", 3), std::string("\x15\x03\x01", 3), std::string("\x18\x03\x01", 3),
        std::string("\x16\x02\x01", 3), std::string("\x16\x03", 2), std::string("\x16", 1), std::string()})
    EXPECT_EQ(protocol_of(no), "") << no.size();
  for (const char *http : {"GET ", "GET / HTTP/1.1", "PUT /x", "POST /", "HEAD / HTTP/1.0"})
    EXPECT_EQ(protocol_of(http), "http") << http;
  for (const char *no :
       {"GET", "GET/", "get /", "POST", "POS /", "HEAD\t/", "OPTIONS /", "PATCH /", " GET /", "DELETE /"})
    EXPECT_EQ(protocol_of(no), "") << no;
}

TEST(FetFeatures, ProtocolRuleFiresAlone) {
  // A TLS header then non-printable bytes: popcount kept mid-range.
  // 0x16 (3) 0x03 (2) 0x01 (1) + 7 x 0x0f (28) + 0x8f (5) +0x8f (5) = 44 / 12 = 3.6667
  const std::string tls = std::string("\x16\x03\x01", 3) + N(7) + "\x8f\x8f";
  auto f = compute(tls);
  EXPECT_EQ(f.popcount_total, 44u);
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 3.6667);
  EXPECT_EQ(f.protocol, "tls");
  EXPECT_EQ(f.exempt_by_names(), "protocol");
  // One byte off the TLS pattern: nothing fires.
  f = compute(std::string("\x16\x03\x0a", 3) + N(7) + "\x8f\x8f");
  EXPECT_EQ(f.protocol, "");
  EXPECT_EQ(f.exempt_by_names(), "");
}

TEST(FetFeatures, HttpRequestFiresFourRulesInThePapersOrder) {
  // "GET / HTTP/1.1" is 14 printable bytes (42 set bits), "\r\n\r\n" adds 10.
  const auto f = compute("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(f.len, 18u);
  EXPECT_EQ(f.ascii_prefix, 14u);
  EXPECT_EQ(f.longest_ascii_run, 14u);
  EXPECT_EQ(f.printable, 14u);
  EXPECT_EQ(f.popcount_total, 52u);
  EXPECT_DOUBLE_EQ(Features::round4(f.popcount_avg()), 2.8889);
  EXPECT_DOUBLE_EQ(Features::round4(f.ascii_fraction()), 0.7778);
  EXPECT_EQ(f.protocol, "http");
  EXPECT_EQ(f.exempt_by_names(), "popcount,ascii_prefix,ascii_fraction,protocol");
}

TEST(FetFeatures, EveryRuleAtOnceListsAllFive) {
  Features f;
  f.exempt_by = kPopcount | kAsciiPrefix | kAsciiFraction | kAsciiRun | kProtocol;
  EXPECT_EQ(f.exempt_by_names(), "popcount,ascii_prefix,ascii_fraction,longest_ascii_run,protocol");
}
