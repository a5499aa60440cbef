// ChunkHeader: the 256-byte record that sits beside every chunk in its tier.
//
// It carries what the DRAM index leaves out to stay small (the full key, the metadata) and
// what a lookup must check (the key, the TTL deadline). Headers take their own 256-byte slots
// from the tier's slab allocator rather than sharing the chunk's slot: a chunk of exactly a
// registered size (a full 256-token chunk) then fills its slot with nothing left over, where a
// header inside the slot would push every such slot past its size class.
//
// The layout is plain data holding the chunk's place in the region, so that a durable pool
// (backends/pool/) rebuilds its index from headers after a restart.
//
// Thread-safety: a header is written once, before its entry is published, and read-only after.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "cxlkv/store.h"

namespace cxlkv::internal {

struct ChunkHeader {
  static constexpr std::size_t kSize = 256;

  // In a durable pool, the commit word (backends/pool/pool_format.h): the header counts after
  // a crash only when state is kCommitted and check matches. Volatile tiers leave both 0.
  std::uint32_t state = 0;
  std::uint32_t check = 0;
  std::uint8_t key_len = 0;
  std::uint8_t meta_len = 0;
  std::uint16_t reserved = 0;
  std::uint32_t expires_s = 0;    // deadline in whole seconds of the store's clock; 0: never
  std::uint32_t size = 0;         // chunk bytes
  std::uint32_t data_ref = 0;     // the chunk's slot, in 256-byte units from the region start
  std::uint64_t sequence = 0;     // durable pools: order of puts, to settle conflicts
  std::uint64_t data_xxh3 = 0;    // durable pools: XXH3-64 of the chunk's bytes
  char key[kMaxKeySize] = {};
  std::byte meta[ChunkMeta::kMaxSize] = {};

  // Both lengths are clamped to their arrays: a header is read from media, and although every
  // path checks it (HeaderProblem) before use, a damaged length must never read or copy past
  // the header.
  std::string_view key_view() const {
    return {key, std::min<std::size_t>(key_len, kMaxKeySize)};
  }
  ChunkMeta chunk_meta() const {
    ChunkMeta m;
    m.size = static_cast<std::uint8_t>(std::min<std::size_t>(meta_len, ChunkMeta::kMaxSize));
    std::memcpy(m.bytes.data(), meta, m.size);
    return m;
  }
};
static_assert(sizeof(ChunkHeader) <= ChunkHeader::kSize);
static_assert(offsetof(ChunkHeader, check) == 4 && alignof(ChunkHeader) == 8,
              "state and check form one aligned 8-byte word");

}  // namespace cxlkv::internal
