// GpuRestorer on a real GPU: round trips of every chunk size through registered tiers and
// through the staging fallback, leases held while copies are in flight, paged scatter and
// gather. Every test skips with a one-line reason where no CUDA device is visible (set
// CXLKV_TEST_FAIL_ON_SKIP=1 on a GPU machine to turn a skip into a failure).
#include "cxlkv/gpu_restore.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backends/gpu/cuda_runtime.h"
#include "backends/store_internals.h"
#include "backends/store_test_util.h"

#if defined(__SANITIZE_ADDRESS__)
// The CUDA driver maps memory where AddressSanitizer keeps its shadow gap; without this the
// first CUDA call on a GPU machine fails under ASan. (Where no driver is installed the calls
// fail early and the tests skip either way.) ASAN_OPTIONS from the environment still apply.
extern "C" const char* __asan_default_options() { return "protect_shadow_gap=0"; }
#endif

namespace cxlkv {
namespace {

namespace cuda = internal::cuda;
using store_testing::Key;
using store_testing::Seed;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = kKiB * kKiB;

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    const ::cxlkv::Status s_ = ::cxlkv::internal::ToStatus(expr); \
    ASSERT_TRUE(s_.ok()) << #expr << ": " << s_.ToString(); \
  } while (0)

template <typename T>
T Take(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

std::vector<std::byte> Pattern(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> v(n);
  testing::FillPattern(v.data(), n, seed);
  return v;
}

// Blocks a stream until released (or destroyed): copies queued behind it cannot run, so a test
// can look at a transfer while its copies are certainly in flight.
class StreamGate {
 public:
  explicit StreamGate(cudaStream_t stream) {
    ok_ = cudaLaunchHostFunc(stream, &StreamGate::Hold, this) == cudaSuccess;
  }
  ~StreamGate() { Open(); }
  bool ok() const { return ok_; }
  void Open() { open_.store(true); }

 private:
  static void Hold(void* self) {
    auto* gate = static_cast<StreamGate*>(self);
    while (!gate->open_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::atomic<bool> open_{false};
  bool ok_ = false;
};

// A gated test needs every copy to be a DMA from a registered tier: a staged copy waits for
// its staging buffer's DMA, which a closed gate holds, and would never return.
#define ASSERT_FULLY_REGISTERED(gpu)                                              \
  do {                                                                            \
    const ::cxlkv::GpuRegion& r_ = (gpu).regions()[0];                            \
    ASSERT_EQ(r_.registered_pieces, r_.pieces) << "tier 0 is staged: " << r_.note; \
  } while (0)

class GpuRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Status visible = CudaDeviceVisible();
    if (!visible.ok()) CXLKV_SKIP_NO_HARDWARE(visible.message());
    stream_ = Take(cuda::Stream::Create());
  }

  // A store of one DRAM tier and, when file_capacity > 0, a file tier below it.
  std::unique_ptr<Store> OpenStore(std::size_t capacity, std::size_t file_capacity = 0) {
    StoreOptions o;
    TierOptions dram;
    dram.name = "dram";
    dram.source = MemorySource::Dram(DramOptions{HugePages::kTransparent, true});
    dram.capacity = capacity;
    o.tiers.push_back(std::move(dram));
    if (file_capacity > 0) {
      TierOptions file;
      file.name = "file";
      file.source_spec = "file:" + dir_.File("pool");
      file.capacity = file_capacity;
      o.tiers.push_back(std::move(file));
    }
    o.slab_size = 4 * kMiB;
    o.background_thread = false;
    auto store = Store::Open(std::move(o));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::vector<std::byte> ToHost(const void* dev, std::size_t n) {
    std::vector<std::byte> v(n);
    const Status s = cuda::Memcpy(v.data(), dev, n);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }

  // Puts a chunk, restores it to the device, checks it there, stores it back from the device
  // under a second key and checks that through Get.
  void RoundTrip(Store& store, GpuRestorer& gpu, std::size_t size, int i,
                 std::size_t* staged = nullptr) {
    SCOPED_TRACE("chunk of " + std::to_string(size) + " bytes");
    const std::vector<std::byte> bytes = Pattern(size, Seed(i));
    ASSERT_OK(store.Put(Key(i), bytes));
    cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(size));
    ASSERT_OK(cuda::Memset(dev.data(), 0, size));
    GpuTransfer get = Take(gpu.GetToDevice(Key(i), dev.data(), size, stream_.get()));
    ASSERT_EQ(get.size(), 1u);
    EXPECT_EQ(get.bytes(0), size);
    ASSERT_OK(get.Wait());
    EXPECT_TRUE(get.finished(0));
    if (staged != nullptr) *staged += get.staged_bytes();
    std::vector<std::byte> back = ToHost(dev.data(), size);
    ASSERT_EQ(testing::FirstPatternMismatch(back.data(), size, Seed(i)), -1);

    const std::string again = Key(i) + "@from-gpu";
    const DevicePut put{again, dev.data(), size};
    GpuTransfer p = Take(gpu.PutFromDevice({&put, 1}, stream_.get()));
    ASSERT_OK(p.Wait());
    if (staged != nullptr) *staged += p.staged_bytes();
    std::vector<std::byte> got(size);
    auto n = store.Get(again, got);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, size);
    EXPECT_EQ(testing::FirstPatternMismatch(got.data(), size, Seed(i)), -1);
  }

  testing::TempDir dir_;
  cuda::Stream stream_;
};

const std::size_t kSizes[] = {1,        4095,     4096,         16 * kKiB, 128 * kKiB + 3,
                              1 * kMiB, 2 * kMiB, 2 * kMiB + 1, 32 * kMiB};

TEST_F(GpuRestoreTest, RoundTripEveryChunkSizeFromARegisteredTier) {
  auto store = OpenStore(256 * kMiB);
  ASSERT_NE(store, nullptr);
  auto gpu = Take(GpuRestorer::Create(*store));
  ASSERT_EQ(gpu->regions().size(), 1u);
  const GpuRegion& r = gpu->regions()[0];
  ASSERT_EQ(r.registered_pieces, r.pieces) << "DRAM tier not registered: " << r.note;
  std::size_t staged = 0;
  int i = 0;
  for (std::size_t size : kSizes) RoundTrip(*store, *gpu, size, i++, &staged);
  EXPECT_EQ(staged, 0u);
}

TEST_F(GpuRestoreTest, RoundTripEveryChunkSizeThroughStaging) {
  auto store = OpenStore(256 * kMiB);
  ASSERT_NE(store, nullptr);
  GpuRestoreOptions o;
  o.staged_tiers = {0};  // what a refused registration leads to, on any driver
  o.staging_buffer_bytes = 1 * kMiB;  // several pieces per large chunk
  auto gpu = Take(GpuRestorer::Create(*store, o));
  EXPECT_EQ(gpu->regions()[0].registered_pieces, 0u);
  EXPECT_FALSE(gpu->regions()[0].note.empty());
  std::size_t staged = 0, total = 0;
  int i = 0;
  for (std::size_t size : kSizes) {
    RoundTrip(*store, *gpu, size, i++, &staged);
    total += 2 * size;
  }
  EXPECT_EQ(staged, total);
}

TEST_F(GpuRestoreTest, SmallRegistrationPiecesSplitCopiesCorrectly) {
  // 1 MiB pieces: 2 MiB and 32 MiB chunks cross several registrations.
  auto store = OpenStore(128 * kMiB);
  ASSERT_NE(store, nullptr);
  GpuRestoreOptions o;
  o.registration_piece = 1 * kMiB;
  auto gpu = Take(GpuRestorer::Create(*store, o));
  EXPECT_EQ(gpu->regions()[0].pieces, 128u);
  EXPECT_EQ(gpu->regions()[0].registered_pieces, 128u) << gpu->regions()[0].note;
  int i = 100;
  for (std::size_t size : {2 * kMiB + 1, 32 * kMiB}) RoundTrip(*store, *gpu, size, i++);
}

TEST_F(GpuRestoreTest, RefusedRegistrationFallsBackToStagingForTheRestOfTheRegion) {
  // A real refusal: the tier's second 1 MiB piece is registered here first, so the restorer's
  // cudaHostRegister of it fails (cudaErrorHostMemoryAlreadyRegistered). Piece 0 stays
  // registered; pieces 1.. are staged. Chunks across the boundary mix both kinds of copy.
  auto store = OpenStore(64 * kMiB);
  ASSERT_NE(store, nullptr);
  const MemoryRegion* region = internal::StoreInternals::TierRegions(*store)[0];
  cuda::HostRegistration taken =
      Take(cuda::HostRegistration::Register(region->data() + kMiB, kMiB, 0));
  GpuRestoreOptions o;
  o.registration_piece = 1 * kMiB;
  o.staging_buffer_bytes = 256 * kKiB;
  {
    auto gpu = Take(GpuRestorer::Create(*store, o));
    const GpuRegion& r = gpu->regions()[0];
    EXPECT_EQ(r.registered_pieces, 1u);
    EXPECT_NE(r.note.find("refused"), std::string::npos) << r.note;
    std::size_t staged = 0;
    int i = 300;
    for (std::size_t size : {std::size_t{4096}, 700 * kKiB, 2 * kMiB + 1, 5 * kMiB}) {
      RoundTrip(*store, *gpu, size, i++, &staged);
    }
    EXPECT_GT(staged, 0u);
  }
}

TEST_F(GpuRestoreTest, FileTierRegisteredOrStagedStillCorrect) {
  // Whether the driver pins a shared file mapping depends on the driver and the file system;
  // either way the copies must be right. regions() says which happened.
  // A 16 MiB DRAM tier over a 128 MiB file tier: of 12 chunks of 2 MiB, most are demoted
  // into the file tier by the puts that follow them.
  auto store = OpenStore(16 * kMiB, 128 * kMiB);
  ASSERT_NE(store, nullptr);
  auto gpu = Take(GpuRestorer::Create(*store));
  ASSERT_EQ(gpu->regions().size(), 2u);
  const GpuRegion& f = gpu->regions()[1];
  std::printf("file tier: %zu of %zu pieces registered%s%s\n", f.registered_pieces, f.pieces,
              f.note.empty() ? "" : "; ", f.note.c_str());
  constexpr std::size_t kCount = 12, kSize = 2 * kMiB;
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kCount; ++i) {
    keys.push_back(Key(static_cast<int>(i)));
    ASSERT_OK(store->Put(keys.back(), Pattern(kSize, Seed(static_cast<int>(i)))));
  }
  store->Maintain();
  std::size_t in_file = 0;
  for (const std::string& k : keys) {
    auto pin = store->Pin(k);
    ASSERT_TRUE(pin.ok()) << k << ": " << pin.status().ToString();
    in_file += pin->tier() == 1;
  }
  EXPECT_GT(in_file, 0u);
  cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(kCount * kSize));
  std::vector<DeviceGet> gets;
  for (std::size_t k = 0; k < kCount; ++k) gets.push_back({keys[k], dev.data() + k * kSize, kSize});
  GpuTransfer t = Take(gpu->GetToDevice(gets, stream_.get()));
  ASSERT_OK(t.Wait());
  if (f.registered_pieces < f.pieces) {
    EXPECT_GT(t.staged_bytes(), 0u);
  }
  std::vector<std::byte> back = ToHost(dev.data(), kCount * kSize);
  for (std::size_t k = 0; k < kCount; ++k) {
    EXPECT_EQ(testing::FirstPatternMismatch(back.data() + k * kSize, kSize,
                                            Seed(static_cast<int>(k))),
              -1)
        << keys[k];
  }
}

TEST_F(GpuRestoreTest, BatchedGetRecordsAnEventPerChunkAndFinishesThemAll) {
  auto store = OpenStore(64 * kMiB);
  ASSERT_NE(store, nullptr);
  auto gpu = Take(GpuRestorer::Create(*store));
  constexpr int kChunks = 8;
  std::vector<std::string> keys;
  for (int i = 0; i < kChunks; ++i) {
    keys.push_back(Key(i));
    ASSERT_OK(store->Put(keys.back(), Pattern(2 * kMiB, Seed(i))));
  }
  cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(kChunks * 2 * kMiB));
  std::vector<DeviceGet> gets;
  for (int i = 0; i < kChunks; ++i) gets.push_back({keys[i], dev.data() + i * 2 * kMiB, 2 * kMiB});
  ASSERT_FULLY_REGISTERED(*gpu);
  StreamGate gate(stream_.get());
  ASSERT_TRUE(gate.ok());
  GpuTransfer t = Take(gpu->GetToDevice(gets, stream_.get()));
  ASSERT_EQ(t.size(), static_cast<std::size_t>(kChunks));
  for (int i = 0; i < kChunks; ++i) EXPECT_NE(t.event(i), nullptr) << i;
  auto polled = t.Poll();
  ASSERT_TRUE(polled.ok());
  EXPECT_FALSE(*polled);  // the gate holds every copy
  gate.Open();
  ASSERT_OK(t.Wait());
  for (int i = 0; i < kChunks; ++i) {
    EXPECT_TRUE(t.finished(i));
    EXPECT_EQ(t.event(i), nullptr);
  }
  std::vector<std::byte> back = ToHost(dev.data(), kChunks * 2 * kMiB);
  for (int i = 0; i < kChunks; ++i) {
    EXPECT_EQ(testing::FirstPatternMismatch(back.data() + i * 2 * kMiB, 2 * kMiB, Seed(i)), -1);
  }
}

TEST_F(GpuRestoreTest, ChunkIsNotEvictedWhileItsCopyIsInFlight) {
  // One tier of 8 slots of 16 KiB (64 KiB slabs); chunk 0 is restored behind a closed gate,
  // removed, and 16 more chunks are put: they evict everything that is not pinned.
  StoreOptions o;
  TierOptions t;
  t.name = "dram";
  t.source = MemorySource::Dram(DramOptions{HugePages::kNone, true});
  t.capacity = store_testing::Slabs(2);
  o.tiers.push_back(std::move(t));
  o.chunk_sizes = {store_testing::kChunk};
  o.slab_size = store_testing::kSlab;
  o.background_thread = false;
  auto store = Take(Store::Open(std::move(o)));
  auto gpu = Take(GpuRestorer::Create(*store));
  constexpr std::size_t kChunk = store_testing::kChunk;
  for (int i = 0; i < 8; ++i) ASSERT_OK(store->Put(Key(i), Pattern(kChunk, Seed(i))));
  cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(kChunk));
  ASSERT_OK(cuda::Memset(dev.data(), 0, kChunk));

  ASSERT_FULLY_REGISTERED(*gpu);
  StreamGate gate(stream_.get());
  ASSERT_TRUE(gate.ok());
  GpuTransfer get = Take(gpu->GetToDevice(Key(0), dev.data(), kChunk, stream_.get()));
  ASSERT_OK(store->Remove(Key(0)));
  for (int i = 100; i < 116; ++i) ASSERT_OK(store->Put(Key(i), Pattern(kChunk, Seed(i))));
  int live = 0;
  for (int i = 100; i < 116; ++i) live += store->Contains(Key(i)) ? 1 : 0;
  EXPECT_EQ(live, 7);  // the eighth slot is still leased
  EXPECT_EQ(store->Stats().tiers[0].chunks, 8u);  // a removed chunk counts until its slot is freed
  auto polled = get.Poll();
  ASSERT_TRUE(polled.ok());
  EXPECT_FALSE(*polled);
  EXPECT_FALSE(get.finished(0));
  gate.Open();
  ASSERT_OK(get.Wait());
  std::vector<std::byte> back = ToHost(dev.data(), kChunk);
  EXPECT_EQ(testing::FirstPatternMismatch(back.data(), kChunk, Seed(0)), -1);
  // The lease is over: the slot is free again, and a put takes it without evicting.
  EXPECT_EQ(store->Stats().tiers[0].chunks, 7u);
  const std::uint64_t evictions = store->Stats().tiers[0].evictions;
  ASSERT_OK(store->Put(Key(200), Pattern(kChunk, Seed(200))));
  EXPECT_EQ(store->Stats().tiers[0].evictions, evictions);
}

TEST_F(GpuRestoreTest, PutFromDeviceIsInvisibleUntilItsCopyCompletes) {
  auto store = OpenStore(64 * kMiB);
  ASSERT_NE(store, nullptr);
  auto gpu = Take(GpuRestorer::Create(*store));
  const std::size_t size = 2 * kMiB;
  cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(size));
  const std::vector<std::byte> bytes = Pattern(size, 77);
  ASSERT_OK(cuda::Memcpy(dev.data(), bytes.data(), size));
  const std::string key = Key(77);
  ASSERT_FULLY_REGISTERED(*gpu);
  StreamGate gate(stream_.get());
  ASSERT_TRUE(gate.ok());
  const DevicePut put{key, dev.data(), size};
  GpuTransfer t = Take(gpu->PutFromDevice({&put, 1}, stream_.get()));
  auto polled = t.Poll();
  ASSERT_TRUE(polled.ok());
  EXPECT_FALSE(*polled);
  EXPECT_FALSE(store->Contains(key));
  gate.Open();
  ASSERT_OK(t.Wait());
  EXPECT_TRUE(store->Contains(key));
  std::vector<std::byte> got(size);
  ASSERT_TRUE(store->Get(key, got).ok());
  EXPECT_EQ(testing::FirstPatternMismatch(got.data(), size, 77), -1);
  // A second put of the same key is write-once: nothing copied.
  GpuTransfer again = Take(gpu->PutFromDevice({&put, 1}, stream_.get()));
  EXPECT_EQ(again.bytes(0), 0u);
  ASSERT_OK(again.Wait());
}

TEST_F(GpuRestoreTest, ScatterAndGatherPagedLayers) {
  // A 4-layer chunk of 256 KiB into pages 1 MiB apart, then gathered back under a new key:
  // registered (one 2D copy) and staged (per-layer pieces).
  for (bool staged : {false, true}) {
    SCOPED_TRACE(staged ? "staged" : "registered");
    auto store = OpenStore(64 * kMiB);
    ASSERT_NE(store, nullptr);
    GpuRestoreOptions o;
    o.register_tiers = !staged;
    auto gpu = Take(GpuRestorer::Create(*store, o));
    constexpr std::size_t kLayers = 4, kPart = 64 * kKiB, kStride = 1 * kMiB;
    const std::vector<std::byte> bytes = Pattern(kLayers * kPart, 5);
    ASSERT_OK(store->Put(Key(5), bytes));
    const std::size_t span = (kLayers - 1) * kStride + kPart;
    cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(span));
    ASSERT_OK(cuda::Memset(dev.data(), 0, span));
    const DeviceGet get{Key(5), dev.data(), span, kLayers, kStride};
    GpuTransfer t = Take(gpu->GetToDevice({&get, 1}, stream_.get()));
    ASSERT_OK(t.Wait());
    std::vector<std::byte> back = ToHost(dev.data(), span);
    for (std::size_t l = 0; l < kLayers; ++l) {
      EXPECT_EQ(std::memcmp(back.data() + l * kStride, bytes.data() + l * kPart, kPart), 0) << l;
    }
    const std::string gathered = Key(6);
    const DevicePut put{gathered, dev.data(), kLayers * kPart, {}, kLayers, kStride};
    GpuTransfer p = Take(gpu->PutFromDevice({&put, 1}, stream_.get()));
    ASSERT_OK(p.Wait());
    std::vector<std::byte> got(kLayers * kPart);
    ASSERT_TRUE(store->Get(gathered, got).ok());
    EXPECT_EQ(got, bytes);
  }
}

TEST_F(GpuRestoreTest, MissingKeyFailsBeforeAnyCopy) {
  auto store = OpenStore(16 * kMiB);
  ASSERT_NE(store, nullptr);
  auto gpu = Take(GpuRestorer::Create(*store));
  ASSERT_OK(store->Put(Key(1), Pattern(4096, 1)));
  cuda::DeviceBuffer dev = Take(cuda::DeviceBuffer::Allocate(8192));
  const std::string k1 = Key(1), k2 = Key(2);
  const DeviceGet gets[] = {{k1, dev.data(), 4096}, {k2, dev.data() + 4096, 4096}};
  auto t = gpu->GetToDevice(gets, stream_.get());
  ASSERT_TRUE(t.status().IsNotFound()) << t.status().ToString();
  EXPECT_NE(t.status().message().find(k2), std::string::npos);
}

}  // namespace
}  // namespace cxlkv
