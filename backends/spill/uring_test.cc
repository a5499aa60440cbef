#include "backends/spill/uring.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <string>

#include "tests/test_util.h"

namespace cxlkv::internal::spill {
namespace {

using cxlkv::testing::FillPattern;
using cxlkv::testing::FirstPatternMismatch;
using cxlkv::testing::TempDir;

constexpr std::uint32_t kBlock = 4096;

class IoRingTest : public ::testing::TestWithParam<bool> {};

// Queued writes reach the kernel in one batch; every completion comes back once, with its
// user data and its byte count, and the bytes read back are the bytes written.
TEST_P(IoRingTest, BatchedWritesThenReadsRoundTrip) {
  const bool use_io_uring = GetParam();
  TempDir dir;
  const int fd = open(dir.File("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  constexpr unsigned kOps = 8;
  auto staging = os::MapAnonymous(2 * kOps * kBlock, 0, false);
  ASSERT_TRUE(staging.ok()) << staging.status().ToString();
  {
    auto ring = IoRing::Create(fd, kOps, use_io_uring);
    ASSERT_TRUE(ring.ok()) << ring.status().ToString();
    IoRing& r = **ring;
    EXPECT_EQ(r.uses_io_uring(), use_io_uring && r.fallback_reason().empty());
    if (r.uses_io_uring()) {
      EXPECT_TRUE(r.RegisterBuffer(staging->data(), staging->length()).ok());
      EXPECT_TRUE(r.fixed_buffer());
    }
    std::byte* out = staging->data();
    std::byte* in = staging->data() + kOps * kBlock;
    FillPattern(out, kOps * kBlock, 42);
    for (unsigned i = 0; i < kOps; ++i) {
      ASSERT_TRUE(r.QueueWrite(out + i * kBlock, kBlock, std::uint64_t{i} * kBlock, 100 + i).ok());
    }
    EXPECT_FALSE(r.QueueWrite(out, kBlock, 0, 999).ok()) << "more than `entries` in flight";
    std::set<std::uint64_t> seen;
    while (r.in_flight() > 0) {
      auto c = r.WaitOne();
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      EXPECT_EQ(c->result, static_cast<std::int32_t>(kBlock));
      EXPECT_TRUE(seen.insert(c->user_data).second);
    }
    EXPECT_EQ(seen.size(), kOps);
    EXPECT_FALSE(r.WaitOne().ok()) << "waiting on an idle ring is an error, not a hang";

    for (unsigned i = 0; i < kOps; ++i) {
      ASSERT_TRUE(r.QueueRead(in + i * kBlock, kBlock, std::uint64_t{i} * kBlock, i).ok());
    }
    while (r.in_flight() > 0) {
      auto c = r.WaitOne();
      ASSERT_TRUE(c.ok());
      EXPECT_EQ(c->result, static_cast<std::int32_t>(kBlock));
    }
    EXPECT_EQ(FirstPatternMismatch(in, kOps * kBlock, 42), -1);

    // Past the end of the file: 0 bytes, not an error.
    ASSERT_TRUE(r.QueueRead(in, kBlock, 100 * kBlock, 7).ok());
    auto c = r.WaitOne();
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->result, 0);
  }
  close(fd);
}

// A failed operation reports -errno in its completion; the ring itself stays usable.
TEST_P(IoRingTest, FailedOperationReportsErrnoInItsCompletion) {
  TempDir dir;
  const std::string path = dir.File("ro");
  const int w = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(w, 0);
  close(w);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  {
    auto ring = IoRing::Create(fd, 4, GetParam());
    ASSERT_TRUE(ring.ok());
    std::byte buf[512] = {};
    ASSERT_TRUE((*ring)->QueueWrite(buf, sizeof buf, 0, 1).ok());
    auto c = (*ring)->WaitOne();
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->result, -EBADF);
    ASSERT_TRUE((*ring)->QueueRead(buf, sizeof buf, 0, 2).ok());
    c = (*ring)->WaitOne();
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->result, 0);
  }
  close(fd);
}

INSTANTIATE_TEST_SUITE_P(Modes, IoRingTest, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "io_uring" : "sync";
                         });

// When the ring itself fails with a read in the kernel, WaitOne does not return before that read
// has finished: a read straight into a caller's memory must not land after the caller was told
// it failed. A pipe holds the read in the kernel until a thread writes, well after the failure.
TEST(IoRingTest, AFailedRingReturnsOnlyOnceTheKernelIsDoneWithItsReads) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  auto ring = IoRing::Create(fds[0], 4, true);
  ASSERT_TRUE(ring.ok()) << ring.status().ToString();
  IoRing& r = **ring;
  if (!r.uses_io_uring()) GTEST_SKIP() << "io_uring unavailable: " << r.fallback_reason();
  char buf[8] = {};
  ASSERT_TRUE(r.QueueRead(reinterpret_cast<std::byte*>(buf), sizeof buf, 0, 1).ok());
  ASSERT_TRUE(r.Submit().ok());  // handed over without waiting
  r.FailNextWaitForTesting(EIO);
  const auto start = std::chrono::steady_clock::now();
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(write(fds[1], "landed!", 8), 8);
  });
  auto c = r.WaitOne();
  const auto waited = std::chrono::steady_clock::now() - start;
  char at_return[8];
  std::memcpy(at_return, buf, sizeof buf);
  writer.join();
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(r.broken());
  EXPECT_EQ(r.in_flight(), 0u);
  EXPECT_GE(waited, std::chrono::milliseconds(300)) << "returned while the read was in flight";
  EXPECT_STREQ(at_return, "landed!");  // it landed before WaitOne returned
  EXPECT_FALSE(r.QueueRead(reinterpret_cast<std::byte*>(buf), sizeof buf, 0, 3).ok());
  close(fds[0]);
  close(fds[1]);
}

TEST(IoRingTest, ZeroEntriesIsInvalid) {
  EXPECT_TRUE(IoRing::Create(0, 0, true).status().IsInvalidArgument());
}

}  // namespace
}  // namespace cxlkv::internal::spill
