// Replaying a request trace against a Store the way LMCache drives its storage backend: per
// request, find the longest cached prefix of the prompt's chunks, read those chunks back (and
// check every byte), then store the chunks that were missing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cxlkv/status.h"
#include "cxlkv/store.h"
#include "tools/cxlkv/demo_chunks.h"
#include "tools/cxlkv/demo_trace.h"

namespace cxlkv::cli {

struct ReplayOptions {
  const ModelPreset* model = nullptr;
  std::uint32_t chunk_tokens = kDefaultChunkTokens;
  // Wait for each request's trace timestamp (scaled by 1/speed, from the first request) before
  // replaying it; 0 replays back to back.
  double timestamp_speed = 0;
  // Test hook: flips one byte of the first chunk read back, before it is checked, so a test can
  // see that a bad read fails the run.
  bool corrupt_first_read = false;
  // Test hook: called with each request's trace timestamp before its lookup, so that a store
  // opened with a clock the caller controls sees trace time (the prefix policies learn from it).
  std::function<void(double timestamp_ms)> before_request;
};

// The gets one tier served.
struct TierReads {
  std::uint64_t chunks = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;             // inside Store::Get
  std::vector<double> gbps_each;  // per Get
};

struct ReplayResult {
  std::uint64_t requests = 0;
  std::uint64_t min_prompt_tokens = 0;
  std::uint64_t max_prompt_tokens = 0;
  std::uint64_t total_prompt_tokens = 0;
  double first_timestamp_ms = 0;  // the stretch of trace time replayed
  double last_timestamp_ms = 0;

  std::uint64_t lookups = 0;  // chunks of all prompts
  std::uint64_t hits = 0;     // chunks of the cached prefixes, read back with Get
  std::uint64_t misses = 0;   // lookups - hits
  // Hits a cache that never evicts would have had: the trace's own reuse, the ceiling for
  // any capacity and policy.
  std::uint64_t unbounded_hits = 0;
  std::uint64_t verified = 0;  // hits whose size and every byte matched what was put
  std::uint64_t failed = 0;    // hits that did not (or whose Get failed)
  std::uint64_t bytes_read = 0;
  std::uint64_t chunks_written = 0;
  std::uint64_t bytes_written = 0;
  // Misses still stored, behind an evicted chunk of their prefix: not prefix hits (the engine
  // cannot use them), and not put again either (write once).
  std::uint64_t already_stored = 0;

  std::vector<TierReads> tier_reads;  // by tier index, for the per-tier read rates
  double get_seconds = 0;     // inside Store::Get
  std::vector<double> get_gbps_each;  // per Get
  double put_seconds = 0;     // inside Store::Put, including the demotions it ran
  double replay_seconds = 0;  // the whole loop, with generating and checking bytes
  // The baseline: a memcpy of the same bytes right after each Get. Rates are kept per copy
  // (and per Get above) because a run's few dozen gets last milliseconds in all, so one
  // preemption by the kernel's writeback of the file tier would skew a total: the report
  // takes medians.
  std::uint64_t memcpy_bytes = 0;
  std::vector<double> memcpy_gbps_each;    // per copy
  std::vector<double> get_vs_memcpy_each;  // per Get: memcpy time / Get time, same bytes
};

// InvalidArgument/NoSpace/... from a Put that failed (with the key), or the error of mapping
// the memcpy baseline's buffer; a bad read is not an error here but counted in `failed`, and
// its first few are printed to stderr.
Result<ReplayResult> Replay(Store& store, std::span<const TraceRequest> trace,
                            const ReplayOptions& options);

// Decimal gigabytes per second; 0 when nothing was timed.
double GigabytesPerSecond(std::uint64_t bytes, double seconds);

}  // namespace cxlkv::cli
