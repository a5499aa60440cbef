// Discovery against a fake sysfs tree (what no test machine has: a CPU-less node with memory,
// broken files) and against the real machine (node 0 exists; no CXL here is not an error).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cxlkv/devices.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

class FakeSysfs {
 public:
  const std::string& dir() const { return tmp_.path(); }

  // Writes nodeN/{meminfo,cpulist,distance}; an empty cpulist is a CPU-less node.
  void AddNode(int id, std::uint64_t total_kib, std::uint64_t free_kib, const std::string& cpulist,
               const std::string& distance) {
    const std::string n = std::to_string(id);
    Write("node" + n + "/meminfo", "Node " + n + " MemTotal:       " + std::to_string(total_kib) +
                                       " kB\nNode " + n + " MemFree:        " +
                                       std::to_string(free_kib) + " kB\nNode " + n +
                                       " MemUsed:        " + std::to_string(total_kib - free_kib) +
                                       " kB\n");
    Write("node" + n + "/cpulist", cpulist + "\n");
    Write("node" + n + "/distance", distance + "\n");
  }

  void Write(const std::string& relative, const std::string& contents) {
    const std::filesystem::path path = std::filesystem::path(dir()) / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << contents;
  }

 private:
  testing::TempDir tmp_;
};

// A host node with CPUs and a CXL expander: CPU-less, with memory.
void AddHostAndExpander(FakeSysfs& sysfs) {
  sysfs.AddNode(0, 16u << 20, 12u << 20, "0-3,8,10-11", "10 21");
  sysfs.AddNode(1, 64u << 20, 63u << 20, "", "21 10");
}

TEST(DiscoverNumaNodes, ReadsFakeTree) {
  FakeSysfs sysfs;
  AddHostAndExpander(sysfs);
  sysfs.Write("possible", "0-1\n");  // files beside the node dirs are not nodes
  sysfs.Write("nodelist/readme", "a directory that is not nodeN\n");

  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(nodes->size(), 2u);

  const NumaNodeInfo& host = (*nodes)[0];
  EXPECT_EQ(host.id, 0);
  EXPECT_EQ(host.memory_bytes, std::uint64_t{16} << 30);
  EXPECT_EQ(host.free_bytes, std::uint64_t{12} << 30);
  EXPECT_EQ(host.cpus, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(host.distances, (std::vector<int>{10, 21}));
  EXPECT_FALSE(host.cpu_less());
  EXPECT_FALSE(host.likely_cxl());

  const NumaNodeInfo& expander = (*nodes)[1];
  EXPECT_EQ(expander.id, 1);
  EXPECT_EQ(expander.memory_bytes, std::uint64_t{64} << 30);
  EXPECT_TRUE(expander.cpus.empty());
  EXPECT_EQ(expander.distances, (std::vector<int>{21, 10}));
  EXPECT_TRUE(expander.cpu_less());
  EXPECT_TRUE(expander.likely_cxl());
}

TEST(DiscoverNumaNodes, SortsIdsNumericallyWithHoles) {
  FakeSysfs sysfs;
  sysfs.AddNode(10, 1024, 512, "4", "10 20 20");
  sysfs.AddNode(2, 1024, 512, "2-3", "20 10 20");
  sysfs.AddNode(0, 1024, 512, "0-1", "10 20 20");
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].id, 0);
  EXPECT_EQ((*nodes)[1].id, 2);
  EXPECT_EQ((*nodes)[2].id, 10);  // numeric, not "node10" < "node2"
  EXPECT_EQ((*nodes)[2].cpus, std::vector<int>{4});
}

TEST(DiscoverNumaNodes, CpuLessNodeWithoutMemoryIsNotCxl) {
  FakeSysfs sysfs;
  sysfs.AddNode(0, 0, 0, "", "10");
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_TRUE((*nodes)[0].cpu_less());
  EXPECT_FALSE((*nodes)[0].likely_cxl());
}

TEST(DiscoverNumaNodes, CpuListWithSpacesAndOverlapsIsNormalised) {
  FakeSysfs sysfs;
  sysfs.AddNode(0, 1024, 512, " 6-7, 0 ,2-3,3 ", "10");
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  EXPECT_EQ((*nodes)[0].cpus, (std::vector<int>{0, 2, 3, 6, 7}));
}

TEST(DiscoverNumaNodes, MissingDirIsNotFoundNamingIt) {
  FakeSysfs sysfs;
  const std::string missing = sysfs.dir() + "/no-such-node-dir";
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(missing);
  ASSERT_FALSE(nodes.ok());
  EXPECT_TRUE(nodes.status().IsNotFound()) << nodes.status().ToString();
  EXPECT_NE(nodes.status().message().find(missing), std::string::npos)
      << nodes.status().ToString();
}

TEST(DiscoverNumaNodes, EmptyDirHasNoNodes) {
  FakeSysfs sysfs;
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  EXPECT_TRUE(nodes->empty());
}

// Each malformed file must be reported as Corruption naming that file.
struct MalformedCase {
  const char* file;
  const char* contents;
};

class MalformedFile : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedFile, IsCorruptionNamingTheFile) {
  FakeSysfs sysfs;
  AddHostAndExpander(sysfs);
  sysfs.Write(std::string("node1/") + GetParam().file, GetParam().contents);
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_FALSE(nodes.ok()) << "accepted " << GetParam().file << " = '" << GetParam().contents
                           << "'";
  EXPECT_TRUE(nodes.status().IsCorruption()) << nodes.status().ToString();
  const std::string path = sysfs.dir() + "/node1/" + GetParam().file;
  EXPECT_NE(nodes.status().message().find(path), std::string::npos) << nodes.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(
    DiscoverNumaNodes, MalformedFile,
    ::testing::Values(MalformedCase{"cpulist", "0-3,x\n"}, MalformedCase{"cpulist", "3-1\n"},
                      MalformedCase{"cpulist", "0-\n"}, MalformedCase{"cpulist", "-1\n"},
                      MalformedCase{"cpulist", "0,,1\n"}, MalformedCase{"cpulist", "0-99999999\n"},
                      MalformedCase{"meminfo", "Node 1 MemTotal: lots kB\n"},
                      MalformedCase{"meminfo", "Node 1 MemTotal: 1024 kB\n"},  // no MemFree
                      MalformedCase{"meminfo", "Node 1 MemTotal: 1024 MB\nNode 1 MemFree: 1 kB\n"},
                      MalformedCase{"meminfo", ""}, MalformedCase{"distance", "10 far\n"},
                      MalformedCase{"distance", "\n"}));

TEST(DiscoverNumaNodes, MissingFileInNodeDirIsNotFoundNamingIt) {
  FakeSysfs sysfs;
  AddHostAndExpander(sysfs);
  std::filesystem::remove(sysfs.dir() + "/node1/distance");
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes(sysfs.dir());
  ASSERT_FALSE(nodes.ok());
  EXPECT_TRUE(nodes.status().IsNotFound()) << nodes.status().ToString();
  EXPECT_NE(nodes.status().message().find("node1/distance"), std::string::npos);
}

TEST(DiscoverNumaNodes, RealSysfsHasNodeZero) {
  if (!std::filesystem::exists("/sys/devices/system/node/node0")) {
    CXLKV_SKIP_NO_HARDWARE("no /sys/devices/system/node/node0 (kernel without NUMA sysfs)");
  }
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_FALSE(nodes->empty());
  const NumaNodeInfo& node0 = nodes->front();
  EXPECT_EQ(node0.id, 0);
  EXPECT_GT(node0.memory_bytes, 0u);
  EXPECT_LE(node0.free_bytes, node0.memory_bytes);
  EXPECT_EQ(node0.distances.size(), nodes->size());
  // Some node runs this test, so at least one node has CPUs.
  bool any_cpus = false;
  for (const NumaNodeInfo& node : *nodes) any_cpus |= !node.cpus.empty();
  EXPECT_TRUE(any_cpus);
}

TEST(DiscoverCxl, NoCrashAndConsistentWithSysfs) {
  std::vector<std::string> warnings;
  const std::vector<CxlMemdevInfo> memdevs = DiscoverCxlMemdevs(&warnings);
  const std::vector<CxlRegionInfo> regions = DiscoverCxlRegions(&warnings);
  if (!std::filesystem::exists("/sys/bus/cxl")) {
    // No CXL bus: an empty answer, not an error.
    EXPECT_TRUE(memdevs.empty());
    EXPECT_TRUE(regions.empty());
    return;
  }
  for (const CxlMemdevInfo& memdev : memdevs) {
    EXPECT_FALSE(memdev.name.empty());
    EXPECT_TRUE(std::filesystem::exists("/sys/bus/cxl/devices/" + memdev.name)) << memdev.name;
  }
  for (const CxlRegionInfo& region : regions) EXPECT_FALSE(region.name.empty());
}

TEST(DiscoverDevices, InventoryHasRealNumaNodes) {
  const DeviceInventory inventory = DiscoverDevices();
  if (!std::filesystem::exists("/sys/devices/system/node/node0")) {
    CXLKV_SKIP_NO_HARDWARE("no NUMA sysfs");
  }
  ASSERT_FALSE(inventory.numa_nodes.empty());
  EXPECT_EQ(inventory.numa_nodes.front().id, 0);
  if (!std::filesystem::exists("/sys/bus/cxl")) {
    EXPECT_TRUE(inventory.cxl_memdevs.empty());
    EXPECT_TRUE(inventory.cxl_regions.empty());
  }
}

}  // namespace
}  // namespace cxlkv
