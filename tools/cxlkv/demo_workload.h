// The demo's synthetic KV-cache workload: model presets, a chat request stream, and the
// chunk keys and bytes an LMCache-style engine would store for it.
//
// Nothing here touches memory tiers: it only says which chunks a request produces, so the same
// stream can be replayed against any store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cxlkv::cli {

// LMCache's default chunk size: a prompt's KV cache is stored in blocks of 256 tokens.
inline constexpr std::uint32_t kChunkTokens = 256;

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
  std::uint64_t FullChunkBytes() const { return BytesPerToken() * kChunkTokens; }
};

std::span<const ModelPreset> ModelPresets();
const ModelPreset* FindModelPreset(std::string_view name);  // null when unknown
inline constexpr std::string_view kDefaultModel = "small";

// One chunk of one prompt: the prefix-chained hash that names it and how many tokens it holds
// (kChunkTokens, or fewer for the prompt's partial tail).
struct ChunkRef {
  std::uint64_t hash = 0;
  std::uint32_t tokens = 0;
};

struct ChatRequest {
  std::uint32_t conversation = 0;
  std::uint32_t turn = 0;           // 0 for a new conversation
  std::uint32_t system_prompt = 0;  // which shared system prompt the conversation opened with
  std::uint32_t prompt_tokens = 0;
  std::vector<ChunkRef> chunks;
};

struct ChatWorkloadOptions {
  std::uint64_t seed = 1;
  std::uint32_t requests = 0;
  std::uint32_t max_prompt_tokens = 8192;  // a conversation that would outgrow this restarts
};

// A chat serving stream: a few shared system prompts (popular ones reused by most requests),
// new conversations with one user turn, and follow-up turns that resend the whole history
// plus the assistant's reply and a new user message. Deterministic for a given seed.
std::vector<ChatRequest> GenerateChatWorkload(const ChatWorkloadOptions& options);
inline constexpr std::uint32_t kSystemPrompts = 4;

// LMCache's key layout: "vllm@<model>@<world size>@<worker id>@<chunk hash, hex>".
std::string ChunkKey(std::string_view model, std::uint64_t chunk_hash);

// Fills `out` with bytes derived from `key` alone, standing in for the K/V tensors a model
// would produce: the same key always yields the same bytes, different keys different bytes.
void FillChunkBytes(std::string_view key, std::span<std::byte> out);

}  // namespace cxlkv::cli
