// Store::Impl: the state behind a Store, shared by the files that implement it:
//   store.cc              the public calls: Put, Get, Pin, Remove, lookups, stats;
//   store_move.cc         making room: eviction, demotion and promotion between tiers;
//   store_maintenance.cc  the background thread: watermarks, promotions, the TTL sweep;
//   store_batch.cc        the copy threads behind SubmitGets and SubmitPuts;
//   store_reserve.cc      ReservedChunk: a put whose bytes are written into the slot in place;
//   store_recover.cc      indexing the chunks each tier recovered, and closing them cleanly;
//   store_unmapped.cc     tiers reached by I/O (the spill log): moves into them by append, reads
//                         out of them, promotion back to memory, the chunks that left them.
//
// The tiers are TierBackends (backends/tier_backend.h), fastest first: the memory tiers of
// StoreOptions::tiers, then the spill log. The store never asks a tier's kind, only whether its
// bytes are mapped (read in place, written into slots, evicted by the store's policy) or not
// (read and appended by I/O, making room on their own).
//
// Locks and their order. Two kinds guard chunks:
//   S: Shard::mu, one per index shard (16, picked by the key hash): the hash table, the
//      shard's entry pool, and the "shard" fields of its entries;
//   T: TierBackend::mu, one per tier: its eviction policy and the "tier" fields of entries in it.
// A thread holds at most one S and at most one T, and takes S before T, never the reverse. An
// evictor that starts from a tier's policy therefore copies the candidate's id and hash under
// T, drops T, then takes S and rechecks that the candidate is still in the table, in that tier,
// listed and unpinned. Slab allocators have their own locks and call nothing back, so they may
// be called under S. No lock is held while chunk bytes are copied. The maintenance and work
// queue mutexes, and a CompletionQueue's, are leaves: nothing is taken while holding them.
// pass_mu, one maintenance pass at a time, comes before all of them. An unmapped tier may hold
// its own lock around the callbacks it makes into the store (the log's segment lock, see
// log_tier.h), which take S and T: such a lock comes before S.
//
// What clang checks (-Wthread-safety, see util/thread_annotations.h): Shard::index is
// GUARDED_BY its mu, a tier's policy by its mu, the queues' fields by theirs, and each ...Locked
// function REQUIRES the shard mutex of the Shard it is given (always the shard of the id or hash
// it works on). What it cannot check: an Entry's fields. Entries live in one EntryTable shared
// by the shards, and an entry's guard is picked at run time by its id (the mutex of shard
// ShardOfId(id) for the "shard" fields, the mutex of tier e.tier for the "tier" fields, the
// mover's pin for the slots of a claimed entry); an attribute can only name a mutex reachable
// from the object itself, so those fields carry no annotation and the rules above are kept by
// hand.
//
// Visibility and lifetime. A chunk enters the table only after its bytes and header are
// written, so a reader never sees a partial chunk. Readers take a pin under S and copy
// outside it; a pinned chunk is never picked for eviction, and a move that finds a pin taken
// during its copy gives up (the chunk stays where it was) rather than free a slot being read.
// Remove takes the key out of the table at once; the entry and its slots go when the last pin
// ends.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/chunk_header.h"
#include "backends/chunk_index.h"
#include "backends/entry.h"
#include "backends/key.h"
#include "backends/tier_backend.h"
#include "cxlkv/store.h"
#include "util/histogram.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv {

struct Store::Impl {
  struct Shard {
    explicit Shard(const internal::EntryPool& pool) : index(pool) {}
    // A prefetch hint for h's slot, taken with no lock: HashIndex::PrefetchSlot reads only its
    // own atomics (see chunk_index.h), which the analysis cannot tell from a read of the table.
    void PrefetchSlot(const internal::KeyHash& h) const NO_THREAD_SAFETY_ANALYSIS {
      index.PrefetchSlot(h);
    }
    internal::Mutex mu;
    internal::HashIndex index GUARDED_BY(mu);
  };

  // A found chunk, pinned for reading: where its bytes are until Unpin.
  struct Hit {
    internal::EntryId id = internal::kNoEntry;
    internal::KeyHash hash;
    const std::byte* data = nullptr;  // null in an unmapped tier: ReadUnmapped reads it
    std::size_t size = 0;
    std::size_t tier = 0;
    const internal::ChunkHeader* header = nullptr;  // null in an unmapped tier
    std::uint64_t locator = 0;  // the entry's at lookup
    bool promote = false;  // this read crossed the tier's promotion threshold
    bool verify = false;   // recovered from a durable pool: bytes not yet checked
  };

  // Slots taken for a chunk that is not yet visible: a Put between its allocation and its
  // publication, or a ReservedChunk while its bytes arrive.
  struct Slot {
    internal::KeyHash hash;
    // The key is stored (write once), or the tier's policy declined it: nothing allocated.
    bool already_stored = false;
    std::size_t tier = 0;
    internal::ChunkSlots slots;
    internal::ChunkHeader header;  // key, metadata, size, deadline; written at publication
  };

  struct Batch;  // store_batch.cc

  // Bounds the evict-and-retry loop of one allocation, so racing evictors cannot livelock.
  static constexpr int kMaxEvictAttempts = 4096;

  Impl() {
    for (std::uint32_t i = 0; i < internal::kShards; ++i) {
      shards[i] = std::make_unique<Shard>(entries.pool(i));
    }
  }
  ~Impl();

  // --- lookup (store.cc) ---
  static std::uint32_t ShardIndexOf(const internal::KeyHash& h) {
    return static_cast<std::uint32_t>(h.hi % internal::kShards);
  }
  Shard& ShardOf(const internal::KeyHash& h) { return *shards[ShardIndexOf(h)]; }
  // Tier t as a mapped tier; the caller knows it is one.
  internal::MappedTier& Mapped(std::size_t t) const { return *tiers[t]->mapped(); }
  // The ...Locked functions take the shard s of the id or hash they work on, its mutex held.
  // The id stored for key (s is h's shard), or kNoEntry; a colliding key is a miss.
  internal::EntryId FindLocked(const Shard& s, const internal::KeyHash& h,
                               std::string_view key) const REQUIRES(s.mu);
  // Whether e (an entry of shard s) is past its deadline.
  bool ExpiredLocked(const Shard& s, const internal::Entry& e, std::chrono::nanoseconds now) const
      REQUIRES(s.mu);
  std::chrono::nanoseconds Now() const { return clock(); }
  // Takes an entry out of the table and its policy; frees it unless pinned.
  void RemoveLocked(Shard& s, internal::EntryId id, bool expired) REQUIRES(s.mu);
  // Frees an unreachable, unpinned entry: slots, counters, pool slot.
  void FreeEntryLocked(Shard& s, internal::EntryId id) REQUIRES(s.mu);
  // Validates, finds, pins and touches; counts a miss. NotFound when absent or expired;
  // Corruption when the chunk was recovered and its bytes fail their checksum (dropped).
  // Without `may_read`, a chunk on an unmapped tier is Busy, with nothing pinned or counted.
  Result<Hit> PinForRead(std::string_view key, bool may_read = true);
  Result<Hit> PinEntry(std::string_view key, bool may_read = true);  // without the check

  // --- durable pools (store_recover.cc) ---
  // Puts the chunks tier t recovered into the index (a key already indexed from a faster
  // tier keeps that copy, this one is released; found again in the same tier, the later wins).
  void RecoverTier(std::size_t t);
  // Checks a pinned recovered chunk's bytes: Ok (and marked verified), or Corruption with the
  // chunk dropped and the pin released.
  Status VerifyRecovered(const Hit& hit, std::string_view key);
  // For a mover holding the claim pin on an unverified chunk: true when intact; else the
  // chunk is dropped (the claim released) and false returned.
  bool VerifyClaimed(internal::EntryId id, std::size_t t);
  // Clean shutdown of every durable tier: index snapshots, superblocks marked clean.
  void ClosePools();
  void Unpin(internal::EntryId id);
  // Counts a served read on the tier and asks for a promotion when it crossed the threshold.
  void FinishRead(const Hit& hit);
  Status PutParts(std::string_view key, std::span<const std::span<const std::byte>> parts,
                  const ChunkMeta& meta);
  // Ok when key is stored (write once), Busy when another key has its hash, nullopt when
  // absent; an expired chunk of key is removed (and nullopt returned). s is h's shard.
  std::optional<Status> CheckStoredLocked(Shard& s, const internal::KeyHash& h,
                                          std::string_view key, std::chrono::nanoseconds now)
      REQUIRES(s.mu);
  // Validates and allocates slots for a chunk of size (evicting as a Put does) and fills its
  // header; nothing is visible yet. already_stored (nothing held) when key is stored.
  Result<Slot> ReserveSlot(std::string_view key, std::size_t size, const ChunkMeta& meta);
  // Publishes a slot whose bytes and header are written: the chunk becomes visible. When a
  // racing Put stored the key first, frees the slot and returns that Put's outcome.
  // *published (when given) is true only when slot's bytes became the stored chunk.
  Status PublishSlot(const Slot& slot, bool* published = nullptr);

  // --- moving chunks (store_move.cc) ---
  // Index of the first tier from `from` on that takes a chunk of size (a mapped one only, with
  // mapped_only: puts, promotions and pins need slots); tiers.size() if none.
  std::size_t TierFor(std::size_t size, std::size_t from, bool mapped_only) const;
  // Both slots for a chunk in tier t, evicting t's coldest while it is full. `sync` marks
  // evictions done for a Put (counted as sync_evictions).
  Result<internal::ChunkSlots> AllocateIn(std::size_t t, std::size_t size, bool sync);
  // A chunk claimed for an unmapped tier and not yet moved: EvictOne hands these to the caller
  // when asked, so that several go to the tier in one Append (MoveAppendClaims).
  struct AppendClaim {
    internal::EntryId id;
    std::size_t size;
    std::size_t to;
  };
  // Evicts tier t's coldest unpinned chunk: demoted to the next tier that takes it, dropped
  // when there is none. False when t has nothing to evict; true on progress or a lost race.
  // With claims, a chunk bound for an unmapped tier is claimed and added there instead of
  // moved (the caller moves it with MoveAppendClaims).
  bool EvictOne(std::size_t t, bool sync, std::vector<AppendClaim>* claims = nullptr);
  // What a move reads of a claimed entry before it copies: the entry is pinned by the mover,
  // so its tier, slots and header stay put until the switch.
  struct ClaimedChunk {
    internal::EntryId id;
    std::size_t tier;
    internal::ChunkHeader header;
    const std::byte* src;
    std::size_t size;
  };
  // Reads a claimed entry; nullopt when it was unverified and failed its checksum (VerifyClaimed
  // has then dropped it: corrupt bytes are never copied onward).
  std::optional<ClaimedChunk> ReadClaimed(internal::EntryId id);
  // Moves a claimed entry (pinned once by the caller, out of its policy) to tier `to`. On
  // failure it stays where it was (or, for a demotion with no room below, is dropped).
  void MoveClaimed(internal::EntryId id, std::size_t to, bool demotion, bool sync);
  // Switches a claimed entry (the caller's pin the only one) to `locator` in tier `to`:
  // counted there and listed in its policy; its old place released and uncounted. The caller
  // counts why it left (eviction, demotion, promotion) and drops its pin.
  void SwitchLocked(Shard& s, internal::EntryId id, std::size_t to, std::uint64_t locator,
                    std::uint16_t class_id) REQUIRES(s.mu);
  // A claimed entry (still in the table) whose demotion found no room below: dropped, counted
  // as an eviction of its tier, the claim released.
  void DropFailedDemotionLocked(Shard& s, internal::EntryId id, bool sync) REQUIRES(s.mu);
  // A move into an unmapped tier, for one chunk (MoveClaimed) or several (background
  // demotion): one Append, then each entry switched to its new place, or put back, or dropped
  // (store_unmapped.cc).
  void MoveClaimedByAppend(std::size_t to, std::span<const ClaimedChunk> moves, bool sync);
  void MoveAppendClaims(std::span<const AppendClaim> claims);
  // Moves a chunk read often in a lower tier up to the first tier that holds it.
  void Promote(internal::EntryId id, internal::KeyHash hash);

  // --- unmapped tiers (store_unmapped.cc) ---
  // A read of a pinned chunk in an unmapped tier into dst: its outcome and metadata.
  struct UnmappedGet {
    const Hit* hit = nullptr;
    std::string_view key;
    std::span<std::byte> dst;  // the chunk's size
    ChunkMeta meta;            // out
    Status status;             // out
  };
  // Reads them (each tier's in one Read). A read whose entry left its tier first is NotFound;
  // an entry whose read failed is dropped. A read that crossed its tier's promotion threshold
  // brings the chunk up from the bytes read, when the first tier has a free slot. The pins
  // stay the caller's.
  void ReadUnmapped(std::span<UnmappedGet> gets);
  // Whether a pinned entry still names the place it named at lookup.
  bool EntryCurrent(const Hit& hit);
  // Copies a chunk of an unmapped tier (pinned once by the caller, its bytes in `bytes`) into a
  // free slot of the first mapped tier that holds it and switches the entry there; does
  // nothing when no slot is free without evicting, or when the entry changed. With `evict`,
  // makes room (for Pin).
  bool PromoteFromRead(const Hit& hit, std::string_view key, std::span<const std::byte> bytes,
                       const ChunkMeta& meta, bool evict);
  // Pin of a chunk in an unmapped tier: reads it into the first mapped tier, switches the entry
  // there and returns it pinned (the caller's pin moves with it).
  Result<Hit> PinUnmapped(const Hit& hit, std::string_view key);
  // Drops the index entries that still name chunks that left unmapped tier t, and adds their
  // hashes to *left_store (for DropOrphans, which must wait until the tier's exclusion ends).
  void DropLeft(std::size_t t, std::span<const internal::TierChunk> gone,
                std::vector<internal::KeyHash>* left_store);

  // --- policies that see requests (eviction_policy.h) ---
  // Tells those policies that a request begins: the keys of its prompt, the first `prefix`
  // stored (LongestPrefix).
  void BeginRequest(std::span<const std::string_view> keys, std::size_t prefix);
  // Whether tier t's policy takes a chunk not stored (a Put about to land there). No lock held.
  bool AdmitTo(std::size_t t, const internal::KeyHash& h, std::size_t size);
  // A chunk left the store: with a first tier whose policy drops orphans, removes its stored
  // successors in the chains that policy saw, and theirs. No lock held.
  void DropOrphans(const internal::KeyHash& h);

  // --- background work (store_maintenance.cc) ---
  void StartMaintenance();
  void StopMaintenance();
  void Kick() EXCLUDES(maintenance_mu);  // wakes the background thread
  void RequestPromotion(internal::EntryId id, internal::KeyHash hash) EXCLUDES(maintenance_mu);
  void RunMaintenancePass(bool sweep) EXCLUDES(pass_mu, maintenance_mu);
  void SweepExpired();

  // --- batched operations (store_batch.cc) ---
  void StartWorkers(unsigned count, const std::vector<int>& cpus);
  void StopWorkers() EXCLUDES(work_mu);
  bool Enqueue(std::shared_ptr<Batch> batch) EXCLUDES(work_mu);
  void WorkerLoop() EXCLUDES(work_mu);
  void RunPiece(Batch& batch, std::size_t piece);
  void RunUnmappedReads(Batch& batch);

  // --- state ---
  internal::EntryTable entries;
  std::array<std::unique_ptr<Shard>, internal::kShards> shards;
  std::vector<std::unique_ptr<internal::TierBackend>> tiers;  // fixed after Open
  std::vector<std::size_t> request_tiers;  // tiers whose policy wants requests; fixed after Open
  bool drop_orphans = false;               // the first tier's policy asks for it; fixed
  std::chrono::seconds ttl{0};
  std::function<std::chrono::nanoseconds()> clock;

  std::atomic<std::uint64_t> misses{0};
  internal::LatencyHistogram put_latency;
  internal::LatencyHistogram get_latency;
  internal::LatencyHistogram batch_get_latency;

  // Background thread.
  std::chrono::milliseconds maintenance_interval{100};
  internal::Mutex maintenance_mu;
  internal::CondVar maintenance_cv;  // kicked or stopping set
  bool kicked GUARDED_BY(maintenance_mu) = false;
  bool stopping GUARDED_BY(maintenance_mu) = false;
  std::deque<std::pair<internal::EntryId, internal::KeyHash>> promotions
      GUARDED_BY(maintenance_mu);
  std::thread maintenance_thread;  // started and joined by the owner's thread
  internal::Mutex pass_mu;  // one maintenance pass at a time
  std::chrono::nanoseconds last_sweep GUARDED_BY(pass_mu){0};

  // Copy threads.
  internal::Mutex work_mu;
  internal::CondVar work_cv;  // work queued or work_stopping set
  // Batches with pieces left to hand out (Batch::next, guarded by work_mu too: a field of
  // another object, which the analysis cannot tie to this mutex).
  std::deque<std::shared_ptr<Batch>> work GUARDED_BY(work_mu);
  bool work_stopping GUARDED_BY(work_mu) = false;
  std::vector<std::thread> workers;  // started and joined by the owner's thread

  // Host-side prefetch for batched gets; null when off. Declared after the tiers, so it is
  // destroyed (its threads joined) before their regions are unmapped.
  std::unique_ptr<Prefetcher> prefetcher;
};

}  // namespace cxlkv
