#include <gtest/gtest.h>

#include "TextEncoding.h"

using namespace sink::text;

namespace {
std::string b64(const std::string &s) {
  return base64(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}
} // namespace

TEST(TextEncoding, Base64MatchesRfc4648TestVectors) {
  EXPECT_EQ(b64(""), "");
  EXPECT_EQ(b64("f"), "Zg==");
  EXPECT_EQ(b64("fo"), "Zm8=");
  EXPECT_EQ(b64("foo"), "Zm9v");
  EXPECT_EQ(b64("foob"), "Zm9vYg==");
  EXPECT_EQ(b64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(b64(std::string("\x00\xff\xfe", 3)), "AP/+");
}

TEST(TextEncoding, Utf8Validation) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain"));
  EXPECT_TRUE(valid_utf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(valid_utf8("\xe4\xb8\xad\xe6\x96\x87")); // 中文
  EXPECT_TRUE(valid_utf8("\xf0\x9f\x98\x80"));         // U+1F600
  EXPECT_FALSE(valid_utf8("\xff"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));         // overlong '/'
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));     // surrogate
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80")); // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xe4\xb8"));         // cut short
}

TEST(TextEncoding, EscapeKeepsTextAndEscapesEverythingElse) {
  EXPECT_EQ(escape_bytes("GET / HTTP/1.1"), "GET / HTTP/1.1");
  EXPECT_EQ(escape_bytes(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(escape_bytes("\r\n\t\x7f"), "\\x0d\\x0a\\x09\\x7f");
  EXPECT_EQ(escape_bytes("back\\slash"), "back\\x5cslash"); // so "\x41" in the input stays distinguishable
  EXPECT_EQ(escape_bytes("\xe4\xb8\xad"), "\xe4\xb8\xad");
  EXPECT_EQ(escape_bytes("\xff\xe4\xb8"), "\\xff\\xe4\\xb8");
}

TEST(TextEncoding, PlainDecimalNeverUsesExponents) {
  EXPECT_EQ(plain_decimal(0.000055533), "0.000055533");
  EXPECT_EQ(plain_decimal(1.5), "1.5");
  EXPECT_EQ(plain_decimal(-42), "-42");
  EXPECT_EQ(plain_decimal(1e21), "1000000000000000000000");
}

TEST(TextEncoding, Base64DecodeIsTheStrictInverse) {
  std::string out;
  for (const char *s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const std::string in = s;
    ASSERT_TRUE(sink::text::base64_decode(
        sink::text::base64(reinterpret_cast<const uint8_t *>(in.data()), in.size()), &out))
        << s;
    EXPECT_EQ(out, in);
  }
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  ASSERT_TRUE(sink::text::base64_decode(
      sink::text::base64(reinterpret_cast<const uint8_t *>(all.data()), all.size()), &out));
  EXPECT_EQ(out, all);
  for (const char *bad : {"Zg", "Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg="})
    EXPECT_FALSE(sink::text::base64_decode(bad, &out)) << bad;
}
