// The KV chunks an LMCache-style engine stores for one trace request: which model geometry
// sizes them, how the trace's 512-token blocks are cut into chunks, the chunks' keys, and the
// bytes that stand in for their K/V tensors (derived from the key alone, so a read can be
// checked byte for byte without keeping a copy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tools/cxlkv/demo_trace.h"

namespace cxlkv::cli {

// LMCache's default chunk: a prompt's KV cache is stored in blocks of 256 tokens.
inline constexpr std::uint32_t kDefaultChunkTokens = 256;

// KV geometry of a model: what one token's K and V cost across all layers.
struct ModelPreset {
  std::string_view name;
  int layers = 0;
  int kv_heads = 0;  // grouped-query attention: far fewer KV heads than query heads
  int head_dim = 0;
  int dtype_bytes = 2;  // fp16 / bf16
  std::string_view note;
  // K and V (2) x layers x KV heads x head dim x bytes per element.
  std::uint64_t BytesPerToken() const {
    return std::uint64_t{2} * static_cast<std::uint64_t>(layers) *
           static_cast<std::uint64_t>(kv_heads) * static_cast<std::uint64_t>(head_dim) *
           static_cast<std::uint64_t>(dtype_bytes);
  }
};

std::span<const ModelPreset> ModelPresets();
const ModelPreset* FindModelPreset(std::string_view name);  // null when unknown
inline constexpr std::string_view kDefaultModel = "small";

// One chunk of one request, in prompt order.
struct ChunkRef {
  std::string key;
  std::uint32_t tokens = 0;  // chunk_tokens, or fewer in the prompt's partial last block
  std::size_t bytes = 0;     // tokens x the model's bytes per token
};

// The request's chunks: each trace block (kTraceBlockTokens) cut into
// kTraceBlockTokens / chunk_tokens chunks; a partial last block gives fewer, and a shorter
// last chunk. chunk_tokens must divide kTraceBlockTokens.
std::vector<ChunkRef> RequestChunks(const TraceRequest& request, const ModelPreset& model,
                                    std::uint32_t chunk_tokens);

// LMCache's key layout: "vllm@<model>@<world size>@<worker id>@<chunk hash, hex>". The hash
// covers the trace block id (itself prefix-chained), the chunk's place in the block and its
// token count, so a partial chunk never shares a key (and a size) with a full one.
std::string ChunkKey(std::string_view model, std::uint64_t block_id, std::uint32_t part,
                     std::uint32_t tokens);

// Fills `out` with bytes derived from `key` alone: the same key always yields the same bytes,
// different keys different bytes.
void FillChunkBytes(std::string_view key, std::span<std::byte> out);

// Offset of the first byte of `bytes` that FillChunkBytes(key) would not have written, or
// bytes.size() when every byte matches. Compares in place: no second buffer, one pass.
std::size_t FirstMismatch(std::string_view key, std::span<const std::byte> bytes);

}  // namespace cxlkv::cli
