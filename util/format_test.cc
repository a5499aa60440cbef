#include "util/format.h"

#include <gtest/gtest.h>

namespace cxlkv {
namespace {

TEST(FormatTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(4096), "4.0 KiB");
  EXPECT_EQ(FormatBytes(3ULL << 29), "1.5 GiB");
}

TEST(FormatTest, ParseBytesAcceptsUnits) {
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("64K"), 65536u);
  EXPECT_EQ(*ParseBytes("64KiB"), 65536u);
  EXPECT_EQ(*ParseBytes("2mb"), 2u << 20);
  EXPECT_EQ(*ParseBytes("1.5G"), 3ULL << 29);
  EXPECT_EQ(*ParseBytes(" 1 GiB "), 1ULL << 30);
}

TEST(FormatTest, ParseBytesRejectsGarbage) {
  for (const char* bad : {"", "x", "12Q", "-5", ".", "1.5", "99999999999P", "1..5K"}) {
    Result<std::uint64_t> r = ParseBytes(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsInvalidArgument()) << bad;
      EXPECT_NE(r.status().message().find(bad), std::string::npos) << bad;
    }
  }
}

}  // namespace
}  // namespace cxlkv

namespace cxlkv {
namespace {

TEST(FormatTest, RangeList) {
  EXPECT_EQ(FormatRangeList({}), "");
  EXPECT_EQ(FormatRangeList({4}), "4");
  EXPECT_EQ(FormatRangeList({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
}

}  // namespace
}  // namespace cxlkv
