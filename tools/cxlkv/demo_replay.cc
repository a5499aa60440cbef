#include "tools/cxlkv/demo_replay.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cxlkv/memory_source.h"

namespace cxlkv::cli {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Enough to see what went wrong without flooding the terminal when everything does.
constexpr std::uint64_t kFailuresPrinted = 5;

void ReportBadRead(std::uint64_t failed_so_far, const std::string& message) {
  if (failed_so_far < kFailuresPrinted) {
    std::fprintf(stderr, "cxlkv demo: %s\n", message.c_str());
  }
}

// Keeps the compiler from proving a copy's destination dead and dropping the copy.
void DoNotOptimize(const void* p) { asm volatile("" : : "g"(p) : "memory"); }

// The baseline for the gets: after each Get, the same number of bytes is copied into the
// same buffer from a ring of chunk-sized sources in the same kind of memory as the DRAM tier
// (THP, faulted in up front, larger than the last-level cache). Interleaved, the copies see
// what the gets see (the kernel's writeback of the file tier competes for the two cores), so
// the ratio shows what the store adds, not how busy the machine was.
class MemcpyBaseline {
 public:
  static Result<MemcpyBaseline> Create(std::size_t chunk_bytes) {
    constexpr std::size_t kMinRing = std::size_t{64} << 20;
    MemcpyBaseline b;
    b.chunk_bytes_ = chunk_bytes;
    b.slots_ = std::max<std::size_t>(2, (kMinRing + chunk_bytes - 1) / chunk_bytes);
    DramOptions dram;
    dram.huge_pages = HugePages::kTransparent;
    dram.populate = true;
    CXLKV_ASSIGN_OR_RETURN(b.ring_, MemorySource::Dram(dram)->Map(b.slots_ * chunk_bytes));
    FillChunkBytes("memcpy baseline", std::span(b.ring_->data(), b.slots_ * chunk_bytes));
    return b;
  }

  // Copies as many bytes as `dst` holds, as the Get that took `get_seconds` did, and records
  // the pair.
  void Copy(std::span<std::byte> dst, double get_seconds, ReplayResult* r) {
    const std::byte* source = ring_->data() + next_slot_ * chunk_bytes_;
    next_slot_ = (next_slot_ + 1) % slots_;
    const Clock::time_point start = Clock::now();
    std::memcpy(dst.data(), source, dst.size());
    DoNotOptimize(dst.data());
    const double seconds = SecondsSince(start);
    r->memcpy_bytes += dst.size();
    r->memcpy_gbps_each.push_back(GigabytesPerSecond(dst.size(), seconds));
    if (get_seconds > 0) r->get_vs_memcpy_each.push_back(seconds / get_seconds);
  }

 private:
  MemcpyBaseline() = default;
  std::size_t chunk_bytes_ = 0;
  std::size_t slots_ = 0;
  std::size_t next_slot_ = 0;
  std::unique_ptr<MemoryRegion> ring_;
};

}  // namespace

double GigabytesPerSecond(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0;
}

Result<ReplayResult> Replay(Store& store, std::span<const TraceRequest> trace,
                            const ReplayOptions& options) {
  const ModelPreset& model = *options.model;
  const std::size_t full_chunk = options.chunk_tokens * model.BytesPerToken();
  // One buffer for reads, as an engine reads a chunk into its staging area before the GPU
  // copy; one for the bytes of chunks to put.
  std::vector<std::byte> read_buffer(full_chunk);
  std::vector<std::byte> put_buffer(full_chunk);
  std::unordered_set<std::string> ever_stored;  // for the unbounded cache's hits
  bool corrupt_next = options.corrupt_first_read;
  CXLKV_ASSIGN_OR_RETURN(MemcpyBaseline baseline, MemcpyBaseline::Create(full_chunk));

  // Which tier served a Get: the one whose hit count moved (one thread, so exactly one).
  std::vector<std::uint64_t> tier_hits;
  for (const TierStats& t : store.Stats().tiers) tier_hits.push_back(t.hits);
  auto served_by = [&]() -> std::size_t {
    const StoreStats stats = store.Stats();
    for (std::size_t t = 0; t < stats.tiers.size(); ++t) {
      if (stats.tiers[t].hits != tier_hits[t]) {
        tier_hits[t] = stats.tiers[t].hits;
        return t;
      }
    }
    return 0;  // unreachable: the Get succeeded, so some tier counted it
  };

  ReplayResult r;
  r.tier_reads.resize(tier_hits.size());
  r.min_prompt_tokens = UINT64_MAX;
  r.first_timestamp_ms = trace.empty() ? 0 : trace.front().timestamp_ms;
  const Clock::time_point replay_start = Clock::now();
  for (const TraceRequest& request : trace) {
    ++r.requests;
    r.min_prompt_tokens = std::min<std::uint64_t>(r.min_prompt_tokens, request.input_length);
    r.max_prompt_tokens = std::max<std::uint64_t>(r.max_prompt_tokens, request.input_length);
    r.total_prompt_tokens += request.input_length;
    r.last_timestamp_ms = request.timestamp_ms;
    if (options.timestamp_speed > 0) {
      const double due_s =
          (request.timestamp_ms - r.first_timestamp_ms) / 1000.0 / options.timestamp_speed;
      const double wait_s = due_s - SecondsSince(replay_start);
      if (wait_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
    }

    const std::vector<ChunkRef> chunks = RequestChunks(request, model, options.chunk_tokens);
    std::vector<std::string_view> keys;
    keys.reserve(chunks.size());
    for (const ChunkRef& chunk : chunks) keys.emplace_back(chunk.key);
    if (options.before_request) options.before_request(request.timestamp_ms);
    const std::size_t prefix = store.LongestPrefix(keys);
    r.lookups += chunks.size();
    r.hits += prefix;
    r.misses += chunks.size() - prefix;

    std::size_t unbounded = 0;
    while (unbounded < chunks.size() && ever_stored.contains(chunks[unbounded].key)) ++unbounded;
    r.unbounded_hits += unbounded;

    for (std::size_t i = 0; i < prefix; ++i) {
      const ChunkRef& chunk = chunks[i];
      const Clock::time_point start = Clock::now();
      Result<std::size_t> got = store.Get(chunk.key, read_buffer);
      const double seconds = SecondsSince(start);
      r.get_seconds += seconds;
      if (!got.ok()) {  // LongestPrefix saw it and nothing ran since: the store lost it
        ReportBadRead(r.failed++, "Get of a chunk of the cached prefix failed: " +
                                      got.status().ToString());
        continue;
      }
      r.bytes_read += *got;
      TierReads& reads = r.tier_reads[served_by()];
      ++reads.chunks;
      reads.bytes += *got;
      reads.seconds += seconds;
      reads.gbps_each.push_back(GigabytesPerSecond(*got, seconds));
      r.get_gbps_each.push_back(reads.gbps_each.back());
      if (corrupt_next) {
        read_buffer[*got / 2] ^= std::byte{0x01};
        corrupt_next = false;
      }
      const std::span<const std::byte> bytes(read_buffer.data(), *got);
      if (*got != chunk.bytes) {
        ReportBadRead(r.failed++, "chunk " + chunk.key + " read back " + std::to_string(*got) +
                                      " bytes, put " + std::to_string(chunk.bytes));
      } else if (const std::size_t bad = FirstMismatch(chunk.key, bytes); bad != *got) {
        ReportBadRead(r.failed++, "chunk " + chunk.key + " read back differs from what was put "
                                      "at byte " + std::to_string(bad) + " of " +
                                      std::to_string(*got));
      } else {
        ++r.verified;
      }
      // After the check, into the same buffer, so that the copy, like the Get, writes to a
      // buffer that was just used.
      baseline.Copy(std::span(read_buffer.data(), *got), seconds, &r);
    }

    for (std::size_t i = prefix; i < chunks.size(); ++i) {
      const ChunkRef& chunk = chunks[i];
      ever_stored.insert(chunk.key);
      if (store.Contains(chunk.key)) {
        ++r.already_stored;
        continue;
      }
      const std::span<std::byte> bytes(put_buffer.data(), chunk.bytes);
      FillChunkBytes(chunk.key, bytes);
      const Clock::time_point start = Clock::now();
      const Status status = store.Put(chunk.key, bytes);
      r.put_seconds += SecondsSince(start);
      if (!status.ok()) return status.WithContext("storing chunk " + chunk.key);
      ++r.chunks_written;
      r.bytes_written += chunk.bytes;
    }
  }
  r.replay_seconds = SecondsSince(replay_start);
  if (r.requests == 0) r.min_prompt_tokens = 0;
  return r;
}

}  // namespace cxlkv::cli
