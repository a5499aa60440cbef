// The checks GpuRestorer makes before any CUDA call: these run on every machine.
#include "backends/gpu/requests.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/store_test_util.h"

namespace cxlkv::internal {
namespace {

using store_testing::Bytes;
using store_testing::Dram;
using store_testing::Key;
using store_testing::kChunk;
using store_testing::OpenTiers;
using store_testing::PutChunk;
using store_testing::Seed;
using store_testing::Slabs;

class RequestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::vector<TierOptions> tiers;
    tiers.push_back(Dram(Slabs(4)));
    store_ = OpenTiers(std::move(tiers));
    ASSERT_NE(store_, nullptr);
    PutChunk(*store_, 0);
    PutChunk(*store_, 1);
  }
  std::unique_ptr<Store> store_;
  std::string k0_ = Key(0), k1_ = Key(1), missing_ = Key(99);
  // Never dereferenced: validation only looks at whether the pointer is null.
  void* dev_ = reinterpret_cast<void*>(std::uintptr_t{0x1000});
};

TEST_F(RequestsTest, PinsEveryChunkInOrder) {
  const DeviceGet gets[] = {{k1_, dev_, kChunk}, {k0_, dev_, kChunk}};
  auto pinned = PinGets(*store_, gets);
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  ASSERT_EQ(pinned->pins.size(), 2u);
  EXPECT_EQ(pinned->pins[0].size(), kChunk);
  EXPECT_EQ(testing::FirstPatternMismatch(pinned->pins[0].data(), kChunk, Seed(1)), -1);
  EXPECT_EQ(testing::FirstPatternMismatch(pinned->pins[1].data(), kChunk, Seed(0)), -1);
  EXPECT_EQ(pinned->layouts[0].parts, 1u);
  EXPECT_EQ(pinned->layouts[0].span(), kChunk);
}

TEST_F(RequestsTest, EmptyListIsRefused) {
  auto r = PinGets(*store_, {});
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("no chunk"), std::string::npos);
  auto p = ReservePuts(*store_, {});
  EXPECT_TRUE(p.status().IsInvalidArgument());
}

TEST_F(RequestsTest, MissingKeyNamesTheKeyAndRequest) {
  const DeviceGet gets[] = {{k0_, dev_, kChunk}, {missing_, dev_, kChunk}};
  auto r = PinGets(*store_, gets);
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("request 1"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find(missing_), std::string::npos) << r.status().ToString();
}

TEST_F(RequestsTest, NullDestinationAndShortCapacityAreRefused) {
  const DeviceGet null_dst[] = {{k0_, nullptr, kChunk}};
  auto a = PinGets(*store_, null_dst);
  EXPECT_TRUE(a.status().IsInvalidArgument());
  EXPECT_NE(a.status().message().find("null destination"), std::string::npos);

  const DeviceGet short_dst[] = {{k0_, dev_, kChunk - 1}};
  auto b = PinGets(*store_, short_dst);
  ASSERT_TRUE(b.status().IsInvalidArgument());
  EXPECT_NE(b.status().message().find(std::to_string(kChunk)), std::string::npos)
      << b.status().ToString();
}

TEST_F(RequestsTest, LayeredDestinationNeedsRoomForEveryLayer) {
  // 16 KiB in 4 layers of 4 KiB, each at a stride of 8 KiB: the last ends at 3 * 8 + 4 KiB.
  const std::size_t span = 3 * 8192 + 4096;
  const DeviceGet ok[] = {{k0_, dev_, span, 4, 8192}};
  auto r = PinGets(*store_, ok);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->layouts[0].parts, 4u);
  EXPECT_EQ(r->layouts[0].part_bytes, 4096u);
  EXPECT_EQ(r->layouts[0].span(), span);

  const DeviceGet too_small[] = {{k0_, dev_, span - 1, 4, 8192}};
  EXPECT_TRUE(PinGets(*store_, too_small).status().IsInvalidArgument());
  const DeviceGet not_divisible[] = {{k0_, dev_, 1 << 20, 3, 8192}};
  auto nd = PinGets(*store_, not_divisible);
  EXPECT_TRUE(nd.status().IsInvalidArgument());
  EXPECT_NE(nd.status().message().find("3 layers"), std::string::npos) << nd.status().ToString();
  const DeviceGet overlapping[] = {{k0_, dev_, 1 << 20, 4, 4095}};
  EXPECT_TRUE(PinGets(*store_, overlapping).status().IsInvalidArgument());
}

TEST_F(RequestsTest, ReservesEverySlotAndSkipsStoredKeys) {
  const std::string fresh = Key(7);
  const DevicePut puts[] = {{fresh, dev_, kChunk}, {k0_, dev_, kChunk}};
  auto r = ReservePuts(*store_, puts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->slots.size(), 2u);
  EXPECT_FALSE(r->slots[0].already_stored());
  EXPECT_NE(r->slots[0].data(), nullptr);
  EXPECT_TRUE(r->slots[1].already_stored());
  EXPECT_FALSE(store_->Contains(fresh));  // invisible until committed
  ASSERT_TRUE(r->slots[0].Commit().ok());
  EXPECT_TRUE(store_->Contains(fresh));
}

TEST_F(RequestsTest, BadPutsAreRefusedBeforeAnySlotIsReserved) {
  const std::string a = Key(8), b = Key(9);
  const DevicePut null_src[] = {{a, dev_, kChunk}, {b, nullptr, kChunk}};
  auto r = ReservePuts(*store_, null_src);
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("request 1"), std::string::npos);
  const DevicePut zero[] = {{a, dev_, 0}};
  EXPECT_TRUE(ReservePuts(*store_, zero).status().IsInvalidArgument());
  const DevicePut layers[] = {{a, dev_, kChunk, {}, 5, kChunk}};
  EXPECT_TRUE(ReservePuts(*store_, layers).status().IsInvalidArgument());
  // Nothing was reserved: the tier still takes its full share of chunks.
  EXPECT_FALSE(store_->Contains(a));
  EXPECT_EQ(store_->Stats().tiers[0].chunks, 2u);
}

}  // namespace
}  // namespace cxlkv::internal
