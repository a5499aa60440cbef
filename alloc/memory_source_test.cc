// Source specs ("dram", "numa:N", "file:PATH", "devdax:PATH") and the names of kinds.
#include "cxlkv/memory_source.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/test_util.h"

namespace cxlkv {
namespace {

TEST(ParseTest, ValidSpecsRoundTripThroughSpec) {
  const struct {
    const char* spec;
    MemoryKind kind;
  } cases[] = {
      {"dram", MemoryKind::kDram},
      {"numa:0", MemoryKind::kNumaNode},
      {"numa:12", MemoryKind::kNumaNode},
      {"file:/tmp/cxlkv pool", MemoryKind::kFile},
      {"file:relative/x:y", MemoryKind::kFile},
      {"devdax:/dev/dax0.0", MemoryKind::kDevDax},
  };
  for (const auto& c : cases) {
    Result<std::unique_ptr<MemorySource>> source = MemorySource::Parse(c.spec);
    ASSERT_TRUE(source.ok()) << c.spec << ": " << source.status().ToString();
    EXPECT_EQ((*source)->kind(), c.kind) << c.spec;
    EXPECT_EQ((*source)->spec(), c.spec);
  }
}

TEST(ParseTest, InvalidSpecsAreInvalidArgumentQuotingTheSpec) {
  for (const char* spec : {"", "dram:1", "DRAM", "numa", "numa:", "numa:-1", "numa:x", "numa:1x",
                           "numa: 1", "numa:99999999999", "file:", "devdax:", "pmem:/mnt/x",
                           ":x"}) {
    Result<std::unique_ptr<MemorySource>> source = MemorySource::Parse(spec);
    ASSERT_TRUE(source.status().IsInvalidArgument()) << "'" << spec << "' was accepted";
    EXPECT_NE(source.status().message().find("'" + std::string(spec) + "'"), std::string::npos)
        << source.status().message();
    EXPECT_NE(source.status().message().find("numa:N"), std::string::npos)
        << "the message lists the valid forms: " << source.status().message();
  }
}

TEST(ParseTest, ParsedFileSourceMaps) {
  testing::TempDir dir;
  Result<std::unique_ptr<MemorySource>> source = MemorySource::Parse("file:" + dir.File("p"));
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  Result<std::unique_ptr<MemoryRegion>> region = (*source)->Map(1 << 20);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  EXPECT_EQ((*region)->info().path, dir.File("p"));
  EXPECT_NE((*region)->info().ToString().find("file " + dir.File("p")), std::string::npos);
}

TEST(NamesTest, KindsAndGranularities) {
  EXPECT_EQ(MemoryKindName(MemoryKind::kDram), "dram");
  EXPECT_EQ(MemoryKindName(MemoryKind::kNumaNode), "numa");
  EXPECT_EQ(MemoryKindName(MemoryKind::kFile), "file");
  EXPECT_EQ(MemoryKindName(MemoryKind::kDevDax), "devdax");
  EXPECT_EQ(PersistGranularityName(PersistGranularity::kCacheLine), "cache-line");
  EXPECT_EQ(PersistGranularityName(PersistGranularity::kPage), "page");
}

}  // namespace
}  // namespace cxlkv
