// NUMA node source: strict binding, verified page by page with move_pages and get_mempolicy.
#include <numaif.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "alloc/numa.h"
#include "alloc/os_memory.h"
#include "cxlkv/memory_source.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kGiB = std::size_t{1} << 30;

void SkipWithoutNuma() {
  if (!numa::CheckAvailable().ok()) GTEST_SKIP() << "the kernel has no NUMA support here";
}

Result<std::unique_ptr<MemoryRegion>> MapOnNode(int node, std::size_t size,
                                                std::size_t alignment = 0,
                                                bool populate = true) {
  NumaOptions options;
  options.node = node;
  options.populate = populate;
  return MemorySource::NumaNode(options)->Map(size, alignment);
}

// Every page of the region is on `node`, and the policy of the range binds it there alone.
void ExpectPlacedOn(const MemoryRegion& region, int node) {
  Result<std::vector<int>> pages =
      numa::PageNodes(region.data(), region.size(), os::BasePageSize());
  ASSERT_TRUE(pages.ok()) << pages.status().ToString();
  ASSERT_EQ(pages->size(), (region.size() + os::BasePageSize() - 1) / os::BasePageSize());
  for (std::size_t i = 0; i < pages->size(); ++i) {
    ASSERT_EQ((*pages)[i], node) << "page " << i << " of " << pages->size();
  }
  Result<numa::MemoryPolicy> policy = numa::PolicyAt(region.data());
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  EXPECT_EQ(policy->mode, MPOL_BIND);
  EXPECT_EQ(policy->nodes, std::vector<int>{node});
  Result<int> bound = numa::BoundPolicyNode(region.data() + region.size() - 1);
  ASSERT_TRUE(bound.ok()) << bound.status().ToString();
  EXPECT_EQ(*bound, node);
}

void MapWriteAndVerify(int node) {
  Result<std::unique_ptr<MemoryRegion>> r = MapOnNode(node, 16 * kMiB + 4096);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const MemoryRegion& region = **r;
  EXPECT_EQ(region.info().kind, MemoryKind::kNumaNode);
  EXPECT_EQ(region.info().numa_node, node);
  EXPECT_EQ(region.info().persistence, PersistGranularity::kNone);
  testing::FillPattern(region.data(), region.size(), static_cast<std::uint64_t>(node) + 1);
  EXPECT_EQ(testing::FirstPatternMismatch(region.data(), region.size(),
                                          static_cast<std::uint64_t>(node) + 1),
            -1);
  ExpectPlacedOn(region, node);
}

TEST(NumaSourceTest, NodeZeroPlacesEveryPageOnNodeZero) {
  SkipWithoutNuma();
  MapWriteAndVerify(0);
}

TEST(NumaSourceTest, PlacementOnTheNodeNamedByTheEnvironment) {
  SkipWithoutNuma();
  const int node = testing::EnvNumaNode();
  if (node < 0) {
    CXLKV_SKIP_NO_HARDWARE("CXLKV_TEST_NUMA_NODE is not set: no second (CXL) node to place on");
  }
  MapWriteAndVerify(node);
}

TEST(NumaSourceTest, LazyRegionIsBoundBeforeItsPagesExist) {
  SkipWithoutNuma();
  Result<std::unique_ptr<MemoryRegion>> r = MapOnNode(0, 4 * kMiB, 0, /*populate=*/false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<std::vector<int>> before = numa::PageNodes((*r)->data(), (*r)->size(), 4096);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  for (int status : *before) ASSERT_EQ(status, -ENOENT) << "a page exists before first touch";
  testing::FillPattern((*r)->data(), (*r)->size(), 3);
  ExpectPlacedOn(**r, 0);
}

TEST(NumaSourceTest, HonoursAlignmentAndPagePolicy) {
  SkipWithoutNuma();
  NumaOptions options;
  options.node = 0;
  options.huge_pages = HugePages::kNone;
  Result<std::unique_ptr<MemoryRegion>> r = MemorySource::NumaNode(options)->Map(3 * kMiB, kGiB);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*r)->data()) % kGiB, 0u);
  EXPECT_EQ((*r)->info().page_size, os::BasePageSize());
  EXPECT_FALSE((*r)->info().transparent_huge_pages);
  ExpectPlacedOn(**r, 0);
}

TEST(NumaSourceTest, MissingNodesAreNotFoundAndNamed) {
  SkipWithoutNuma();
  const std::vector<int> nodes = numa::ConfiguredNodes();
  ASSERT_FALSE(nodes.empty());
  for (const int node : {9999, nodes.back() + 1}) {
    Result<std::unique_ptr<MemoryRegion>> r = MapOnNode(node, kMiB);
    ASSERT_TRUE(r.status().IsNotFound()) << node << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find("NUMA node " + std::to_string(node) + " "),
              std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("has nodes " + numa::FormatNodeList(nodes)),
              std::string::npos)
        << r.status().message();
  }
}

TEST(NumaSourceTest, RejectsNegativeNodeSizeZeroAndOversize) {
  SkipWithoutNuma();
  EXPECT_TRUE(MapOnNode(-1, kMiB).status().IsInvalidArgument());
  EXPECT_TRUE(MapOnNode(0, 0).status().IsInvalidArgument());
  EXPECT_TRUE(MapOnNode(0, kMiB, 5000).status().IsInvalidArgument());
  // No node has a petabyte: NoSpace naming the node, before anything is mapped.
  Result<std::unique_ptr<MemoryRegion>> huge = MapOnNode(0, std::size_t{1} << 50);
  ASSERT_TRUE(huge.status().IsNoSpace()) << huge.status().ToString();
  EXPECT_NE(huge.status().message().find("NUMA node 0"), std::string::npos);
}

TEST(NumaSourceTest, NodeWithoutMemoryIsRejected) {
  SkipWithoutNuma();
  int cpu_only = -1;
  for (const int node : numa::ConfiguredNodes()) {
    std::ifstream meminfo("/sys/devices/system/node/node" + std::to_string(node) + "/meminfo");
    std::string word;
    unsigned long long total_kb = 1;
    while (meminfo >> word) {
      if (word == "MemTotal:") {
        meminfo >> total_kb;
        break;
      }
    }
    if (total_kb == 0) cpu_only = node;
  }
  if (cpu_only < 0) GTEST_SKIP() << "every NUMA node here has memory";
  Result<std::unique_ptr<MemoryRegion>> r = MapOnNode(cpu_only, kMiB);
  ASSERT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no memory"), std::string::npos);
}

TEST(NumaTest, FormatsNodeListsLikeTheKernel) {
  EXPECT_EQ(numa::FormatNodeList({}), "none");
  EXPECT_EQ(numa::FormatNodeList({0}), "0");
  EXPECT_EQ(numa::FormatNodeList({0, 1}), "0-1");
  EXPECT_EQ(numa::FormatNodeList({0, 1, 2, 3, 6, 8, 9}), "0-3,6,8-9");
}

TEST(NumaTest, PolicyOfUnboundMemoryIsNotBind) {
  SkipWithoutNuma();
  Result<std::unique_ptr<MemoryRegion>> r = MemorySource::Dram()->Map(kMiB);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Result<int> bound = numa::BoundPolicyNode((*r)->data());
  EXPECT_TRUE(bound.status().IsInvalidArgument()) << bound.status().ToString();
  EXPECT_NE(bound.status().message().find("default"), std::string::npos)
      << bound.status().message();
}

}  // namespace
}  // namespace cxlkv
