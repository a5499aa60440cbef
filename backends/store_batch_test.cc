// Batched gets and puts: one completion per request, every byte checked, errors per request,
// the eventfd readable exactly while completions wait, and shutdown completing what was queued.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/uio.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "backends/store_test_util.h"

namespace cxlkv {
namespace {

using namespace store_testing;  // NOLINT(google-build-using-namespace): test helpers

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

std::unique_ptr<CompletionQueue> NewQueue() {
  auto cq = CompletionQueue::Create();
  EXPECT_TRUE(cq.ok()) << cq.status().ToString();
  return cq.ok() ? std::move(cq).value() : nullptr;
}

std::vector<Completion> WaitFor(CompletionQueue& cq, std::size_t n) {
  std::vector<Completion> out(n + 1);
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got < n && std::chrono::steady_clock::now() < deadline) {
    got += cq.Wait(std::span(out).subspan(got), n - got, std::chrono::milliseconds(100));
  }
  out.resize(got);
  return out;
}

TEST(StoreBatchTest, OrderedGetsCompleteOncePerRequestWithEveryByte) {
  StoreOptions o;
  o.tiers.push_back(Dram(std::size_t{24} << 20));
  o.slab_size = std::size_t{1} << 20;  // slots up to 16 MiB
  o.copy_threads = 2;
  auto opened = Store::Open(std::move(o));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Store> s = std::move(opened).value();
  // Sizes around the 1 MiB stripe, and one of 3 MiB + 1 that three threads' stripes share.
  const std::size_t sizes[] = {1, kChunk, 1024 * kKiB, 1024 * kKiB + 1, 3 * 1024 * kKiB + 1,
                               700 * kKiB};
  constexpr int kN = 6;
  for (int i = 0; i < kN; ++i) {
    ChunkMeta meta;
    meta.size = 3;
    meta.bytes[0] = static_cast<std::byte>(i);
    ASSERT_TRUE(s->Put(Key(i), Bytes(sizes[i], Seed(i)), meta).ok());
  }
  auto cq = NewQueue();
  ASSERT_NE(cq, nullptr);
  EXPECT_FALSE(Readable(cq->eventfd()));

  std::vector<std::vector<std::byte>> dst(kN + 2);
  std::vector<ChunkMeta> metas(kN + 2);
  std::vector<std::string> keys;
  std::vector<GetRequest> reqs;
  for (int i = 0; i < kN; ++i) {
    dst[i].resize(sizes[i]);
    keys.push_back(Key(i));
  }
  keys.push_back("absent");
  dst[kN].resize(10);
  keys.push_back(Key(2));   // into a buffer one byte short
  dst[kN + 1].resize(sizes[2] - 1);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    reqs.push_back(GetRequest{keys[i], dst[i], &metas[i], 100 + i});
  }
  ASSERT_TRUE(s->SubmitGets(reqs, *cq).ok());
  std::vector<Completion> done = WaitFor(*cq, reqs.size());
  ASSERT_EQ(done.size(), reqs.size());
  EXPECT_FALSE(Readable(cq->eventfd()));  // drained
  std::map<std::uint64_t, const Completion*> by_id;
  for (const Completion& c : done) {
    EXPECT_TRUE(by_id.emplace(c.user_data, &c).second) << "two completions for " << c.user_data;
  }
  for (int i = 0; i < kN; ++i) {
    const Completion& c = *by_id.at(100 + static_cast<std::uint64_t>(i));
    ASSERT_TRUE(c.status.ok()) << c.status.ToString();
    EXPECT_EQ(c.size, sizes[i]);
    EXPECT_EQ(testing::FirstPatternMismatch(dst[i].data(), sizes[i], Seed(i)), -1) << i;
    EXPECT_EQ(metas[i].size, 3);
    EXPECT_EQ(metas[i].bytes[0], static_cast<std::byte>(i));
  }
  EXPECT_TRUE(by_id.at(100 + kN)->status.IsNotFound());
  EXPECT_TRUE(by_id.at(100 + kN + 1)->status.IsInvalidArgument());
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.batch_get_latency.count, static_cast<std::uint64_t>(kN));
  EXPECT_EQ(st.tiers[0].hits, static_cast<std::uint64_t>(kN));
  EXPECT_EQ(st.misses, 1u);
}

TEST(StoreBatchTest, EventfdIsReadableWhileCompletionsWait) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(8)));
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  PutChunk(*s, 1);
  auto cq = NewQueue();
  ASSERT_NE(cq, nullptr);
  std::vector<std::byte> a(kChunk), b(kChunk);
  const std::string key = Key(1);
  const GetRequest reqs[] = {{key, a, nullptr, 1}, {key, b, nullptr, 2}};
  ASSERT_TRUE(s->SubmitGets(reqs, *cq).ok());
  pollfd p{cq->eventfd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);  // an event loop wakes
  while (cq->pending() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Completion one[1];
  EXPECT_EQ(cq->Poll(one), 1u);
  EXPECT_TRUE(Readable(cq->eventfd()));  // one still waiting
  EXPECT_EQ(cq->Poll(one), 1u);
  EXPECT_FALSE(Readable(cq->eventfd()));
  EXPECT_EQ(cq->Poll(one), 0u);
  EXPECT_EQ(cq->Wait(one, 1, std::chrono::milliseconds(20)), 0u);  // times out empty
  EXPECT_EQ(testing::FirstPatternMismatch(a.data(), kChunk, Seed(1)), -1);
  EXPECT_EQ(testing::FirstPatternMismatch(b.data(), kChunk, Seed(1)), -1);
}

TEST(StoreBatchTest, PutsGatherPartsAndReportEachStatus) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(16)));
  auto s = OpenStore(std::move(o));
  ASSERT_NE(s, nullptr);
  auto cq = NewQueue();
  ASSERT_NE(cq, nullptr);
  const std::vector<std::byte> whole = Bytes(3 * 5000 + 7, 42);
  const iovec parts[] = {{const_cast<std::byte*>(whole.data()), 5000},
                         {const_cast<std::byte*>(whole.data() + 5000), 0},
                         {const_cast<std::byte*>(whole.data() + 5000), 10007}};
  const std::vector<std::byte> plain = Bytes(kChunk, 43);
  PutRequest reqs[3];
  reqs[0].key = "gathered";
  reqs[0].parts = parts;
  reqs[0].user_data = 1;
  reqs[1].key = "plain";
  reqs[1].bytes = plain;
  reqs[1].user_data = 2;
  reqs[2].key = "";  // bad key
  reqs[2].bytes = plain;
  reqs[2].user_data = 3;
  ASSERT_TRUE(s->SubmitPuts(reqs, *cq).ok());
  std::vector<Completion> done = WaitFor(*cq, 3);
  ASSERT_EQ(done.size(), 3u);
  std::sort(done.begin(), done.end(),
            [](const Completion& x, const Completion& y) { return x.user_data < y.user_data; });
  EXPECT_TRUE(done[0].status.ok()) << done[0].status.ToString();
  EXPECT_EQ(done[0].size, whole.size());
  EXPECT_TRUE(done[1].status.ok());
  EXPECT_TRUE(done[2].status.IsInvalidArgument());
  std::vector<std::byte> dst(whole.size());
  ASSERT_TRUE(s->Get("gathered", dst).ok());
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), dst.size(), 42), -1);
  // The synchronous iovec Put is the same path.
  ASSERT_TRUE(s->Put("sync-gathered", std::span<const iovec>(parts)).ok());
  ASSERT_TRUE(s->Get("sync-gathered", dst).ok());
  EXPECT_EQ(testing::FirstPatternMismatch(dst.data(), dst.size(), 42), -1);
  const iovec null_part[] = {{nullptr, 10}};
  EXPECT_TRUE(s->Put("null", std::span<const iovec>(null_part)).IsInvalidArgument());
}

TEST(StoreBatchTest, DestroyingTheStoreCompletesEverythingSubmitted) {
  auto cq = NewQueue();
  ASSERT_NE(cq, nullptr);
  constexpr int kN = 64;
  std::vector<std::vector<std::byte>> dst(kN, std::vector<std::byte>(kChunk));
  {
    StoreOptions o;
    o.tiers.push_back(Dram(Slabs(32)));
    o.copy_threads = 1;
    auto s = OpenStore(std::move(o));
    ASSERT_NE(s, nullptr);
    for (int i = 0; i < kN; ++i) PutChunk(*s, i);
    std::vector<std::string> keys;
    for (int i = 0; i < kN; ++i) keys.push_back(Key(i));
    std::vector<GetRequest> reqs;
    for (int i = 0; i < kN; ++i) {
      reqs.push_back(GetRequest{keys[i], dst[i], nullptr, static_cast<std::uint64_t>(i)});
    }
    ASSERT_TRUE(s->SubmitGets(reqs, *cq).ok());
  }  // ~Store runs while copies may still be queued
  EXPECT_EQ(cq->pending(), static_cast<std::size_t>(kN));
  std::vector<Completion> done = WaitFor(*cq, kN);
  ASSERT_EQ(done.size(), static_cast<std::size_t>(kN));
  for (const Completion& c : done) {
    ASSERT_TRUE(c.status.ok());
    const int i = static_cast<int>(c.user_data);
    EXPECT_EQ(testing::FirstPatternMismatch(dst[i].data(), kChunk, Seed(i)), -1) << i;
  }
}

TEST(StoreBatchTest, ZeroCopyThreadsIsInvalidArgument) {
  StoreOptions o;
  o.tiers.push_back(Dram(Slabs(4)));
  o.slab_size = kSlab;
  o.copy_threads = 0;
  EXPECT_TRUE(Store::Open(std::move(o)).status().IsInvalidArgument());
}

}  // namespace
}  // namespace cxlkv
