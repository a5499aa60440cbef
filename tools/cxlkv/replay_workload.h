// A request trace as the replay simulator sees it: every chunk of every prompt turned into a
// dense integer id once, up front, so that a policy-capacity point replays from flat arrays
// (no strings, no hashing) and the offline bound can look at the future.
//
// Chunks keep prefix identity exactly as `cxlkv demo` keys them: a chunk is (trace block id,
// its place in the block, its tokens), and the trace's block ids are prefix-chained, so equal
// ids mean an equal prefix. Each chunk therefore has one predecessor, the chunk before it in
// every prompt that holds it.
//
// Thread-safety: a Workload is immutable after BuildWorkload; share it freely for reading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "tools/cxlkv/demo_trace.h"

namespace cxlkv::cli {

inline constexpr std::uint32_t kNoChunk = UINT32_MAX;
inline constexpr std::uint64_t kNeverUsedAgain = UINT64_MAX;

struct Workload {
  std::uint32_t chunk_tokens = 0;  // the chunk size the trace was cut into
  // Per chunk id.
  std::vector<std::uint32_t> tokens;       // chunk_tokens, or fewer in a partial last block
  std::vector<std::uint32_t> predecessor;  // the chunk before it in its prompts, or kNoChunk
  // Per request: its accesses are accesses[request_begin[r] .. request_begin[r + 1]).
  std::vector<std::size_t> request_begin;
  std::vector<double> timestamp_ms;
  // Per access (one chunk of one prompt, in prompt order).
  std::vector<std::uint32_t> accesses;
  std::vector<std::uint64_t> next_use;  // index of the next access of the same chunk
  // The access lies in its prompt's last block and that block is partial: the next turn of
  // the conversation resends those tokens extended, under a new block id.
  std::vector<std::uint8_t> in_partial_last_block;

  std::size_t requests() const { return timestamp_ms.size(); }
  std::size_t chunks() const { return tokens.size(); }
  std::uint64_t unique_tokens = 0;  // sum of tokens over distinct chunks
  std::uint64_t prompt_tokens = 0;  // sum of tokens over all accesses
};

// chunk_tokens must divide kTraceBlockTokens (checked by the caller's option parsing).
Workload BuildWorkload(std::span<const TraceRequest> trace, std::uint32_t chunk_tokens);

}  // namespace cxlkv::cli
