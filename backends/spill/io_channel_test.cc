// PipelinedRead's hand-over order, with completions out of issue order every time (the ring
// scrambles them): a job's pieces in order and together, since one hasher serves
// every job of a batch; a job read in one piece handed over as soon as it completes, so that its
// slot reads on while an older read is still in flight.
#include "backends/spill/io_channel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "util/unique_fd.h"

namespace cxlkv::internal::spill {
namespace {

using cxlkv::testing::FillPattern;
using cxlkv::testing::TempDir;

constexpr std::uint32_t kSlot = 16 * 1024;

struct Event {
  std::size_t job;
  std::uint64_t offset;
  std::uint32_t len;
};

// A file of `size` pattern bytes (seed `seed`) as the device, read through a channel of
// `slots` slots of kSlot bytes; the parameter picks io_uring (true) or synchronous I/O.
class PipelinedReadTest : public ::testing::TestWithParam<bool> {
 protected:
  void OpenDevice(std::size_t size, std::uint64_t seed, unsigned slots) {
    path_ = dir_.File("device");
    device_.resize(size);
    FillPattern(device_.data(), device_.size(), seed);
    {
      UniqueFd w(open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
      ASSERT_GE(w.get(), 0);
      ASSERT_EQ(pwrite(w.get(), device_.data(), device_.size(), 0),
                static_cast<ssize_t>(device_.size()));
    }
    fd_ = UniqueFd(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_GE(fd_.get(), 0);
    auto ch =
        IoChannel::Create({fd_.get(), path_, slots, kSlot, GetParam()}, &counters_, &warned_);
    ASSERT_TRUE(ch.ok()) << ch.status().ToString();
    ch_ = std::move(*ch);
  }

  TempDir dir_;
  std::string path_;
  std::vector<std::byte> device_;
  UniqueFd fd_;  // outlives the channel (declared before it)
  IoCounters counters_;
  IoChannel::Warned warned_;
  std::unique_ptr<IoChannel> ch_;
};

TEST_P(PipelinedReadTest, JobsStayTogetherAndOnePieceJobsOvertake) {
  ASSERT_NO_FATAL_FAILURE(OpenDevice(4 << 20, 7, 4));
  ch_->ring().ScrambleCompletionsForTesting(true);

  // Jobs of one piece (8 KiB) and of two or three (24, 40 KiB through 16 KiB slots), mixed so
  // that the ring's scrambled completions meet both cases: a one-piece job complete while the
  // oldest job has not started (it goes ahead) and while it is half handed over (it waits).
  constexpr std::uint64_t kSizes[] = {40 << 10, 8 << 10, 8 << 10, 24 << 10, 8 << 10};
  constexpr std::size_t kJobs = 42;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> extents;
  for (std::size_t j = 0; j < kJobs; ++j) {
    extents.push_back({(j * 97 % 61) * 65536, kSizes[j % std::size(kSizes)]});
  }
  std::vector<Event> events;
  bool bytes_right = true;
  const Status s = PipelinedRead(
      *ch_, kJobs, [&](std::size_t j) { return extents[j]; },
      [&](std::size_t j, std::uint64_t off, const std::byte* p, std::uint32_t len) {
        events.push_back({j, off, len});
        bytes_right =
            bytes_right && std::memcmp(p, device_.data() + extents[j].first + off, len) == 0;
      },
      [&](std::size_t j, const Status& st) { ADD_FAILURE() << "job " << j << ": " << st.ToString(); });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(bytes_right);

  // Every job whole, its pieces in order, no other job's piece among them.
  std::vector<std::uint64_t> next(kJobs, 0);
  std::vector<std::size_t> first_seen;
  for (std::size_t e = 0; e < events.size(); ++e) {
    const Event& ev = events[e];
    ASSERT_EQ(ev.offset, next[ev.job]) << "job " << ev.job << " out of order";
    if (ev.offset == 0) first_seen.push_back(ev.job);
    next[ev.job] += ev.len;
    if (next[ev.job] < extents[ev.job].second) {
      ASSERT_LT(e + 1, events.size());
      EXPECT_EQ(events[e + 1].job, ev.job) << "job " << events[e + 1].job
                                          << " handed over inside job " << ev.job;
    }
  }
  for (std::size_t j = 0; j < kJobs; ++j) EXPECT_EQ(next[j], extents[j].second) << j;
  // And a one-piece job went ahead of an older job still in flight.
  bool overtook = false;
  for (std::size_t k = 0; k + 1 < first_seen.size(); ++k) {
    overtook = overtook || first_seen[k] > first_seen[k + 1];
  }
  EXPECT_TRUE(overtook) << "every job was handed over in issue order";
}

// max_device_bytes: at most that many bytes at the device (a larger piece alone), and the next
// read issued as soon as one completes and handed to the kernel before the completed one is
// handed over, so that the device reads on while the consumer checks. The ring's in_flight()
// counts reads issued and not yet reaped: at a hand-over, what else the device holds; its
// unsubmitted(), those of them the kernel has not been given yet.
TEST_P(PipelinedReadTest, ACapLimitsTheBytesAtTheDeviceAndTheNextReadStartsBeforeAHandOver) {
  ASSERT_NO_FATAL_FAILURE(OpenDevice(2 << 20, 11, 8));

  struct Case {
    std::uint64_t job_size;
    std::uint64_t cap;
    unsigned most_at_device;  // reads in flight at a hand-over, at most
  };
  // 8 KiB jobs under a 16 KiB cap: two at the device; 40 KiB jobs (16 KiB pieces) under an
  // 8 KiB cap: each piece alone; no cap: up to the 8 slots, less the one handed over.
  for (const Case c : {Case{8 << 10, 16 << 10, 2}, Case{40 << 10, 8 << 10, 1},
                       Case{8 << 10, 0, 7}}) {
    SCOPED_TRACE("job " + std::to_string(c.job_size) + " B, cap " + std::to_string(c.cap));
    constexpr std::size_t kJobs = 24;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> extents;
    for (std::size_t j = 0; j < kJobs; ++j) extents.push_back({(j * 7 % 24) * 65536, c.job_size});
    unsigned most = 0;
    std::size_t handed_with_none_reading = 0;  // hand-overs while later jobs waited unissued
    std::size_t handed_with_reads_held = 0;    // hand-overs while issued reads sat in the ring
    std::uint64_t bytes = 0;
    bool bytes_right = true;
    const Status s = PipelinedRead(
        *ch_, kJobs, [&](std::size_t j) { return extents[j]; },
        [&](std::size_t j, std::uint64_t off, const std::byte* p, std::uint32_t len) {
          const unsigned at_device = ch_->ring().in_flight();
          most = std::max(most, at_device);
          const bool last_piece = off + len == extents[j].second;
          if (at_device == 0 && !(last_piece && j + 1 == kJobs)) ++handed_with_none_reading;
          if (ch_->ring().uses_io_uring() && ch_->ring().unsubmitted() > 0) {
            ++handed_with_reads_held;
          }
          bytes += len;
          bytes_right =
              bytes_right && std::memcmp(p, device_.data() + extents[j].first + off, len) == 0;
        },
        [&](std::size_t j, const Status& st) {
          ADD_FAILURE() << "job " << j << ": " << st.ToString();
        },
        StagedReads{}, c.cap);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(bytes_right);
    EXPECT_EQ(bytes, kJobs * c.job_size);
    EXPECT_LE(most, c.most_at_device);
    EXPECT_EQ(handed_with_none_reading, 0u) << "the device idled while a piece was handed over";
    EXPECT_EQ(handed_with_reads_held, 0u) << "reads waited in the ring through a hand-over";
    if (c.cap == 0) {
      EXPECT_GT(most, 2u) << "without a cap the slots fill";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, PipelinedReadTest, ::testing::Values(true, false),
                         [](const auto& param_info) {
                           return param_info.param ? "io_uring" : "sync";
                         });


// SlotWriter::Stream with a write unit: records laid end to end (a header block from a slot,
// then data from the caller's memory, some ending inside a unit) reach the file intact, and
// every buffer of every write covers whole units of the disk, phase included: where two
// records share a unit it was copied into one slot, never written as the pieces lie.
class SlotWriterRunTest : public ::testing::TestWithParam<bool> {};

TEST_P(SlotWriterRunTest, EveryBufferCoversWholeUnitsAndTheBytesLand) {
  constexpr std::uint32_t kUnit = 16 * 1024;
  constexpr std::uint64_t kPhase = 8 * 1024;  // as if the file began 8 KiB into a disk unit
  constexpr std::uint64_t kStart = 64 * 1024 + 4096;  // not on a unit boundary
  TempDir dir;
  const std::string path = dir.File("device");
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_GE(fd.get(), 0);
  IoCounters counters;
  IoChannel::Warned warned;
  auto ch = IoChannel::Create({fd.get(), path, 8, 64 * 1024, GetParam(), kUnit}, &counters,
                              &warned);
  ASSERT_TRUE(ch.ok()) << ch.status().ToString();
  std::vector<IoRing::WriteShape> shapes;
  (*ch)->ring().RecordWritesForTesting(&shapes);

  // Data sizes: whole units, a block, odd block counts, one past a write's 2 MiB.
  const std::vector<std::size_t> sizes = {16 << 10, 4 << 10,  20 << 10, 100 << 10, 36 << 10,
                                          4 << 10,  4 << 10,  (2 << 20) + (8 << 10), 64 << 10,
                                          12 << 10, 28 << 10, 4 << 10};
  std::vector<std::byte> expected;
  std::vector<std::unique_ptr<std::byte[], void (*)(void*)>> data;
  std::uint64_t offset = kStart;
  {
    SlotWriter w(**ch);
    ASSERT_TRUE(w.SetPhase(kPhase).ok());
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      auto head = w.Acquire();
      ASSERT_TRUE(head.ok()) << head.status().ToString();
      FillPattern((*ch)->slot(*head), 4096, 1000 + r);
      data.emplace_back(static_cast<std::byte*>(std::aligned_alloc(4096, sizes[r])), std::free);
      FillPattern(data.back().get(), sizes[r], r);
      expected.insert(expected.end(), (*ch)->slot(*head), (*ch)->slot(*head) + 4096);
      expected.insert(expected.end(), data.back().get(), data.back().get() + sizes[r]);
      ASSERT_TRUE(w.Stream(offset, {{SlotWriter::Piece{*head, nullptr, 4096}}}).ok());
      ASSERT_TRUE(w.Stream(offset + 4096, {{SlotWriter::Piece{SlotWriter::kNoSlot,
                                                              data.back().get(),
                                                              static_cast<std::uint32_t>(
                                                                  sizes[r])}}})
                      .ok());
      offset += 4096 + sizes[r];
    }
    ASSERT_TRUE(w.Finish().ok());
  }
  std::vector<std::byte> got(expected.size());
  ASSERT_EQ(pread(fd.get(), got.data(), got.size(), static_cast<off_t>(kStart)),
            static_cast<ssize_t>(got.size()));
  EXPECT_TRUE(got == expected) << "the file holds other bytes than were streamed";

  auto on_unit = [&](std::uint64_t at) { return (at + kPhase) % kUnit == 0; };
  ASSERT_FALSE(shapes.empty());
  std::uint64_t next = kStart;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const IoRing::WriteShape& s = shapes[i];
    EXPECT_EQ(s.offset, next) << "write " << i << " does not continue the run";
    EXPECT_TRUE(i == 0 || on_unit(s.offset)) << "write " << i << " starts inside a unit";
    std::uint64_t at = s.offset;
    for (std::size_t b = 0; b < s.buffers.size(); ++b) {
      at += s.buffers[b];
      const bool last = i + 1 == shapes.size() && b + 1 == s.buffers.size();
      EXPECT_TRUE(last || on_unit(at))
          << "write " << i << " buffer " << b << " ends at " << at << ", inside a unit";
    }
    EXPECT_LE(at - s.offset, SlotWriter::kStreamBytes) << "write " << i;
    next = at;
  }
  EXPECT_EQ(next, offset);
  EXPECT_EQ(counters.written.load(), expected.size());
  // Most bytes went from the caller's memory: only units shared by two records were copied.
  EXPECT_GT(counters.written_direct.load(), expected.size() / 2);
  EXPECT_LT(counters.written_direct.load(), expected.size());
  // Every slot is free again: as many can be taken at once.
  SlotWriter w(**ch);
  for (unsigned i = 0; i < 8; ++i) EXPECT_TRUE(w.Acquire().ok()) << i;
}

INSTANTIATE_TEST_SUITE_P(Io, SlotWriterRunTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "io_uring" : "sync";
                         });

}  // namespace
}  // namespace cxlkv::internal::spill
