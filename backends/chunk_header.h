// ChunkHeader: the 256-byte record that sits beside every chunk in its tier.
//
// It carries what the DRAM index leaves out to stay small (the full key, the metadata) and
// what a lookup must check (the key, the TTL deadline). Headers take their own 256-byte slots
// from the tier's slab allocator rather than sharing the chunk's slot: a chunk of exactly a
// registered size (a full 256-token chunk) then fills its slot with nothing left over, where a
// header inside the slot would push every such slot past its size class.
//
// The layout is plain data with a magic number and the chunk's place in the region, so that
// persistence (rebuilding the index from a file or devdax pool) can be built on it.
//
// Thread-safety: a header is written once, before its entry is published, and read-only after.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "cxlkv/store.h"

namespace cxlkv::internal {

struct ChunkHeader {
  static constexpr std::uint32_t kMagic = 0x4b4c5843;  // "CXLK"
  static constexpr std::size_t kSize = 256;

  std::uint32_t magic = kMagic;
  std::uint8_t key_len = 0;
  std::uint8_t meta_len = 0;
  std::uint16_t reserved = 0;
  std::uint64_t data_offset = 0;  // of the chunk's slot from the region start
  std::uint32_t size = 0;         // chunk bytes
  std::uint32_t expires_s = 0;    // deadline in whole seconds of the store's clock; 0: never
  char key[kMaxKeySize] = {};
  std::byte meta[ChunkMeta::kMaxSize] = {};

  std::string_view key_view() const { return {key, key_len}; }
  ChunkMeta chunk_meta() const {
    ChunkMeta m;
    std::memcpy(m.bytes.data(), meta, meta_len);
    m.size = meta_len;
    return m;
  }
};
static_assert(sizeof(ChunkHeader) <= ChunkHeader::kSize);

}  // namespace cxlkv::internal
