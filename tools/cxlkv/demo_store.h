// The demo's store: tiers tried in order and a write-once, in-memory index of what went where.
//
// A stand-in for the tiered store (a later issue) with none of its policy: a chunk goes to
// the first tier with room and stays there; when every tier is full it is dropped, since
// there is no eviction yet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cxlkv/slab_allocator.h"
#include "cxlkv/status.h"
#include "tools/cxlkv/demo_report.h"
#include "tools/cxlkv/demo_tier.h"

namespace cxlkv::cli {

class DemoStore {
 public:
  explicit DemoStore(std::vector<std::unique_ptr<DemoTier>> tiers) : tiers_(std::move(tiers)) {}
  ~DemoStore();

  // Storing is two steps, as in a serving engine: reserve a slot first, then produce the bytes
  // (here: generate them) and commit. A chunk with no room costs no generation or copy.
  struct Slot {
    std::size_t tier = 0;
    Allocation allocation;
  };
  // A slot of `size` bytes in the first tier with room; nullopt when every tier is full. Fails
  // only on a tier error other than running out of space.
  Result<std::optional<Slot>> Reserve(std::size_t size);
  // Writes `bytes` into the reserved slot, records their XXH3-64 checksum and indexes the slot
  // under `key`, which must not be stored yet (chunks are write-once).
  void Commit(const std::string& key, const Slot& slot, std::span<const std::byte> bytes);
  bool Contains(const std::string& key) const { return index_.contains(key); }

  struct Verification {
    std::uint64_t verified = 0;
    std::vector<std::string> mismatched;  // "key in tier N"
  };
  // Reads every stored chunk back into `buffer` (a full chunk long), in the order they were
  // stored, and compares its checksum with the one taken before the write.
  Verification VerifyAll(std::span<std::byte> buffer);

  // Source, capacity, counters and slab statistics of each tier, as they stand now.
  std::vector<TierReport> TierReports() const;
  // Frees every slot. The allocator refuses a double or foreign free, so success also says
  // that the index and the allocators agree.
  Status ReleaseAll();

 private:
  struct StoredChunk {
    std::size_t tier = 0;
    Allocation allocation;
    std::uint64_t checksum = 0;
  };
  std::vector<std::unique_ptr<DemoTier>> tiers_;
  std::unordered_map<std::string, StoredChunk> index_;
  std::vector<std::string> stored_order_;
};

}  // namespace cxlkv::cli
