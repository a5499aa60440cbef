// Keys of the chunk index: validation and the 128-bit hash the index is keyed by.
//
// Thread-safety: all functions are thread-safe. SetKeyHasherForTesting swaps a process-wide
// hook and is meant for single-threaded test setup only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cxlkv/status.h"

namespace cxlkv::internal {

struct KeyHash {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  friend bool operator==(const KeyHash&, const KeyHash&) = default;
};

// For std::unordered_map: the hash is already uniform, so its low word is the bucket hash.
struct KeyHashHasher {
  std::size_t operator()(const KeyHash& h) const noexcept { return static_cast<std::size_t>(h.lo); }
};

// InvalidArgument for an empty key or one longer than kMaxKeySize, naming its length.
Status ValidateKey(std::string_view key);

// XXH3-128 of the key bytes (or the test hook's value when one is set).
KeyHash HashKey(std::string_view key);

// Replaces HashKey's function (nullptr restores XXH3-128), so tests can force collisions.
using KeyHasher = KeyHash (*)(std::string_view key);
void SetKeyHasherForTesting(KeyHasher hasher);

}  // namespace cxlkv::internal
