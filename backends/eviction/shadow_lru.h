// A plain LRU cache of chunk ids and sizes, replayed alongside a policy so that the policy can
// tell, while it runs, whether it is doing better than LRU would in its place; and the rule by
// which prefix-hazard moves the weight of its learned odds from that comparison.
//
// Its room is given per request: prefix-hazard passes the most chunk bytes its own tier has
// held so far, the tier's room as the policy sees it (a tier's mapped capacity also holds the
// chunks' headers and slab slack, so it is not the room for chunk bytes).
//
// Thread-safety: none, like the policies that own it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "backends/eviction/id_lists.h"

namespace cxlkv::internal {

class ShadowLru {
 public:
  ShadowLru() : list_(1) {}

  // A chunk's size, known before a request that holds it is replayed.
  void SetBytes(std::uint32_t chunk, std::uint64_t bytes) {
    if (chunk >= bytes_.size()) {
      bytes_.resize(chunk + 1, 0);
      list_.Grow(chunk + 1);
    }
    bytes_[chunk] = bytes;
  }

  // One request's chunks in prompt order, as an engine drives an LRU tier of capacity_bytes:
  // the leading run of cached chunks is the hit (returned, in bytes) and becomes the most
  // recent; a cached chunk after the first miss is neither read nor touched; a missing one is
  // stored, evicting the least recent while over capacity.
  std::uint64_t Request(std::span<const std::uint32_t> chunks, std::uint64_t capacity_bytes) {
    std::uint64_t hit = 0;
    bool leading = true;
    for (const std::uint32_t chunk : chunks) {
      SetBytes(chunk, chunk < bytes_.size() ? bytes_[chunk] : 0);  // grows the lists
      if (list_.listed(chunk)) {
        if (leading) {
          hit += bytes_[chunk];
          list_.MoveToFront(0, chunk);
        }
        continue;
      }
      leading = false;
      list_.PushFront(0, chunk);
      used_ += bytes_[chunk];
      while (used_ > capacity_bytes) {
        const std::uint32_t old = list_.back(0);
        list_.Unlink(old);
        used_ -= bytes_[old];
      }
    }
    return hit;
  }

  bool contains(std::uint32_t chunk) const { return list_.listed(chunk); }

  // The owner renumbered its ids (new_of[old]; kNil for an id it forgot, which must not be
  // listed here); `ids` new ids.
  void Remap(const std::vector<std::uint32_t>& new_of, std::size_t ids) {
    std::vector<std::uint64_t> bytes(ids, 0);
    for (std::size_t old = 0; old < bytes_.size() && old < new_of.size(); ++old) {
      if (new_of[old] != IdLists::kNil) bytes[new_of[old]] = bytes_[old];
    }
    list_ = list_.Remapped(new_of, ids);
    bytes_.swap(bytes);
  }
  std::size_t bytes() const { return list_.bytes() + bytes_.capacity() * sizeof(std::uint64_t); }

 private:
  IdLists list_;
  std::vector<std::uint64_t> bytes_;
  std::uint64_t used_ = 0;
};

// The weight w of the learned odds (the victim is the largest age / p^w) after a period in
// which the policy hit own_hit_bytes and its LRU shadow shadow_hit_bytes: a quarter step
// towards 0 (plain recency over chains, as LRU) when the policy did worse, towards 1 when it
// did at least as well. A step, not a jump, so that one noisy period does not undo the rest.
inline double NextOddsPower(double power, std::uint64_t own_hit_bytes,
                            std::uint64_t shadow_hit_bytes) {
  constexpr double kStep = 0.25;
  return own_hit_bytes < shadow_hit_bytes ? std::max(0.0, power - kStep)
                                          : std::min(1.0, power + kStep);
}

}  // namespace cxlkv::internal
