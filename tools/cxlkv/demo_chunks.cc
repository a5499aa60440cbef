#include "tools/cxlkv/demo_chunks.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "util/xxh3.h"

namespace cxlkv::cli {
namespace {

constexpr std::array<ModelPreset, 4> kPresets = {{
    {"small", 16, 2, 64, 2,
     "8 KiB/token, 2 MiB per 256-token chunk (a sub-1B model's KV geometry)"},
    {"llama-3.2-1b", 16, 8, 64, 2, "32 KiB/token, 8 MiB per 256-token chunk"},
    {"llama-3.1-8b", 32, 8, 128, 2, "128 KiB/token, 32 MiB per 256-token chunk"},
    {"llama-3.1-70b", 80, 8, 128, 2, "320 KiB/token, 80 MiB per 256-token chunk"},
}};

// splitmix64 of the word index, seeded by the key: cheap (the demo measures copies, not
// generation) and every 8-byte word of every chunk differs.
inline std::uint64_t PatternWord(std::uint64_t seed, std::uint64_t word_index) {
  std::uint64_t x = seed + word_index * 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t PatternSeed(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

}  // namespace

std::span<const ModelPreset> ModelPresets() { return kPresets; }

const ModelPreset* FindModelPreset(std::string_view name) {
  for (const ModelPreset& preset : kPresets) {
    if (preset.name == name) return &preset;
  }
  return nullptr;
}

std::vector<ChunkRef> RequestChunks(const TraceRequest& request, const ModelPreset& model,
                                    std::uint32_t chunk_tokens) {
  std::vector<ChunkRef> chunks;
  const std::uint32_t parts = kTraceBlockTokens / chunk_tokens;
  std::uint64_t left = request.input_length;  // the loader checked it against the block count
  for (const std::uint64_t block : request.hash_ids) {
    for (std::uint32_t part = 0; part < parts && left > 0; ++part) {
      const auto tokens = static_cast<std::uint32_t>(std::min<std::uint64_t>(chunk_tokens, left));
      left -= tokens;
      chunks.push_back({ChunkKey(model.name, block, part, tokens), tokens,
                        static_cast<std::size_t>(tokens * model.BytesPerToken())});
    }
  }
  return chunks;
}

std::string ChunkKey(std::string_view model, std::uint64_t block_id, std::uint32_t part,
                     std::uint32_t tokens) {
  const std::array<std::uint64_t, 3> fields = {block_id, part, tokens};
  const std::uint64_t hash = XXH3_64bits(fields.data(), sizeof(fields));
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  std::string key = "vllm@";
  key.append(model);
  key += "@1@0@";
  key += hex;
  return key;
}

void FillChunkBytes(std::string_view key, std::span<std::byte> out) {
  const std::uint64_t seed = PatternSeed(key);
  std::size_t i = 0;
  for (std::uint64_t word = 0; i < out.size(); ++word, i += 8) {
    const std::uint64_t x = PatternWord(seed, word);
    std::memcpy(out.data() + i, &x, std::min<std::size_t>(8, out.size() - i));
  }
}

std::size_t FirstMismatch(std::string_view key, std::span<const std::byte> bytes) {
  const std::uint64_t seed = PatternSeed(key);
  std::size_t i = 0;
  for (std::uint64_t word = 0; i < bytes.size(); ++word, i += 8) {
    const std::uint64_t expected = PatternWord(seed, word);
    const std::size_t n = std::min<std::size_t>(8, bytes.size() - i);
    if (std::memcmp(bytes.data() + i, &expected, n) != 0) {
      for (std::size_t b = 0; b < n; ++b) {  // narrow it to the byte
        if (std::memcmp(bytes.data() + i + b, reinterpret_cast<const std::byte*>(&expected) + b,
                        1) != 0) {
          return i + b;
        }
      }
    }
  }
  return bytes.size();
}

}  // namespace cxlkv::cli
