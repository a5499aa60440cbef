// Guest-only tests: the device paths against real kernel drivers inside the QEMU guest
// (tools/qemu/suite.sh boots each mode and runs `ctest -L qemu_<mode>`). tests/qemu/in_guest.sh
// turns the guest's QEMU_GUEST_* variables into CXLKV_TEST_DEVDAX / CXLKV_TEST_NUMA_NODE and
// sets CXLKV_TEST_FAIL_ON_SKIP=1, so a device the mode promised but that is missing fails the
// test; run anywhere else, each test skips with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "alloc/numa.h"
#include "alloc/os_memory.h"
#include "backends/pool/pool_fsck.h"
#include "cxlkv/devices.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"

namespace cxlkv {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

std::string GuestMode() {
  const char* v = std::getenv("QEMU_GUEST_MODE");
  return v ? v : "";
}

// Small on CXL: its memory is MMIO-emulated by QEMU (tens of MiB/s).
std::size_t TestBytes() { return GuestMode() == "cxl" ? 8 * kMiB : 64 * kMiB; }

std::string Key(int i) { return "vllm@qemu@1@0@" + std::to_string(i); }

// The device the mode promised, with the alignment libdaxctl reports; fails when it is absent.
#define CXLKV_REQUIRE_DAX(info_var)                                                     \
  const std::string dax_path = testing::EnvDevDaxPath();                                \
  if (dax_path.empty()) CXLKV_SKIP_NO_HARDWARE("CXLKV_TEST_DEVDAX is not set");         \
  Result<DaxDeviceInfo> info_var = FindDaxDevice(dax_path);                              \
  ASSERT_TRUE(info_var.ok()) << info_var.status().ToString();                           \
  ASSERT_EQ(info_var->mode, "devdax") << dax_path;                                      \
  ASSERT_GT(info_var->alignment, 0u) << dax_path

std::unique_ptr<MemorySource> Dax(const std::string& path, std::size_t offset = 0) {
  return MemorySource::DevDax(DevDaxOptions{path, offset});
}

// Puts `count` chunks of `chunk` bytes, reads each back, and checks it byte for byte.
void PutAndGetBack(Store& store, int count, std::size_t chunk) {
  std::vector<std::byte> buf(chunk);
  for (int i = 0; i < count; ++i) {
    testing::FillPattern(buf.data(), chunk, 1000 + i);
    ASSERT_TRUE(store.Put(Key(i), buf).ok()) << "put " << i;
  }
  for (int i = 0; i < count; ++i) {
    std::fill(buf.begin(), buf.end(), std::byte{0});
    Result<std::size_t> n = store.Get(Key(i), buf);
    ASSERT_TRUE(n.ok()) << "get " << i << ": " << n.status().ToString();
    ASSERT_EQ(*n, chunk);
    ASSERT_EQ(testing::FirstPatternMismatch(buf.data(), chunk, 1000 + i), -1) << "chunk " << i;
  }
}

// --- devdax and cxl: /dev/daxX.Y through libpmem2

TEST(GuestDevDax, SlabAllocatorOnTheDevice) {
  CXLKV_REQUIRE_DAX(dax);
  const std::size_t bytes = TestBytes();
  Result<std::unique_ptr<MemoryRegion>> region = Dax(dax_path)->Map(bytes, dax->alignment);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  EXPECT_EQ((*region)->info().kind, MemoryKind::kDevDax);
  EXPECT_EQ((*region)->info().page_size, dax->alignment);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*region)->data()) % dax->alignment, 0u);
  SlabAllocatorOptions options;
  options.slab_size = 2 * kMiB;
  options.exact_sizes = {kMiB};
  Result<std::unique_ptr<SlabAllocator>> alloc = SlabAllocator::Create(**region, options);
  ASSERT_TRUE(alloc.ok()) << alloc.status().ToString();
  std::vector<Allocation> chunks;
  for (int i = 0; i < static_cast<int>(bytes / kMiB) - 2; ++i) {
    Result<Allocation> a = (*alloc)->Allocate(kMiB);
    ASSERT_TRUE(a.ok()) << "allocation " << i << ": " << a.status().ToString();
    testing::FillPattern(a->data, kMiB, i);
    (*region)->Persist(a->data, kMiB);
    chunks.push_back(*a);
  }
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    ASSERT_GE(chunks[i].data, (*region)->data());
    ASSERT_LE(chunks[i].data + kMiB, (*region)->data() + (*region)->size());
    ASSERT_EQ(testing::FirstPatternMismatch(chunks[i].data, kMiB, i), -1) << "chunk " << i;
  }
  for (const Allocation& a : chunks) ASSERT_TRUE((*alloc)->Free(a).ok());
}

TEST(GuestDevDax, StoreTierOnTheDevice) {
  CXLKV_REQUIRE_DAX(dax);
  StoreOptions options;
  TierOptions tier;
  tier.name = "dax";
  tier.source_spec = "devdax:" + dax_path;
  tier.capacity = TestBytes();
  tier.durability = "persist-on-put";
  tier.format = true;  // earlier tests left patterns where the superblocks go
  options.tiers.push_back(std::move(tier));
  options.chunk_sizes = {kMiB};
  options.slab_size = 2 * kMiB;  // a durable pool keeps its first slab for its metadata
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(options));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  PutAndGetBack(**store, static_cast<int>(TestBytes() / kMiB / 2), kMiB);
  Result<PinnedChunk> pin = (*store)->Pin(Key(0));
  ASSERT_TRUE(pin.ok()) << pin.status().ToString();
  EXPECT_EQ(testing::FirstPatternMismatch(pin->data(), kMiB, 1000), -1);
}

// Close and reopen at the store level, across processes: a durable pool (persist-on-put) on
// the device, past the region-level marks below. The writer ends without closing its store,
// as a crashed process would; the reader (GuestDevDaxReopen, a separate ctest entry that
// requires the writer) recovers by scanning headers, checks every byte, runs fsck, then
// closes cleanly and reopens from the index snapshot.
constexpr int kDurableChunks = 8;
std::size_t DurableChunk() { return TestBytes() / 32; }

StoreOptions DurableOptions(const std::string& path, const DaxDeviceInfo& dax, bool format) {
  StoreOptions options;
  TierOptions tier;
  tier.name = "pool";
  tier.source = MemorySource::DevDax(DevDaxOptions{path, dax.alignment});
  tier.capacity = TestBytes();
  tier.durability = "persist-on-put";
  tier.format = format;
  options.tiers.push_back(std::move(tier));
  options.chunk_sizes = {DurableChunk()};
  options.slab_size = 2 * kMiB;
  return options;
}

TEST(GuestDevDax, DurableStoreForTheNextProcess) {
  CXLKV_REQUIRE_DAX(dax);
  // A child writes and ends without closing its store, as a crashed process would: the next
  // process must scan headers. (A store kept open here would hold the device's lock for the
  // tests after this one.)
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Result<std::unique_ptr<Store>> store = Store::Open(DurableOptions(dax_path, *dax, true));
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      _exit(1);
    }
    std::vector<std::byte> buf(DurableChunk());
    for (int i = 0; i < kDurableChunks; ++i) {
      testing::FillPattern(buf.data(), buf.size(), 5000 + i);
      if (!(*store)->Put(Key(i), buf).ok()) _exit(2);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// One opener at a time on the character device (util/media_lock.h): a second mapping of an
// overlapping range is refused, in this process and in another, naming the holder; a disjoint
// range maps; once the holder unmaps, the range maps again.
TEST(GuestDevDax, OneOpenerAtATimeOfARange) {
  CXLKV_REQUIRE_DAX(dax);
  const std::size_t a = dax->alignment;
  Result<std::unique_ptr<MemoryRegion>> first = Dax(dax_path)->Map(2 * a, a);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<std::unique_ptr<MemoryRegion>> again = Dax(dax_path, a)->Map(a, a);  // overlaps
  ASSERT_EQ(again.status().code(), StatusCode::kBusy) << again.status().ToString();
  const std::string me = "pid " + std::to_string(getpid());
  EXPECT_NE(again.status().message().find(me), std::string::npos) << again.status().ToString();
  Result<std::unique_ptr<MemoryRegion>> beside = Dax(dax_path, 2 * a)->Map(a, a);
  EXPECT_TRUE(beside.ok()) << beside.status().ToString();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Result<std::unique_ptr<MemoryRegion>> other = Dax(dax_path)->Map(a, a);
    _exit(other.status().code() == StatusCode::kBusy &&
                  other.status().message().find(me) != std::string::npos
              ? 0
              : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  first->reset();
  Result<std::unique_ptr<MemoryRegion>> after = Dax(dax_path, a)->Map(a, a);
  EXPECT_TRUE(after.ok()) << after.status().ToString();
}

// Close and reopen at the region level, across processes: WritesForTheNextProcess leaves a
// pattern at the start and the end of the device, ReadsWhatThePreviousProcessWrote (a separate
// ctest entry that requires the first) maps it again in a new process and checks it.
// (A store-level reopen, Store::Open recovering a "persist-on-put" devdax tier, comes with the
// persistent pool: see the marked place in tools/qemu/guest-tests.sh.)
std::vector<std::size_t> MarkOffsets(const DaxDeviceInfo& dax) {
  return {0, static_cast<std::size_t>(dax.size) - dax.alignment};
}

TEST(GuestDevDax, WritesForTheNextProcess) {
  CXLKV_REQUIRE_DAX(dax);
  Result<std::unique_ptr<MemoryRegion>> whole = Dax(dax_path)->Map(0, dax->alignment);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ASSERT_EQ((*whole)->size(), dax->size);
  std::vector<std::byte> buf(kMiB);
  for (std::size_t off : MarkOffsets(*dax)) {
    testing::FillPattern(buf.data(), buf.size(), 77 + off);
    (*whole)->CopyAndPersist((*whole)->data() + off, buf.data(), buf.size());
  }
  whole->reset();  // unmapped: the next map starts from the device, not this mapping
  // ...and in this process, a new source and a new mapping at an offset see the same bytes.
  const std::size_t last = MarkOffsets(*dax)[1];
  Result<std::unique_ptr<MemoryRegion>> tail = Dax(dax_path, last)->Map(dax->alignment);
  ASSERT_TRUE(tail.ok()) << tail.status().ToString();
  EXPECT_EQ(testing::FirstPatternMismatch((*tail)->data(), kMiB, 77 + last), -1);
}

TEST(GuestDevDax, ReadsWhatThePreviousProcessWrote) {
  CXLKV_REQUIRE_DAX(dax);
  Result<std::unique_ptr<MemoryRegion>> whole = Dax(dax_path)->Map(0, dax->alignment);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  for (std::size_t off : MarkOffsets(*dax)) {
    EXPECT_EQ(testing::FirstPatternMismatch((*whole)->data() + off, kMiB, 77 + off), -1)
        << "offset " << off << " of " << dax_path;
  }
}

TEST(GuestDevDax, WrongAlignmentAndOversizeAreClearErrors) {
  CXLKV_REQUIRE_DAX(dax);
  ASSERT_GT(dax->alignment, 4096u) << "the guest's devices are 2 MiB aligned";
  Result<std::unique_ptr<MemoryRegion>> small = Dax(dax_path)->Map(dax->alignment, 4096);
  ASSERT_TRUE(small.status().IsInvalidArgument()) << small.status().ToString();
  EXPECT_NE(small.status().message().find("not a multiple of the device alignment"),
            std::string::npos)
      << small.status().message();
  Result<std::unique_ptr<MemoryRegion>> odd = Dax(dax_path, 4096)->Map(dax->alignment);
  EXPECT_TRUE(odd.status().IsInvalidArgument()) << odd.status().ToString();
  Result<std::unique_ptr<MemoryRegion>> big = Dax(dax_path)->Map(dax->size + dax->alignment);
  ASSERT_TRUE(big.status().IsNoSpace()) << big.status().ToString();
  EXPECT_NE(big.status().message().find(dax_path), std::string::npos) << big.status().message();
}

// --- numa and kmem: a CPU-less node with memory

int RequiredNode() {
  const int node = testing::EnvNumaNode();
  if (node < 0) ADD_FAILURE() << "CXLKV_TEST_NUMA_NODE is not set";
  return node;
}

TEST(GuestNuma, NodeIsCpuLessWithMemory) {
  if (testing::EnvNumaNode() < 0) CXLKV_SKIP_NO_HARDWARE("CXLKV_TEST_NUMA_NODE is not set");
  const int node = RequiredNode();
  Result<std::vector<NumaNodeInfo>> nodes = DiscoverNumaNodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  auto it = std::find_if(nodes->begin(), nodes->end(),
                         [&](const NumaNodeInfo& n) { return n.id == node; });
  ASSERT_NE(it, nodes->end()) << "node " << node << " missing";
  EXPECT_TRUE(it->cpu_less());
  EXPECT_GT(it->memory_bytes, 64 * kMiB);
  EXPECT_TRUE(it->likely_cxl());
}

TEST(GuestNuma, StoreTierBoundToTheNodePageByPage) {
  if (testing::EnvNumaNode() < 0) CXLKV_SKIP_NO_HARDWARE("CXLKV_TEST_NUMA_NODE is not set");
  const int node = RequiredNode();
  StoreOptions options;
  TierOptions tier;
  tier.name = "cxl";
  tier.source_spec = "numa:" + std::to_string(node);
  tier.capacity = 64 * kMiB;
  options.tiers.push_back(std::move(tier));
  options.chunk_sizes = {kMiB};
  options.slab_size = 2 * kMiB;  // a durable pool keeps its first slab for its metadata
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(options));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  constexpr int kChunks = 32;
  PutAndGetBack(**store, kChunks, kMiB);
  // Where the bytes are: every page of every chunk, as move_pages reports it.
  for (int i = 0; i < kChunks; ++i) {
    Result<PinnedChunk> pin = (*store)->Pin(Key(i));
    ASSERT_TRUE(pin.ok()) << pin.status().ToString();
    Result<std::vector<int>> pages = numa::PageNodes(pin->data(), pin->size(), os::BasePageSize());
    ASSERT_TRUE(pages.ok()) << pages.status().ToString();
    for (std::size_t p = 0; p < pages->size(); ++p) {
      ASSERT_EQ((*pages)[p], node) << "chunk " << i << " page " << p;
    }
  }
}

// kmem: the soft-reserved range, reconfigured to system-ram by daxctl, is node memory.
TEST(GuestKmem, DaxRangeIsOnlineAsNodeMemory) {
  if (GuestMode() != "kmem") CXLKV_SKIP_NO_HARDWARE("not in the QEMU guest's kmem mode");
  const int node = RequiredNode();
  std::vector<std::string> warnings;
  const std::vector<DaxDeviceInfo> devices = DiscoverDaxDevices(&warnings);
  auto it = std::find_if(devices.begin(), devices.end(),
                         [](const DaxDeviceInfo& d) { return d.mode == "system-ram"; });
  ASSERT_NE(it, devices.end()) << "no dax device in system-ram mode";
  EXPECT_EQ(it->numa_node, node);
  Status fits = numa::CheckNodeCanHold(node, it->size / 2);
  EXPECT_TRUE(fits.ok()) << fits.ToString();
}

// cxl: libcxl sees the memdev and the region the guest created; the devdax namespace on it
// is the device the GuestDevDax tests ran on.
TEST(GuestCxl, MemdevRegionAndDaxOnTheRegion) {
  if (GuestMode() != "cxl") CXLKV_SKIP_NO_HARDWARE("not in the QEMU guest's cxl mode");
  const DeviceInventory inv = DiscoverDevices();
  for (const std::string& w : inv.warnings) ADD_FAILURE() << "warning: " << w;
  ASSERT_EQ(inv.cxl_memdevs.size(), 1u);
  EXPECT_EQ(inv.cxl_memdevs[0].name, "mem0");
  EXPECT_GT(inv.cxl_memdevs[0].pmem_bytes, 0u);
  ASSERT_EQ(inv.cxl_regions.size(), 1u);
  EXPECT_EQ(inv.cxl_regions[0].mode, "pmem");
  EXPECT_EQ(inv.cxl_regions[0].decoder, "decoder0.0");
  EXPECT_EQ(inv.cxl_regions[0].memdevs, std::vector<std::string>{"mem0"});
  const std::string dax_path = testing::EnvDevDaxPath();
  auto dax = std::find_if(inv.dax_devices.begin(), inv.dax_devices.end(),
                          [&](const DaxDeviceInfo& d) { return d.path == dax_path; });
  ASSERT_NE(dax, inv.dax_devices.end()) << dax_path << " not discovered";
  EXPECT_EQ(dax->mode, "devdax");
  EXPECT_LE(dax->size, inv.cxl_regions[0].size);
  // libndctl: the devdax namespace on the region's nvdimm region names the same device.
  auto ns = std::find_if(inv.namespaces.begin(), inv.namespaces.end(),
                         [&](const NamespaceInfo& n) { return n.dax_device == dax_path; });
  ASSERT_NE(ns, inv.namespaces.end()) << "no namespace for " << dax_path;
  EXPECT_EQ(ns->mode, "devdax");
  EXPECT_GE(ns->size, dax->size);
}

TEST(GuestDevDaxReopen, DurableStoreRecoversEveryChunk) {
  CXLKV_REQUIRE_DAX(dax);
  std::vector<std::byte> buf(DurableChunk());
  {
    Result<std::unique_ptr<Store>> store = Store::Open(DurableOptions(dax_path, *dax, false));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    const TierStats t = (*store)->Stats().tiers[0];
    EXPECT_EQ(t.recovered, static_cast<std::uint64_t>(kDurableChunks));
    EXPECT_FALSE(t.recovered_from_snapshot);
    for (int i = 0; i < kDurableChunks; ++i) {
      Result<std::size_t> n = (*store)->Get(Key(i), buf);
      ASSERT_TRUE(n.ok()) << i << ": " << n.status().ToString();
      ASSERT_EQ(testing::FirstPatternMismatch(buf.data(), buf.size(), 5000 + i), -1) << i;
    }
    EXPECT_EQ((*store)->Stats().tiers[0].corrupt_dropped, 0u);
  }  // clean close: snapshot
  {
    Result<std::unique_ptr<MemoryRegion>> region =
        MemorySource::DevDax(DevDaxOptions{dax_path, dax->alignment})->Map(TestBytes());
    ASSERT_TRUE(region.ok()) << region.status().ToString();
    Result<internal::FsckReport> report = internal::FsckPool(**region, false, 1);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->clean()) << report->ToString();
    EXPECT_EQ(report->chunks, static_cast<std::uint64_t>(kDurableChunks));
  }
  Result<std::unique_ptr<Store>> store = Store::Open(DurableOptions(dax_path, *dax, false));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE((*store)->Stats().tiers[0].recovered_from_snapshot);
  Result<std::size_t> n = (*store)->Get(Key(kDurableChunks - 1), buf);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(testing::FirstPatternMismatch(buf.data(), buf.size(), 5000 + kDurableChunks - 1), -1);
}

}  // namespace
}  // namespace cxlkv
