// The replay simulator against hand-computed answers: every policy on a 10-request trace,
// prefix semantics, tiers, the workload's chunking and the trace parser's bad-line handling.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <fstream>
#include <string>
#include <vector>

#include "cxlkv/memory_source.h"
#include "cxlkv/store.h"
#include "tests/test_util.h"
#include "tools/cxlkv/demo_chunks.h"
#include "tools/cxlkv/demo_replay.h"
#include "tools/cxlkv/demo_trace.h"
#include "backends/eviction/follow_up_hazard.h"
#include "backends/eviction/shadow_lru.h"
#include "tools/cxlkv/replay_policy.h"
#include "tools/cxlkv/replay_sim.h"
#include "tools/cxlkv/replay_store_policy.h"
#include "tools/cxlkv/replay_synthetic.h"
#include "tools/cxlkv/replay_workload.h"

namespace cxlkv::cli {
namespace {

using internal::FollowUpHazard;
using internal::NextOddsPower;
using internal::ShadowLru;

constexpr std::uint64_t kBlock = kTraceBlockTokens;

// One request per entry: full 512-token blocks with these ids.
std::vector<TraceRequest> Trace(const std::vector<std::vector<std::uint64_t>>& prompts) {
  std::vector<TraceRequest> trace;
  for (const auto& ids : prompts) {
    TraceRequest r;
    r.timestamp_ms = static_cast<double>(trace.size());
    r.input_length = static_cast<std::uint32_t>(ids.size() * kBlock);
    r.hash_ids = ids;
    trace.push_back(r);
  }
  return trace;
}

// One tier of `chunks` whole 512-token chunks (1 byte a token).
SimResult ReplayOneTier(const Workload& w, const std::string& policy, std::uint64_t chunks) {
  SimOptions options;
  options.bytes_per_token = 1;
  options.tiers.push_back({"t0", chunks * kBlock, policy, DemotionAdmission::kAlways});
  Result<SimResult> r = Simulate(w, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : SimResult{};
}

// A B A C A B D A B C, one block each, a cache of two chunks. The hits, worked by hand:
//   lru: requests 3, 5                  fifo: 3
//   lfu: 3, 5, 8 (A's hits keep it)     s3fifo: 3, 5, 8 (B comes back to main through the
//   ghost at 6, but D's arrival at 7 finds A read and B not: B goes, as in the store, which
//   makes room before it stores D)
//   lru-admit2: 5, 8, 9 (stored from the second request on)
//   belady: 3, 5, 6, 8, 9 (C and D are never stored: C's use is farthest, D's never comes)
//   prefix, prefix-chains, prefix-hazard: 3, 5 (single-block prompts: no chains to use, and
//   the classes learn nothing that changes LRU's choices in ten requests)
TEST(ReplaySim, HandComputedHitRatios) {
  constexpr std::uint64_t A = 1, B = 2, C = 3, D = 4;
  const Workload w = BuildWorkload(Trace({{A}, {B}, {A}, {C}, {A}, {B}, {D}, {A}, {B}, {C}}), 512);
  ASSERT_EQ(w.chunks(), 4u);
  const std::vector<std::pair<std::string, int>> expected = {
      {"lru", 2}, {"fifo", 1}, {"lfu", 3}, {"s3fifo", 3}, {"lru-admit2", 3},
      {"prefix-chains", 2}, {"belady", 5}, {"prefix", 2}, {"prefix-hazard", 2}};
  for (const auto& [policy, hits] : expected) {
    const SimResult r = ReplayOneTier(w, policy, 2);
    EXPECT_EQ(r.hit_tokens, hits * kBlock) << policy;
    EXPECT_EQ(r.hit_chunks, static_cast<std::uint64_t>(hits)) << policy;
    EXPECT_DOUBLE_EQ(r.HitRatio(), hits / 10.0) << policy;
    EXPECT_EQ(r.tiers[0].bytes_read, hits * kBlock) << policy;
  }
  EXPECT_EQ(SimPolicyNames().size(), expected.size());
  // A cache that never evicts: every repeat hits (A x3, B x2, C x1).
  EXPECT_DOUBLE_EQ(UnboundedHitRatio(w), 0.6);
  EXPECT_DOUBLE_EQ(ReplayOneTier(w, "lru", 100).HitRatio(), 0.6);
}

// [1 2 3], [4], [1 2 3] in three chunks' room. LRU evicts chunk 1 (the head, least recent)
// for 4, so the third request misses at once: chunks 2 and 3 are still cached but come after
// a miss, and a hit after a miss is no hit. The prefix-aware policy evicts the tail (3) and
// keeps the usable prefix 1 2.
TEST(ReplaySim, HitAfterMissDoesNotCountAndTailGoesFirst) {
  const Workload w = BuildWorkload(Trace({{1, 2, 3}, {4}, {1, 2, 3}}), 512);
  const SimResult lru = ReplayOneTier(w, "lru", 3);
  EXPECT_EQ(lru.hit_tokens, 0u);
  EXPECT_EQ(lru.lookups, 7u);
  const SimResult prefix = ReplayOneTier(w, "prefix", 3);
  EXPECT_EQ(prefix.hit_tokens, 2 * kBlock);
  EXPECT_DOUBLE_EQ(UnboundedHitRatio(w), 3.0 / 7.0);
}

// The prefix policy does not store what cannot be a hit: a partial last block, or a chunk
// behind one it did not store. Dropping a chunk drops its cached successors.
TEST(ReplaySim, PrefixPolicySkipsUnreachableAndDropsOrphans) {
  std::vector<TraceRequest> trace = Trace({{1, 2}, {1, 2}});
  trace[0].input_length = 2 * kBlock - 100;  // block 2 is partial
  trace[1].input_length = 2 * kBlock - 100;
  const Workload w = BuildWorkload(trace, 512);
  const SimResult prefix = ReplayOneTier(w, "prefix", 10);
  EXPECT_EQ(prefix.not_admitted, 2u);  // block 2, twice
  EXPECT_EQ(prefix.hit_tokens, kBlock);
  const SimResult lru = ReplayOneTier(w, "lru", 10);
  EXPECT_EQ(lru.hit_tokens, 2 * kBlock - 100);

  // [1 2 3] in room for two: 3 is admitted (2 is stored), then making room for it evicts the
  // least recent chunk, 1, the head of the chain, and 2 goes with it (an orphan: never a hit
  // without 1). 3 is stored after that, as the store does it (room is made after admission).
  const Workload chain = BuildWorkload(Trace({{1, 2, 3}, {1}}), 512);
  const SimResult r = ReplayOneTier(chain, "prefix", 2);
  EXPECT_EQ(r.dropped_orphans, 1u);
  EXPECT_EQ(r.tiers[0].evictions, 1u);
  EXPECT_EQ(r.hit_tokens, 0u);
  EXPECT_EQ(ReplayOneTier(chain, "lru", 2).dropped_orphans, 0u);  // LRU keeps the orphan
}

// The follow-up hazard by hand. Four units of class 0 start idle at t = 0 s; unit 0 is
// followed up at 3 s (bucket [2, 4) s). At risk: 4 units in [0, 1), [1, 2) and [2, 4), then the
// 3 never followed in [4, 8) and [8, 16); followed: 1 in [2, 4). So class 0's hazard is 1/4 in
// [2, 4) s and 0 elsewhere; class 1 has no units and takes the pooled hazard, the same.
TEST(ReplayHazard, KaplanMeierByIdleTime) {
  FollowUpHazard h(2);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(h.AddUnit(0, 0), static_cast<FollowUpHazard::UnitId>(i));
  h.Advance(2.5);
  h.FollowUp(0, 3);
  h.FollowUp(0, 5);  // only the first follow-up counts
  h.Advance(10);
  h.Refresh();
  for (std::size_t b = 0; b < 6; ++b) {
    EXPECT_DOUBLE_EQ(h.Hazard(0, b), b == 2 ? 0.25 : 0.0) << b;
    EXPECT_DOUBLE_EQ(h.Hazard(1, b), b == 2 ? 0.25 : 0.0) << b;
  }
  EXPECT_EQ(FollowUpHazard::Bucket(0.5), 0u);
  EXPECT_EQ(FollowUpHazard::Bucket(3), 2u);
  EXPECT_DOUBLE_EQ(FollowUpHazard::Lower(3), 4.0);
  // Fresh: a 1 in 4 chance within 4 s; idle 2 s, within 1 s: half the bucket, so
  // 1 - sqrt(3/4) (the hazard is spread evenly over the bucket); idle 4 s: nothing left.
  EXPECT_NEAR(h.ReturnWithin(0, 0, 4), 0.25, 1e-12);
  EXPECT_NEAR(h.ReturnWithin(0, 2, 1), 1 - std::sqrt(0.75), 1e-12);
  EXPECT_NEAR(h.ReturnWithin(0, 4, 100), 0.0, 1e-12);
  h.Fade(0.5);  // halves every count: the ratios, so the hazards, stay
  h.Refresh();
  EXPECT_DOUBLE_EQ(h.Hazard(0, 2), 0.25);
}

// prefix-hazard's LRU shadow in room for two 512-byte chunks: [1 2] stores both; [1 2] hits
// both; [3] evicts 1 (the least recent); [1 2] misses at once (1 is gone), so 2, cached, is no
// hit; storing 1 evicts 2, and storing 2 again evicts 3.
TEST(ReplayShadow, LruShadowAndOddsWeight) {
  ShadowLru shadow;
  for (std::uint32_t c = 1; c <= 3; ++c) shadow.SetBytes(c, kBlock);
  const std::vector<std::uint32_t> one_two = {1, 2};
  const std::vector<std::uint32_t> three = {3};
  const std::uint64_t room = 2 * kBlock;
  EXPECT_EQ(shadow.Request(one_two, room), 0u);
  EXPECT_EQ(shadow.Request(one_two, room), 2 * kBlock);
  EXPECT_EQ(shadow.Request(three, room), 0u);
  EXPECT_FALSE(shadow.contains(1));
  EXPECT_EQ(shadow.Request(one_two, room), 0u);
  EXPECT_TRUE(shadow.contains(1));
  EXPECT_TRUE(shadow.contains(2));
  EXPECT_FALSE(shadow.contains(3));

  // A quarter step towards plain recency when the policy hit less than the shadow, towards
  // the full odds when it hit as much or more; clamped to [0, 1].
  EXPECT_DOUBLE_EQ(NextOddsPower(1, 10, 20), 0.75);
  EXPECT_DOUBLE_EQ(NextOddsPower(0.25, 10, 20), 0.0);
  EXPECT_DOUBLE_EQ(NextOddsPower(0, 10, 20), 0.0);
  EXPECT_DOUBLE_EQ(NextOddsPower(0.75, 20, 20), 1.0);
  EXPECT_DOUBLE_EQ(NextOddsPower(1, 30, 20), 1.0);
}

// A lower tier takes what the first evicts; a hit there counts for it and moves the chunk up.
TEST(ReplaySim, TwoTiersDemoteAndPromote) {
  const Workload w = BuildWorkload(Trace({{1}, {2}, {1}}), 512);
  SimOptions options;
  options.bytes_per_token = 2;
  options.tiers.push_back({"dram", 1 * kBlock * 2, "lru", DemotionAdmission::kAlways});
  options.tiers.push_back({"spill", 2 * kBlock * 2, "lru", DemotionAdmission::kAlways});
  Result<SimResult> r = Simulate(w, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->hit_tokens, kBlock);
  EXPECT_EQ(r->tiers[0].hit_tokens, 0u);
  EXPECT_EQ(r->tiers[1].hit_tokens, kBlock);
  EXPECT_EQ(r->tiers[1].bytes_read, kBlock * 2);
  EXPECT_EQ(r->tiers[0].bytes_written, 3 * kBlock * 2);  // 1, 2, 1 promoted
  EXPECT_EQ(r->tiers[1].bytes_written, 2 * kBlock * 2);  // 1 demoted, then 2 for the promotion
  EXPECT_EQ(r->tiers[1].demoted_in, 2u);

  // Frequency admission: the spill tier takes a chunk only at its second eviction.
  options.tiers[1].admission = DemotionAdmission::kSecond;
  r = Simulate(w, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_tokens, 0u);
  EXPECT_EQ(r->tiers[1].demoted_in, 0u);
}

// One policy family: the simulator runs the store's own policies, so a simulated replay and a
// real one (every byte through a Store of one DRAM tier that evicts on Put) hit the same
// chunks for each of them. Prompts are whole blocks, so every chunk is a full 64 KiB slot of
// its exact size class, and the store gets one slab beyond the simulator's chunk bytes for the
// chunks' headers: both then hold the same number of chunks and must agree exactly. The prefix
// policies learn the chains from LongestPrefix, decline chunks in Put and drop orphans through
// the store; the store's clock shows each request's trace time, as the simulator's does.
// The prefix policies get the trace's prompts as they are, partial last chunks included: they
// decline those (smaller than the chunks before), so the store holds full chunks only, as for
// the others, which get whole blocks (a partial chunk would sit in another size class, whose
// room the simulator's byte count does not model).
TEST(ReplaySim, SimulatedAndRealReplayAgreeForEveryStorePolicy) {
  const ModelPreset model{"tiny", 1, 1, 64, 2, ""};  // 256 bytes a token
  const std::vector<TraceRequest> partial = GenerateSyntheticTrace(/*seed=*/7, /*requests=*/400);
  std::vector<TraceRequest> whole = partial;
  for (TraceRequest& r : whole) {
    r.input_length = static_cast<std::uint32_t>(r.hash_ids.size() * kBlock);
  }
  const Workload whole_w = BuildWorkload(whole, kDefaultChunkTokens);
  const Workload partial_w = BuildWorkload(partial, kDefaultChunkTokens);
  ASSERT_NE(whole_w.prompt_tokens, partial_w.prompt_tokens);  // there are partial chunks
  const std::uint64_t bpt = model.BytesPerToken();
  const std::size_t slab = std::size_t{4} << 20;
  const std::uint64_t sim_capacity = whole_w.unique_tokens * bpt / 8 / slab * slab;
  ASSERT_GT(sim_capacity, 0u);

  std::map<std::string, std::uint64_t> hits;  // by policy, for the check below
  for (const char* policy :
       {"lru", "fifo", "lfu", "s3fifo", "prefix-chains", "prefix", "prefix-hazard"}) {
    const bool prefix_policy = std::string_view(policy).starts_with("prefix");
    const Workload& w = prefix_policy ? partial_w : whole_w;
    const std::vector<TraceRequest>& trace = prefix_policy ? partial : whole;
    SimOptions sim;
    sim.bytes_per_token = bpt;
    sim.tiers.push_back({"t0", sim_capacity, policy, DemotionAdmission::kAlways});
    Result<SimResult> simulated = Simulate(w, sim);
    ASSERT_TRUE(simulated.ok()) << simulated.status().ToString();

    StoreOptions options;
    options.chunk_sizes = {std::size_t{kDefaultChunkTokens} * bpt};
    options.slab_size = slab;
    options.background_thread = false;  // evictions on Put only, as the simulator makes room
    std::chrono::nanoseconds now{0};
    options.clock = [&now] { return now; };
    TierOptions tier;
    tier.name = "t0";
    tier.source = MemorySource::Dram(DramOptions{});
    tier.capacity = sim_capacity + slab;  // the headers' slab
    tier.eviction = policy;
    options.tiers.push_back(std::move(tier));
    Result<std::unique_ptr<Store>> store = Store::Open(std::move(options));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ReplayOptions replay;
    replay.model = &model;
    replay.before_request = [&now](double ms) { now = TraceClock(ms); };
    Result<ReplayResult> real = Replay(**store, trace, replay);
    ASSERT_TRUE(real.ok()) << real.status().ToString();
    ASSERT_EQ(real->failed, 0u);
    ASSERT_EQ(real->lookups, simulated->lookups);
    EXPECT_EQ(real->hits, simulated->hit_chunks) << policy;
    EXPECT_EQ((*store)->Stats().tiers[0].evictions, simulated->tiers[0].evictions) << policy;
    hits[policy] = simulated->hit_chunks;
  }
  // The policies differ on this trace, so agreeing policy by policy means something.
  EXPECT_NE(hits["lru"], hits["fifo"]);
  EXPECT_NE(hits["lfu"], hits["s3fifo"]);
  EXPECT_NE(hits["lru"], hits["prefix-chains"]);
  EXPECT_NE(hits["prefix-chains"], hits["prefix"]);
  EXPECT_NE(hits["prefix"], hits["prefix-hazard"]);
}

TEST(ReplaySim, RejectsBadOptions) {
  const Workload w = BuildWorkload(Trace({{1}}), 512);
  SimOptions options;
  options.bytes_per_token = 1;
  EXPECT_FALSE(Simulate(w, options).ok());  // no tier
  options.tiers.push_back({"t0", kBlock, "mru", DemotionAdmission::kAlways});
  const Result<SimResult> r = Simulate(w, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown eviction policy \"mru\""), std::string::npos);
}

// 700 tokens in 256-token chunks: block 1 gives two full chunks, block 2 (188 tokens) one
// partial chunk; next uses point at the next request's same chunk.
TEST(ReplayWorkload, ChunksKeepPrefixIdentity) {
  std::vector<TraceRequest> trace = Trace({{7, 8}, {7, 8}});
  trace[0].input_length = 700;
  trace[1].input_length = 1024;  // block 8 full here: other chunks than the partial one
  const Workload w = BuildWorkload(trace, 256);
  ASSERT_EQ(w.accesses.size(), 3u + 4u);
  EXPECT_EQ(w.chunks(), 3u + 2u);
  EXPECT_EQ(w.tokens[w.accesses[2]], 188u);
  EXPECT_EQ(w.in_partial_last_block[2], 1);
  EXPECT_EQ(w.in_partial_last_block[1], 0);
  EXPECT_EQ(w.next_use[0], 3u);
  EXPECT_EQ(w.next_use[2], kNeverUsedAgain);
  EXPECT_EQ(w.predecessor[w.accesses[1]], w.accesses[0]);
  EXPECT_EQ(w.predecessor[w.accesses[0]], kNoChunk);
  EXPECT_EQ(w.unique_tokens, 256u * 2 + 188 + 256 * 2);
}

void WriteLines(const std::string& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const std::string& line : lines) out << line << "\n";
}

TEST(ReplayTrace, BadLinesStopOrAreSkipped) {
  cxlkv::testing::TempDir dir;
  const std::string path = dir.File("t.jsonl");
  WriteLines(path, {
      R"({"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]})",
      R"({"timestamp": 1, "input_length": 600, "output_len)",
      "",
      R"({"timestamp": 2, "input_length": 600, "output_length": 5, "hash_ids": [1]})",
      R"({"timestamp": 3, "input_length": 512, "output_length": 5, "hash_ids": [1]})",
  });
  const Result<LoadedTrace> stop = LoadTraceWith(path, {});
  ASSERT_FALSE(stop.ok());
  EXPECT_NE(stop.status().message().find("line 2: not valid JSON"), std::string::npos)
      << stop.status().ToString();

  TraceLoadOptions skip;
  skip.skip_bad_lines = true;
  const Result<LoadedTrace> loaded = LoadTraceWith(path, skip);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->requests.size(), 2u);
  EXPECT_EQ(loaded->skipped_lines, 2u);
  ASSERT_EQ(loaded->skipped_messages.size(), 2u);
  EXPECT_NE(loaded->skipped_messages[0].find("line 2"), std::string::npos);
  EXPECT_NE(loaded->skipped_messages[1].find("line 4: \"hash_ids\" has 1 ids"), std::string::npos)
      << loaded->skipped_messages[1];

  WriteLines(path, {"not json"});
  EXPECT_FALSE(LoadTraceWith(path, skip).ok());  // nothing good left: still an error
}

TEST(ReplaySynthetic, SessionTraceIsDeterministicAndWellFormed) {
  const std::vector<TraceRequest> a = GenerateSessionTrace(3, 500);
  const std::vector<TraceRequest> b = GenerateSessionTrace(3, 500);
  const std::vector<TraceRequest> c = GenerateSessionTrace(4, 500);
  ASSERT_EQ(a.size(), 500u);
  bool differs = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].hash_ids, b[i].hash_ids);
    EXPECT_EQ(a[i].hash_ids.size(), (a[i].input_length + kBlock - 1) / kBlock);
    if (i > 0) {
      EXPECT_GE(a[i].timestamp_ms, a[i - 1].timestamp_ms);
    }
    differs = differs || a[i].hash_ids != c[i].hash_ids;
  }
  EXPECT_TRUE(differs);
  // It has reuse for a cache to find, and not all of it.
  const double unbounded = UnboundedHitRatio(BuildWorkload(a, 256));
  EXPECT_GT(unbounded, 0.1);
  EXPECT_LT(unbounded, 0.9);
}

}  // namespace
}  // namespace cxlkv::cli
