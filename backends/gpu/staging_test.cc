// StagingPipeline against a simulated copy engine: a CPU clock and one DMA queue, with the
// bytes really moved. The engine checks the rule the pipeline exists to keep (no buffer is
// written while a DMA still reads it, nor read before the DMA filling it is done) and the
// simulated makespan shows the CPU copies overlapping the DMAs. Simulated time: no timing of
// this machine is asserted.
#include "backends/gpu/staging.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace cxlkv::internal {
namespace {

class SimulatedEngine : public StagingEngine {
 public:
  // Costs in simulated nanoseconds per byte.
  SimulatedEngine(std::size_t buffer_bytes, unsigned buffers, double cpu_ns_per_byte,
                  double dma_ns_per_byte)
      : buffers_(buffers, std::vector<std::byte>(buffer_bytes)),
        dma_done_(buffers, 0),
        cpu_cost_(cpu_ns_per_byte),
        dma_cost_(dma_ns_per_byte) {}

  Status Wait(unsigned b) override {
    cpu_now_ = std::max(cpu_now_, dma_done_[b]);
    ++waits_;
    return Status::Ok();
  }
  Status HostToBuffer(unsigned b, const std::byte* src, std::size_t len) override {
    if (cpu_now_ < dma_done_[b]) Violation("CPU wrote buffer " + std::to_string(b) +
                                           " while a DMA still read it");
    std::memcpy(buffers_[b].data(), src, len);
    cpu_now_ += cpu_cost_ * static_cast<double>(len);
    return Status::Ok();
  }
  Status BufferToHost(unsigned b, std::byte* dst, std::size_t len) override {
    if (cpu_now_ < dma_done_[b]) Violation("CPU read buffer " + std::to_string(b) +
                                           " before the DMA filling it was done");
    std::memcpy(dst, buffers_[b].data(), len);
    cpu_now_ += cpu_cost_ * static_cast<double>(len);
    return Status::Ok();
  }
  Status BufferToDevice(unsigned b, std::byte* dst, std::size_t len) override {
    Dma(b, len);
    std::memcpy(dst, buffers_[b].data(), len);  // the bytes are fixed until dma_done_[b]
    return Status::Ok();
  }
  Status DeviceToBuffer(unsigned b, const std::byte* src, std::size_t len) override {
    Dma(b, len);
    std::memcpy(buffers_[b].data(), src, len);
    return Status::Ok();
  }

  double makespan() const { return std::max(cpu_now_, dma_free_); }
  int waits() const { return waits_; }
  const std::vector<std::string>& violations() const { return violations_; }

 private:
  void Dma(unsigned b, std::size_t len) {
    // Issued now (the CPU's time); runs when the queue is free; in order.
    const double start = std::max(cpu_now_, dma_free_);
    dma_free_ = start + dma_cost_ * static_cast<double>(len);
    dma_done_[b] = dma_free_;
    cpu_now_ += 1;  // issuing costs next to nothing
  }
  void Violation(std::string what) { violations_.push_back(std::move(what)); }

  std::vector<std::vector<std::byte>> buffers_;
  std::vector<double> dma_done_;
  double cpu_cost_;
  double dma_cost_;
  double cpu_now_ = 0;
  double dma_free_ = 0;
  int waits_ = 0;
  std::vector<std::string> violations_;
};

std::vector<std::byte> Pattern(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> v(n);
  testing::FillPattern(v.data(), n, seed);
  return v;
}

TEST(StagingPipeline, ToDeviceMovesEveryByteAndNeverOverwritesABufferInFlight) {
  constexpr std::size_t kBuffer = 1000;  // not a divisor of the ranges: ragged last pieces
  for (unsigned buffers : {1u, 2u, 3u}) {
    SimulatedEngine engine(kBuffer, buffers, 1.0, 1.0);
    StagingPipeline pipe(engine, kBuffer, buffers);
    const std::size_t sizes[] = {1, 999, 1000, 1001, 4321, 10000};
    std::vector<std::vector<std::byte>> src, dst;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      src.push_back(Pattern(sizes[i], i + 1));
      dst.emplace_back(sizes[i]);
      ASSERT_TRUE(pipe.ToDevice({src[i].data(), dst[i].data(), sizes[i]}).ok());
    }
    ASSERT_TRUE(pipe.Drain().ok());
    EXPECT_TRUE(engine.violations().empty()) << engine.violations().front();
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      EXPECT_EQ(testing::FirstPatternMismatch(dst[i].data(), sizes[i], i + 1), -1)
          << buffers << " buffers, range " << i;
    }
  }
}

TEST(StagingPipeline, DoubleBufferingOverlapsCpuCopyWithDma) {
  // 16 pieces, CPU copy and DMA equally fast (t each): serial costs 32 t, pipelined 17 t.
  constexpr std::size_t kBuffer = 4096;
  constexpr int kPieces = 16;
  const double t = static_cast<double>(kBuffer);
  auto src = Pattern(kBuffer * kPieces, 7);
  std::vector<std::byte> dst(src.size());

  SimulatedEngine one(kBuffer, 1, 1.0, 1.0);
  StagingPipeline single(one, kBuffer, 1);
  ASSERT_TRUE(single.ToDevice({src.data(), dst.data(), src.size()}).ok());
  ASSERT_TRUE(single.Drain().ok());
  EXPECT_GE(one.makespan(), 2 * kPieces * t);  // one buffer: nothing overlaps

  SimulatedEngine two(kBuffer, 2, 1.0, 1.0);
  StagingPipeline pipe(two, kBuffer, 2);
  // Two calls: the overlap carries across ranges (the next chunk's copy overlaps this DMA).
  const std::size_t half = src.size() / 2;
  ASSERT_TRUE(pipe.ToDevice({src.data(), dst.data(), half}).ok());
  ASSERT_TRUE(pipe.ToDevice({src.data() + half, dst.data() + half, half}).ok());
  ASSERT_TRUE(pipe.Drain().ok());
  EXPECT_TRUE(two.violations().empty());
  EXPECT_LE(two.makespan(), (kPieces + 1) * t + 1000);  // + the issue costs (1 each)
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), dst.size(), 7), -1);
}

TEST(StagingPipeline, SlowCpuCopyBoundsTheRunNotTheSum) {
  // The CPU copy takes 3x the DMA: the run costs the CPU time plus one DMA.
  constexpr std::size_t kBuffer = 1024;
  constexpr int kPieces = 10;
  auto src = Pattern(kBuffer * kPieces, 9);
  std::vector<std::byte> dst(src.size());
  SimulatedEngine engine(kBuffer, 2, 3.0, 1.0);
  StagingPipeline pipe(engine, kBuffer, 2);
  ASSERT_TRUE(pipe.ToDevice({src.data(), dst.data(), src.size()}).ok());
  ASSERT_TRUE(pipe.Drain().ok());
  const double t = static_cast<double>(kBuffer);
  EXPECT_LE(engine.makespan(), kPieces * 3 * t + t + 100);
  EXPECT_TRUE(engine.violations().empty());
}

TEST(StagingPipeline, FromDeviceMovesEveryByteInOrderAndReportsEachRange) {
  constexpr std::size_t kBuffer = 512;
  for (unsigned buffers : {1u, 2u, 4u}) {
    SimulatedEngine engine(kBuffer, buffers, 1.0, 2.0);
    StagingPipeline pipe(engine, kBuffer, buffers);
    const std::size_t sizes[] = {100, 0, 512, 513, 3000};
    std::vector<std::vector<std::byte>> src, dst;
    std::vector<StagedRange> ranges;
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      src.push_back(Pattern(sizes[i], 50 + i));
      dst.emplace_back(sizes[i]);
    }
    for (std::size_t i = 0; i < std::size(sizes); ++i) {
      ranges.push_back({src[i].data(), dst[i].data(), sizes[i]});
    }
    std::vector<std::size_t> done;
    ASSERT_TRUE(pipe.FromDevice(ranges, [&](std::size_t i) {
                  // A range is reported only once all of its bytes are in host memory.
                  EXPECT_EQ(testing::FirstPatternMismatch(dst[i].data(), sizes[i], 50 + i), -1);
                  done.push_back(i);
                }).ok());
    EXPECT_TRUE(engine.violations().empty()) << engine.violations().front();
    std::vector<std::size_t> sorted = done;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<std::size_t>{0, 1, 2, 3, 4})) << buffers << " buffers";
  }
}

TEST(StagingPipeline, FromDeviceWaitsForEarlierToDeviceBuffers) {
  constexpr std::size_t kBuffer = 256;
  SimulatedEngine engine(kBuffer, 2, 1.0, 10.0);  // slow DMAs: still in flight after ToDevice
  StagingPipeline pipe(engine, kBuffer, 2);
  auto a = Pattern(600, 1);
  std::vector<std::byte> dev(600), back(600);
  ASSERT_TRUE(pipe.ToDevice({a.data(), dev.data(), a.size()}).ok());
  const StagedRange r{dev.data(), back.data(), back.size()};
  ASSERT_TRUE(pipe.FromDevice({&r, 1}, nullptr).ok());
  EXPECT_TRUE(engine.violations().empty()) << engine.violations().front();
  EXPECT_EQ(testing::FirstPatternMismatch(back.data(), back.size(), 1), -1);
}

}  // namespace
}  // namespace cxlkv::internal
