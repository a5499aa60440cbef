// TierBackend: one level of the store as the store sees it, whatever keeps the bytes. A tier
// stores a chunk at an 8-byte locator it defines (the index keeps it in Entry::locator and never
// looks inside), reads it back verified, recovers its own chunks at open, and counts what
// happens in it. The store keeps the index, the eviction policies and the moves between tiers;
// it never asks what kind a tier is, only which of two ways its bytes are reached:
//
//   MappedTier    the bytes sit at a stable address (DRAM, CXL, /dev/dax, a file mapping): a
//                 put or a move writes them into slots the tier hands out, a reader copies or
//                 pins them in place, and the GPU path registers the region. The store's policy
//                 for the tier picks what leaves it.
//   UnmappedTier  the bytes are reached by I/O (the NVMe log): chunks go in by Append and come
//                 out by Read into the caller's buffer. The tier makes room on its own, as it
//                 likes (the log drops whole segments), and hands back the locators that left.
//
// Adding a kind of tier takes one file that implements one of the two and one RegisterTierKind
// line (backends/tier_factory.h; backends/store_remote_stub_tier_test.cc shows it).
//
// Thread-safety: after Open, every member is thread-safe: counters are atomic, the policy (and
// the "tier" fields of entries in it) is guarded by mu, implementations guard their own state.
// clang's -Wthread-safety checks the policy's part (PT_GUARDED_BY, REQUIRES); the entries' is
// kept by hand (see store_impl.h for why it cannot be stated).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/chunk_header.h"
#include "backends/entry.h"
#include "backends/eviction/eviction_policy.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/slab_allocator.h"
#include "cxlkv/store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::internal {

class MappedTier;
class UnmappedTier;

// A chunk a tier holds, as the index records it: found at open (TakeRecovered), handed back when
// it left the tier (UnmappedTier::Append), or listed for a clean close (Close).
struct TierChunk {
  KeyHash hash;
  std::uint64_t locator = 0;
  std::uint32_t size = 0;
  std::uint16_t class_id = 0;
  bool unverified = false;  // found at open, bytes not yet checked (mapped tiers only)
};

class TierBackend {
 public:
  virtual ~TierBackend() = default;
  TierBackend(const TierBackend&) = delete;
  TierBackend& operator=(const TierBackend&) = delete;

  const std::string& name() const { return name_; }
  // Exactly one of the two is non-null: how the tier's bytes are reached.
  MappedTier* mapped() const { return mapped_; }
  UnmappedTier* unmapped() const { return unmapped_; }

  // The largest chunk the tier takes.
  virtual std::size_t max_chunk() const = 0;
  // Bytes of the tier a chunk of `size` holds while stored (used_bytes counts these).
  virtual std::size_t Charge(std::size_t size) const = 0;
  // Gives back the place of a chunk that left the index (or never entered it).
  virtual void Release(std::uint64_t locator, std::uint32_t size, std::uint16_t class_id) = 0;
  // The chunks found at open, once; the store indexes them.
  virtual std::vector<TierChunk> TakeRecovered() = 0;
  // Whether Close wants the tier's chunks listed (a durable pool's snapshot).
  virtual bool ListsChunksAtClose() const { return false; }
  // Clean shutdown, with the chunks the index holds in the tier when ListsChunksAtClose.
  virtual Status Close(std::span<const TierChunk> stored) {
    (void)stored;
    return Status::Ok();
  }
  // Makes every chunk stored so far durable, where the tier keeps chunks across restarts.
  virtual void Sync() {}
  // The tier's counters and description, in stats (and store-wide figures it alone knows).
  void AddStats(StoreStats& stats);
  // DRAM the tier spends per stored chunk beyond the entry, for index_bytes_per_entry.
  virtual std::size_t bookkeeping_bytes() const { return 0; }

  // Background demotion runs while used_bytes is above high_bytes, down to low_bytes; a tier
  // that makes room on its own has no watermark (SIZE_MAX).
  std::size_t high_bytes() const { return high_bytes_; }
  std::size_t low_bytes() const { return low_bytes_; }
  // Reads after which a chunk moves to the first tier; 0 never.
  int promote_after_hits() const { return promote_after_hits_; }

  // The store's eviction policy for the tier, under mu; a tier with none (it makes room on its
  // own) lists nothing. Erase and Touch ignore an entry that is not listed (one a mover has
  // taken out of the policy while it copies).
  void PolicyInsert(EntryId id, Entry& e) REQUIRES(mu);
  void PolicyTouch(EntryId id, Entry& e) REQUIRES(mu);
  void PolicyErase(EntryId id, Entry& e, bool evicted) REQUIRES(mu);
  EntryId PolicyVictim() REQUIRES(mu) {
    return policy_ != nullptr ? policy_->Victim() : kNoEntry;
  }
  // The policy itself, for the request hooks (eviction_policy.h): its flags may be read
  // without mu, every call is made under it. Null for a tier with none.
  EvictionPolicy* policy() const { return policy_.get(); }

  Mutex mu;
  std::atomic<std::size_t> used_bytes{0};
  std::atomic<std::size_t> chunks{0};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> demotions{0};
  std::atomic<std::uint64_t> sync_evictions{0};
  std::atomic<std::uint64_t> promotions{0};
  std::atomic<std::uint64_t> expirations{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> corrupt_dropped{0};
  std::uint64_t recovered = 0;  // set once by the store's open

 protected:
  TierBackend(std::string name, MappedTier* mapped, UnmappedTier* unmapped)
      : name_(std::move(name)), mapped_(mapped), unmapped_(unmapped) {}
  // What AddStats fills beyond the shared counters: source, policy name, copy method, capacity,
  // durability and recovery.
  virtual void Describe(TierStats& tier, StoreStats& stats) const = 0;

  std::size_t high_bytes_ = SIZE_MAX;
  std::size_t low_bytes_ = SIZE_MAX;
  int promote_after_hits_ = 0;
  // Set once at open; null: the tier makes room itself. What it points to is guarded by mu.
  std::unique_ptr<EvictionPolicy> policy_ PT_GUARDED_BY(mu);

 private:
  std::string name_;
  MappedTier* mapped_;
  UnmappedTier* unmapped_;
};

// A chunk's two slots in a mapped tier: its bytes and its header.
struct ChunkSlots {
  Allocation data;
  Allocation header;
};

// A tier whose chunks sit at stable addresses in one mapped region. Its locators name two
// slots, each in 256-byte units from the region start: the data slot (low 32 bits) and the
// header slot (high 32 bits), which holds the key, the metadata and the checksum. The store
// reads them through DataAt and HeaderAt, with no call into the tier on the read path.
class MappedTier : public TierBackend {
 public:
  virtual const MemoryRegion& region() const = 0;
  std::byte* DataAt(std::uint64_t locator) const {
    return base_ + (locator & 0xFFFFFFFF) * ChunkHeader::kSize;
  }
  ChunkHeader* HeaderAt(std::uint64_t locator) const {
    return reinterpret_cast<ChunkHeader*>(base_ + (locator >> 32) * ChunkHeader::kSize);
  }
  std::uint64_t Locator(const ChunkSlots& slots) const {
    return Ref(slots.data.data) | std::uint64_t{Ref(slots.header.data)} << 32;
  }
  // The data slot's reference, as a chunk's header records it (ChunkHeader::data_ref).
  std::uint32_t DataRef(const ChunkSlots& slots) const { return Ref(slots.data.data); }

  // Both slots of a chunk of `size`; NoSpace (nothing held) when either cannot be had. The
  // store evicts by its policy and retries.
  virtual Result<ChunkSlots> Allocate(std::size_t size) = 0;
  // Writes a chunk's bytes (gathered from parts; none when they were written into the slot in
  // place) and its header into its slots, durably first where the tier persists.
  virtual void Write(const ChunkSlots& slots, std::span<const std::span<const std::byte>> parts,
                     const ChunkHeader& header) = 0;
  // Frees slots that never became a stored chunk.
  virtual void FreeSlots(const ChunkSlots& slots) = 0;
  // Whether a chunk found at open still has the bytes its header's checksum describes.
  virtual bool Intact(std::uint64_t locator, std::size_t size) const = 0;

 protected:
  // base: the region's first byte; the region lives as long as the tier.
  MappedTier(std::string name, std::byte* base)
      : TierBackend(std::move(name), this, nullptr), base_(base) {}
  std::uint32_t Ref(const std::byte* p) const {
    return static_cast<std::uint32_t>((p - base_) / ChunkHeader::kSize);
  }

 private:
  std::byte* base_;
};

// A tier whose chunks are reached by I/O: written by Append, read by Read, never pinned in place.
// It knows a chunk's key (the index does not: for such a chunk only the hash is in memory) and
// checks it on every read.
class UnmappedTier : public TierBackend {
 public:
  // A background demotion hands the tier at most this many chunks, or bytes, in one Append:
  // enough that the device's queue stays full across a batch (a call waits for its last
  // records, and the queue drains while it does: at 32 chunks of 128 KiB, 4 MiB a call, that
  // drain cost the spill log a tenth of its write rate), few enough that the memory they hold
  // (claimed, not yet freed) stays small against a tier. bench_spill batches its appends so.
  static constexpr std::size_t kAppendBatchChunks = 512;
  static constexpr std::size_t kAppendBatchBytes = std::size_t{64} << 20;

  // One chunk of an Append.
  struct AppendItem {
    std::string_view key;
    std::span<const std::byte> bytes;
    std::span<const std::byte> meta;
    Status status;              // out: OK, or why it was not stored (it then holds nothing)
    std::uint64_t locator = 0;  // out: where it is, when OK
  };
  // One chunk of a Read.
  struct ReadItem {
    std::uint64_t locator = 0;
    std::string_view key;
    std::span<std::byte> dst;       // the chunk's size
    std::span<std::byte> meta_dst;  // ChunkMeta::kMaxSize bytes
    Status status;                  // out: OK, or why the read failed
    bool stale = false;             // out: the entry moved on before the read; nothing read
    std::size_t size = 0;           // out: bytes read
    std::size_t meta_size = 0;      // out: metadata bytes
  };
  // Called with the chunks that left the tier to make room, while the tier still excludes
  // reads of them: the store drops the index entries that still name them.
  using LeftFn = std::function<void(std::span<const TierChunk>)>;
  // Called once an item's outcome is final, before any room is made that could take it away,
  // by this Append or a concurrent one: between an item's write and its settle, its place
  // cannot be freed, or the store would switch an entry to a place that is already gone.
  using SettledFn = std::function<void(std::size_t item)>;
  // Asked for each read, under the tier's exclusion of whatever would free its place: whether
  // the index entry still names this locator (false: the read is skipped, marked stale).
  using CurrentFn = std::function<bool(std::size_t item)>;

  // Stores the items, making room (and calling left) while the tier is full; settled sees
  // each item once its status and locator are final.
  virtual void Append(std::span<AppendItem> items, const SettledFn& settled,
                      const LeftFn& left) = 0;
  // Reads the items (the bytes checked against their checksums and the key).
  virtual void Read(std::span<ReadItem> reads, const CurrentFn& current) = 0;

 protected:
  explicit UnmappedTier(std::string name) : TierBackend(std::move(name), nullptr, this) {}
};

}  // namespace cxlkv::internal
