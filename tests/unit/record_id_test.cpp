#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "RecordId.h"

namespace {
std::string id_at(sink::RecordIdGenerator &g, int64_t ms) {
  std::array<char, 37> out{};
  g.next_at(ms, out);
  return out.data();
}
int64_t id_ms(const std::string &id) { return std::stoll(id.substr(0, 8) + id.substr(9, 4), nullptr, 16); }
} // namespace

TEST(RecordId, IsAVersion7Rfc9562Uuid) {
  sink::RecordIdGenerator g;
  const std::regex uuid7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  const std::string id = id_at(g, 1700000000123);
  EXPECT_TRUE(std::regex_match(id, uuid7)) << id;
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id_ms(id), 1700000000123);
  EXPECT_EQ(id.substr(0, 13), "018bcfe5-687b");
}

TEST(RecordId, StrictlyIncreasingWithinAMillisecondAndAcrossCounterOverflow) {
  sink::RecordIdGenerator g;
  std::string previous;
  std::set<std::string> all;
  // 10,000 ids in one millisecond overflow the 12-bit counter several times.
  for (int i = 0; i < 10000; ++i) {
    const std::string id = id_at(g, 1700000000000);
    EXPECT_LT(previous, id);
    previous = id;
    all.insert(id);
  }
  EXPECT_EQ(all.size(), 10000u);
  EXPECT_GT(id_ms(previous), 1700000000000); // borrowed later milliseconds
  // A clock that steps back does not make ids go back either.
  EXPECT_LT(previous, id_at(g, 1600000000000));
}

TEST(RecordId, TwoGeneratorsDoNotCollide) {
  sink::RecordIdGenerator a, b;
  std::set<std::string> all;
  for (int i = 0; i < 1000; ++i) {
    all.insert(id_at(a, 1700000000000 + i / 10));
    all.insert(id_at(b, 1700000000000 + i / 10));
  }
  EXPECT_EQ(all.size(), 2000u);
}
