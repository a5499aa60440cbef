#include "tools/cxlkv/demo_workload.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <deque>
#include <random>

namespace cxlkv::cli {
namespace {

constexpr std::array<ModelPreset, 4> kPresets = {{
    {"small", 16, 2, 64, 2, "8 KiB/token, 2 MiB chunks (a sub-1B model's KV geometry)"},
    {"llama-3.2-1b", 16, 8, 64, 2, "32 KiB/token, 8 MiB chunks"},
    {"llama-3.1-8b", 32, 8, 128, 2, "128 KiB/token, 32 MiB chunks"},
    {"llama-3.1-70b", 80, 8, 128, 2, "320 KiB/token, 80 MiB chunks"},
}};

// Llama 3's vocabulary size: token ids are drawn below it.
constexpr std::uint32_t kVocabulary = 128256;
// Seed of the first chunk's hash: the hash of "no prefix".
constexpr std::uint64_t kEmptyPrefixHash = 0x6c6d63616368ULL;  // "lmcach"

// A deterministic stream of draws. std::uniform_int_distribution differs between standard
// libraries; this does not, so a seed names the same workload everywhere.
class Draw {
 public:
  explicit Draw(std::uint64_t seed) : rng_(seed) {}
  std::uint64_t Below(std::uint64_t n) { return rng_() % n; }
  std::uint32_t Between(std::uint32_t lo, std::uint32_t hi) {  // inclusive
    return lo + static_cast<std::uint32_t>(Below(std::uint64_t{hi} - lo + 1));
  }
  // Skewed toward lo: most chat messages are short, a few are long (pasted documents).
  std::uint32_t MostlyShort(std::uint32_t lo, std::uint32_t hi) {
    return std::min(Between(lo, hi), Between(lo, hi));
  }
  bool Chance(std::uint32_t percent) { return Below(100) < percent; }
  void AppendTokens(std::vector<std::uint32_t>* tokens, std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
      tokens->push_back(static_cast<std::uint32_t>(Below(kVocabulary)));
    }
  }

 private:
  std::mt19937_64 rng_;
};

// LMCache-style prefix hashing: each chunk's hash covers its tokens and, through the previous
// chunk's hash, everything before it. Two prompts share a chunk key exactly when they share
// every token up to the end of that chunk.
std::vector<ChunkRef> ChunkPrompt(const std::vector<std::uint32_t>& tokens) {
  std::vector<ChunkRef> chunks;
  std::uint64_t prefix_hash = kEmptyPrefixHash;
  for (std::size_t start = 0; start < tokens.size(); start += kChunkTokens) {
    const auto count =
        static_cast<std::uint32_t>(std::min<std::size_t>(kChunkTokens, tokens.size() - start));
    prefix_hash = XXH3_64bits_withSeed(tokens.data() + start, count * sizeof(std::uint32_t),
                                       prefix_hash);
    chunks.push_back({prefix_hash, count});
  }
  return chunks;
}

struct Conversation {
  std::uint32_t id = 0;
  std::uint32_t system_prompt = 0;
  std::uint32_t turns = 0;
  std::vector<std::uint32_t> tokens;  // the full history sent with the next request
};

}  // namespace

std::span<const ModelPreset> ModelPresets() { return kPresets; }

const ModelPreset* FindModelPreset(std::string_view name) {
  for (const ModelPreset& preset : kPresets) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

std::vector<ChatRequest> GenerateChatWorkload(const ChatWorkloadOptions& options) {
  Draw draw(options.seed);

  // System prompts: a short assistant persona up to a long tool/RAG preamble.
  std::array<std::vector<std::uint32_t>, kSystemPrompts> system_prompts;
  for (auto& prompt : system_prompts) draw.AppendTokens(&prompt, draw.Between(300, 2500));
  // Popularity 8:4:2:1, so one prefix dominates as in a real deployment.
  constexpr std::array<std::uint32_t, kSystemPrompts> kWeights = {8, 4, 2, 1};
  constexpr std::uint32_t kWeightSum = 15;

  // Conversations a user may still come back to; the oldest is forgotten first.
  constexpr std::size_t kOpenConversations = 16;
  constexpr std::uint32_t kFollowUpPercent = 40;
  std::deque<Conversation> open;
  std::uint32_t next_conversation = 0;

  std::vector<ChatRequest> requests;
  requests.reserve(options.requests);
  while (requests.size() < options.requests) {
    Conversation* conversation = nullptr;
    if (!open.empty() && draw.Chance(kFollowUpPercent)) {
      const std::size_t index = draw.Below(open.size());
      Conversation& candidate = open[index];
      const std::uint32_t reply = draw.MostlyShort(64, 768);
      const std::uint32_t message = draw.MostlyShort(16, 512);
      if (candidate.tokens.size() + reply + message <= options.max_prompt_tokens) {
        draw.AppendTokens(&candidate.tokens, reply + message);
        ++candidate.turns;
        conversation = &candidate;
      } else {
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(index));  // context window full
      }
    }
    if (conversation == nullptr) {  // a new conversation
      std::uint32_t pick = static_cast<std::uint32_t>(draw.Below(kWeightSum));
      std::uint32_t system = 0;
      while (pick >= kWeights[system]) pick -= kWeights[system++];
      if (open.size() == kOpenConversations) open.pop_front();
      open.push_back({next_conversation++, system, 0, system_prompts[system]});
      conversation = &open.back();
      draw.AppendTokens(&conversation->tokens, draw.MostlyShort(32, 2048));
    }
    ChatRequest request;
    request.conversation = conversation->id;
    request.turn = conversation->turns;
    request.system_prompt = conversation->system_prompt;
    request.prompt_tokens = static_cast<std::uint32_t>(conversation->tokens.size());
    request.chunks = ChunkPrompt(conversation->tokens);
    requests.push_back(std::move(request));
  }
  return requests;
}

std::string ChunkKey(std::string_view model, std::uint64_t chunk_hash) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(chunk_hash));
  std::string key = "vllm@";
  key.append(model);
  key += "@1@0@";
  key += hex;
  return key;
}

void FillChunkBytes(std::string_view key, std::span<std::byte> out) {
  // splitmix64 over the word index, seeded by the key: cheap (the demo measures copies, not
  // generation) and every 8-byte word of every chunk differs.
  const std::uint64_t seed = XXH3_64bits(key.data(), key.size());
  std::size_t i = 0;
  for (std::uint64_t word_index = 0; i < out.size(); ++word_index, i += 8) {
    std::uint64_t x = seed + word_index * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    std::memcpy(out.data() + i, &x, std::min<std::size_t>(8, out.size() - i));
  }
}

}  // namespace cxlkv::cli
