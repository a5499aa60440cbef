#include "tools/cxlkv/replay_workload.h"

#include <algorithm>
#include <unordered_map>

namespace cxlkv::cli {
namespace {

// A chunk's identity: the block id, its place in the block and its tokens (a partial block's
// chunk never shares an id with a full one, as in the demo's keys).
struct ChunkIdentity {
  std::uint64_t block;
  std::uint32_t part;
  std::uint32_t tokens;
  bool operator==(const ChunkIdentity&) const = default;
};

struct ChunkIdentityHash {
  std::size_t operator()(const ChunkIdentity& c) const {
    std::uint64_t x = c.block * 0x9e3779b97f4a7c15ULL ^ (std::uint64_t{c.part} << 32 | c.tokens);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::size_t>(x ^ (x >> 31));
  }
};

}  // namespace

Workload BuildWorkload(std::span<const TraceRequest> trace, std::uint32_t chunk_tokens) {
  Workload w;
  w.chunk_tokens = chunk_tokens;
  std::unordered_map<ChunkIdentity, std::uint32_t, ChunkIdentityHash> ids;
  const std::uint32_t parts = kTraceBlockTokens / chunk_tokens;
  w.request_begin.reserve(trace.size() + 1);
  for (const TraceRequest& request : trace) {
    w.request_begin.push_back(w.accesses.size());
    w.timestamp_ms.push_back(request.timestamp_ms);
    const bool partial_last = request.input_length % kTraceBlockTokens != 0;
    std::uint64_t left = request.input_length;
    std::uint32_t previous = kNoChunk;
    for (std::size_t b = 0; b < request.hash_ids.size(); ++b) {
      const bool last_block = b + 1 == request.hash_ids.size();
      for (std::uint32_t part = 0; part < parts && left > 0; ++part) {
        const auto tokens = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_tokens, left));
        left -= tokens;
        const auto [it, inserted] = ids.try_emplace({request.hash_ids[b], part, tokens},
                                                    static_cast<std::uint32_t>(w.tokens.size()));
        if (inserted) {
          w.tokens.push_back(tokens);
          w.predecessor.push_back(previous);  // fixed by the first prompt that holds it
          w.unique_tokens += tokens;
        }
        w.accesses.push_back(it->second);
        w.in_partial_last_block.push_back(last_block && partial_last ? 1 : 0);
        w.prompt_tokens += tokens;
        previous = it->second;
      }
    }
  }
  w.request_begin.push_back(w.accesses.size());

  // One backward pass: the next access of each chunk.
  w.next_use.assign(w.accesses.size(), kNeverUsedAgain);
  std::vector<std::uint64_t> upcoming(w.tokens.size(), kNeverUsedAgain);
  for (std::size_t i = w.accesses.size(); i-- > 0;) {
    w.next_use[i] = upcoming[w.accesses[i]];
    upcoming[w.accesses[i]] = i;
  }
  return w;
}

}  // namespace cxlkv::cli
