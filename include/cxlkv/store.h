// Store: the tiered store of KV-cache chunks, what a cache engine calls.
//
// A Store holds chunks (opaque byte strings, written once, read many times) under string keys
// across tiers listed fastest first: DRAM, CXL memory (a NUMA node), /dev/dax, a file. Each tier
// is one mapped region carved into slots by a SlabAllocator. A Put lands in the fastest tier
// whose slots can hold the chunk. When a tier fills past its high watermark, a background
// thread demotes its coldest unpinned chunks (copy to the next tier, switch the index entry,
// free the old slot) until it is back under its low watermark; the last tier drops its coldest
// instead. A Put that finds its tier full anyway evicts in the caller's thread (counted as a
// sync eviction). A chunk hit often enough in a lower tier is promoted back to the first tier.
//
// Keys are opaque (LMCache's "vllm@model@...@hash" strings): 1 to 150 bytes. The DRAM index
// holds only an XXH3-128 hash of each key (48 bytes an entry); the full key and the metadata
// live in a 256-byte header beside the chunk in its tier and are compared by every Get, Pin
// and Remove, so a hash collision never returns or drops another key's chunk.
//
// Thread-safety: every Store member function is thread-safe. A PinnedChunk is a value owned by
// one thread at a time (move it between threads, do not share it); its bytes may be read from
// any thread while it lives; a ReservedChunk likewise. The Store must outlive every
// PinnedChunk and ReservedChunk it handed out; destroying
// it completes every submitted batched operation first.
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/completion_queue.h"
#include "cxlkv/latency.h"
#include "cxlkv/memory_source.h"
#include "cxlkv/prefetcher.h"
#include "cxlkv/status.h"

namespace cxlkv {

inline constexpr std::size_t kMaxKeySize = 150;

// Opaque per-chunk metadata (format, dtype, shape as the engine encodes them), stored with the
// chunk and returned with its bytes.
struct ChunkMeta {
  static constexpr std::size_t kMaxSize = 64;
  std::array<std::byte, kMaxSize> bytes{};
  std::uint8_t size = 0;

  // InvalidArgument when `data` is longer than kMaxSize.
  static Result<ChunkMeta> From(std::span<const std::byte> data);
  std::span<const std::byte> view() const { return {bytes.data(), size}; }
  friend bool operator==(const ChunkMeta& a, const ChunkMeta& b);
};

// One tier, in StoreOptions::tiers (fastest first).
struct TierOptions {
  std::string name;                       // used in errors and stats; defaults to "tier<i>"
  std::unique_ptr<MemorySource> source;   // where the tier's bytes live; or, when null:
  std::string source_spec;                // a MemorySource::Parse spec: "dram", "file:/p", ...
  std::size_t capacity = 0;               // bytes mapped for the tier; at least one slab

  // Which chunks leave the tier first when it must make room:
  //   "lru"    least recently put or read;
  //   "fifo"   oldest put (or moved into the tier); reads do not reorder;
  //   "lfu"    fewest reads (a counter per chunk, saturating at 255), least recent among equals;
  //   "s3fifo" S3-FIFO (Yang et al., SOSP'23): new chunks wait in a small FIFO (10% of the
  //            tier) and only those read there move to the main FIFO, which gives each chunk
  //            a second chance per read (up to 3); a ghost list of recently evicted keys sends
  //            a chunk that comes back straight to main. Scan-resistant: one-time chunks
  //            leave quickly.
  //   "prefix-chains", "prefix", "prefix-hazard": prefix-aware (docs/replay.md says what each
  //            is worth on real traces). They take each LongestPrefix call as a request whose
  //            keys, in order, form a chain (a chunk is worth something only while every chunk
  //            before it is stored), and then:
  //            - evict chains from their tail, so the head other prompts share goes last;
  //            - decline a Put (see Put) of a chain's last chunk when it is smaller than the
  //              largest chunk seen (a partial block, which the next turn resends extended
  //              under another key), and of a chunk whose predecessor is not stored;
  //            - in the first tier, remove a dropped chunk's stored successors with it;
  //            "prefix" also ranks chunks by classes (conversation turn x new-part size)
  //            whose reuse it learns online, "prefix-hazard" by each class's chance of a
  //            follow-up within the cache's eviction age, learned from the store's clock
  //            (StoreOptions::clock). Their state is per key seen (about 130 bytes) and, for
  //            "prefix-hazard", per request (one or two 24-byte follow-up records), and it is
  //            bounded: past a million keys (or twice what they last kept) they forget the
  //            keys not stored in the tier, not in the LRU shadow, not recently evicted and
  //            not in the current request (a forgotten key that comes back is new to them),
  //            and they keep at most two million follow-up records, dropping the oldest half
  //            at the limit. StoreStats::policy_bytes counts it.
  std::string eviction = "lru";

  // Background demotion starts when the tier's used slot bytes pass high_watermark x capacity
  // and stops at low_watermark x capacity. Defaults: 0.95 and 0.85; for the last tier 1.0 and
  // 1.0 (it drops chunks only when a put needs the room: dropping early loses hits for nothing).
  std::optional<double> high_watermark;
  std::optional<double> low_watermark;

  // A chunk read this many times while in this tier is moved to the first tier (by the
  // background thread, never in the reader's path); 0 never. Default: 2 for every tier but the
  // first (nothing above it) and the last (chunks that sank all the way are rarely reused).
  std::optional<int> promote_after_hits;

  // How chunk bytes are copied into the tier (puts, demotions, promotions): "memcpy", "nt"
  // (non-temporal stores from 256 KiB up, which bypass the cache; they pay off on large
  // copies the CPU will not read back soon), or "auto" (the faster of the two for this kind of
  // memory, as measured by bench_store; see docs/benchmarks.md). Reads out of a tier always
  // use memcpy: the caller reads what it asked for next.
  std::string copy = "auto";
  // Whether the tier's chunks survive a restart or a crash (file and devdax tiers only; see
  // docs/persistence.md for the format and the measured cost of each):
  //   "volatile"        no on-media format: the tier starts empty at every open (default);
  //   "persist-on-put"  a durable pool: every chunk is durable when Put returns (its bytes,
  //                     then its header's commit word, flushed with libpmem2; msync on a file
  //                     in the page cache);
  //   "background"      a durable pool whose chunks become durable within flush_interval.
  // Opening a durable tier on a pool recovers its chunks (every byte checked against its
  // XXH3 on first read; a chunk that fails is dropped, counted, and never returned). A region
  // that is not a pool is formatted; a pool of another geometry (capacity, slab size, chunk
  // sizes) or format version is refused with an error that says what to run.
  std::string durability = "volatile";
  bool format = false;  // a durable tier starts empty, overwriting the pool it finds
  std::chrono::milliseconds flush_interval{100};  // "background": the flusher's period
};

// The NVMe spill tier, below the memory tiers: chunks demoted from the last memory tier are
// appended to large segments of a log on a file or a raw block device (O_DIRECT, io_uring),
// read back verified (checksums and key), and dropped a whole segment at a time when the log
// is full. Its chunks survive a restart: Open rebuilds their index entries from the log.
struct SpillOptions {
  std::string path;                // a file (created when missing) or a block device; empty: none
  std::uint64_t capacity = 0;      // bytes to use; 0: a device's size (a new file needs one)
  std::uint64_t segment_size = 0;  // a multiple of 4 KiB; 0: 64 MiB
  unsigned queue_depth = 32;       // I/Os in flight for appends and for batched reads
  // Bytes of batched reads at the device at once; 0: queue_depth alone limits them. 16 MiB:
  // large chunks a few at a time, which this VM's disk served best and is ample for an NVMe
  // device (docs/benchmarks.md).
  std::uint64_t read_bytes_in_flight = 16 << 20;
  // Appends are written in whole units of this many bytes of the disk (the units two records
  // share copied, the rest from the chunk's memory): a power of two from 4 KiB to 256 KiB; 0:
  // none. For a disk that writes in units larger than 4 KiB (this VM's: 64 KiB; QLC SSDs with
  // 16-64 KiB indirection units); docs/benchmarks.md.
  std::uint32_t write_unit = 64 * 1024;
  bool direct_io = true;           // O_DIRECT where the file system takes it, else buffered
  std::string eviction = "fifo";   // which whole segment goes: "fifo" or "lru"
  // Reads of a spilled chunk after which it is copied back into the first memory tier (by
  // the reader, from the bytes it just read, when that tier has a free slot); 0 never. Pin of
  // a spilled chunk always brings it back first: a lease needs memory.
  int promote_after_hits = 2;
  bool format = false;             // start empty, overwriting what the path holds
};

struct StoreOptions {
  std::vector<TierOptions> tiers;          // fastest first; 1 to 255
  SpillOptions spill;                      // below the last tier when spill.path is set
  // Chunk sizes to give exact slab classes (e.g. a full 256-token chunk): no byte is wasted
  // on chunks of exactly these sizes. Other sizes get geometric classes (<= 25% waste).
  std::vector<std::size_t> chunk_sizes;
  std::size_t slab_size = std::size_t{4} << 20;  // power of two, 64 KiB .. 32 MiB

  // Time to live of every chunk, from its Put; 0 means chunks never expire. An expired chunk
  // is never returned; its slot is freed when a lookup or the background sweep finds it. The
  // deadline is rounded up to a whole second: a chunk lives ttl to ttl + 1 s.
  std::chrono::seconds ttl{0};
  // The clock for TTL (monotonic nanoseconds); std::chrono::steady_clock when empty. Tests
  // inject their own.
  std::function<std::chrono::nanoseconds()> clock;

  // Run demotion, promotion and the TTL sweep on a background thread. When false they run
  // only inside Maintain() (and a Put that finds its tier full still evicts synchronously).
  bool background_thread = true;
  std::chrono::milliseconds maintenance_interval{100};  // the thread's idle wake-up period

  // Threads that execute SubmitGets and SubmitPuts; at least 1.
  unsigned copy_threads = 2;
  // CPUs to pin the copy threads to, round-robin; empty: not pinned. Pinning keeps a copy
  // thread beside the memory it reads, and on the emulated CXL-SSD beside its fault handler.
  std::vector<int> copy_thread_cpus;

  // Host-side prefetch for batched gets (cxlkv/prefetcher.h): while the copy threads copy
  // chunk k of a SubmitGets, prefetch threads touch the pages of the chunks after it, within
  // the prefetcher's budget. Off when empty. Spilled chunks of a batch need none: they are read
  // ahead of the memory chunks, all at once, by one io_uring batch at the log's queue depth.
  std::optional<PrefetchOptions> prefetch;
};

struct TierStats {
  std::string name;
  std::string source;            // the source's spec
  std::string eviction;          // the policy's name
  std::string copy;              // the copy method in use: "memcpy" or "nt"
  std::size_t capacity = 0;      // bytes mapped
  std::size_t used_bytes = 0;    // slot bytes held by chunks and their headers
  std::size_t chunks = 0;
  std::uint64_t hits = 0;        // Get, Pin and batched gets served from this tier
  std::uint64_t evictions = 0;   // chunks that left this tier to make room (demoted or dropped)
  std::uint64_t demotions = 0;   // of those, chunks copied into a lower tier
  std::uint64_t sync_evictions = 0;  // evictions done inside a Put (the put waited for them)
  std::uint64_t promotions = 0;  // chunks moved from this tier up to the first tier
  std::uint64_t expirations = 0; // chunks freed because their TTL passed
  std::uint64_t bytes_in = 0;    // chunk bytes written into the tier (puts and moves)
  std::uint64_t bytes_out = 0;   // chunk bytes read out of the tier (gets and moves)
  std::string durability;        // "volatile", "persist-on-put", "background"
  std::uint64_t recovered = 0;   // chunks found in the pool (the spill tier: the log) at open
  // Damage found and dropped, never returned: at open, committed headers that fail their
  // checks (and no crash can leave: docs/persistence.md); on first read, recovered chunks whose
  // bytes fail their checksum. In the spill tier, chunks whose read found them corrupt.
  std::uint64_t corrupt_dropped = 0;
  std::uint64_t read_errors = 0;  // spill tier: reads that failed (damaged, or segment evicted)
  double recovery_seconds = 0;   // time the pool took to open
  bool recovered_from_snapshot = false;
};

struct StoreStats {
  std::vector<TierStats> tiers;       // the memory tiers, then the spill tier when there is one
  double spill_write_amplification = 0;  // device bytes written per chunk byte spilled
  std::uint64_t misses = 0;           // Get, Pin and batched gets that found no chunk
  std::size_t index_entries = 0;
  // DRAM the index spends per chunk, averaged over the live entries: entry slots handed out
  // (48 B each, including free ones kept for reuse), the hash tables, and the memory tiers'
  // slab allocator bookkeeping (SlabAllocatorStats::slot_bookkeeping_bytes: a chunk takes a
  // data and a header slot). Eviction policy state (the S3-FIFO ghost list) is counted apart
  // in policy_bytes.
  double index_bytes_per_entry = 0;
  std::size_t policy_bytes = 0;
  LatencySummary put_latency;        // Put, sync or from SubmitPuts (run time, no queueing)
  LatencySummary get_latency;        // Get
  LatencySummary batch_get_latency;  // each op of SubmitGets, from submit to completion
  PrefetchStats prefetch;            // zeros when StoreOptions::prefetch is empty
  std::string ToString() const;
};

// One read of a batched get. The key is copied at submit; dst must stay valid (and unread)
// until the operation's completion arrives.
struct GetRequest {
  std::string_view key;
  std::span<std::byte> dst;
  ChunkMeta* meta = nullptr;      // receives the metadata when not null (before completion)
  std::uint64_t user_data = 0;    // returned in the Completion
};

// One write of a batched put. The key and meta are copied at submit; the bytes (one span, or
// several parts gathered in order when `parts` is not empty) must stay valid until completion.
struct PutRequest {
  std::string_view key;
  std::span<const std::byte> bytes;
  std::span<const iovec> parts;
  ChunkMeta meta;
  std::uint64_t user_data = 0;
};

class Store;
namespace internal {
struct StoreInternals;  // backends/store_internals.h: narrow hooks for components beside the store
}

// A lease on one chunk: while it lives the chunk is not evicted, moved or freed and data()
// stays valid (a Remove during the lease takes effect for lookups at once; the slot is freed
// when the lease ends). Move-only; an empty (moved-from) lease has data() == nullptr.
class PinnedChunk {
 public:
  PinnedChunk() = default;
  ~PinnedChunk() { Release(); }
  PinnedChunk(PinnedChunk&& other) noexcept;
  PinnedChunk& operator=(PinnedChunk&& other) noexcept;
  PinnedChunk(const PinnedChunk&) = delete;
  PinnedChunk& operator=(const PinnedChunk&) = delete;

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const ChunkMeta& meta() const { return meta_; }
  std::size_t tier() const { return tier_; }  // index into StoreOptions::tiers
  void Release();                              // ends the lease early

 private:
  friend class Store;
  void* store_ = nullptr;           // Store::Impl
  std::uint32_t entry_ = 0xFFFFFFFF;  // the index entry holding the pin
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t tier_ = 0;
  ChunkMeta meta_;
};

// A slot reserved for a chunk whose bytes are written in place (received from a socket
// straight into the tier, with no staging buffer), then published by Commit. Until Commit
// the chunk is invisible: Get, Contains and Size do not find it, and destroying the
// reservation (or Abort) frees the slot, so a half-written chunk is never seen. Move-only.
// When the key was already stored at Reserve (write once), or a tier's policy declined the
// chunk (see Store::Put), already_stored() is true, data() is null and Commit is a no-op
// success: the caller drops the bytes it was sent.
class ReservedChunk {
 public:
  ReservedChunk();
  ~ReservedChunk();
  ReservedChunk(ReservedChunk&& other) noexcept;
  ReservedChunk& operator=(ReservedChunk&& other) noexcept;
  ReservedChunk(const ReservedChunk&) = delete;
  ReservedChunk& operator=(const ReservedChunk&) = delete;

  std::byte* data() const;   // size() writable bytes in the tier; null when already_stored
  std::size_t size() const;
  bool already_stored() const;
  // Publishes the chunk, with the outcome Put would have had: Ok (also when a racing Put
  // stored the key first; its bytes are kept), NoSpace when the index cannot grow. The
  // reservation is empty afterwards. *published, when given, says whether these bytes became
  // the stored chunk: false when the key was already stored at Reserve or a racing Put or
  // Commit stored it first (a server counts only the PUT that won as stored).
  Status Commit(bool* published = nullptr);
  void Abort();  // frees the slot; the chunk was never visible

 private:
  friend class Store;
  struct State;
  std::unique_ptr<State> state_;
};

class Store {
 public:
  // Maps every tier and carves it into slots. Errors name the tier: an empty tier list, a
  // zero or sub-slab capacity, an unknown source spec, eviction policy or copy method, bad
  // watermarks, a failed mapping.
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Stores `bytes` under `key` (write once: when the key is already stored this is a no-op
  // success and the stored bytes are kept). A tier's eviction policy may decline a chunk it
  // holds useless (the prefix policies: one no prefix lookup can reach): the Put is then an
  // Ok that stores nothing, as if the chunk had been evicted at once; Contains says false and
  // the engine may put it again later. Reserve likewise gives an already_stored() reservation. The chunk is visible to Get only once all of its
  // bytes are written. InvalidArgument for a bad key, an empty chunk, or one larger than every
  // tier's largest slot; NoSpace when every tier is full and nothing can be evicted (all
  // pinned); Busy when a different stored key has the same 128-bit hash (not stored).
  Status Put(std::string_view key, std::span<const std::byte> bytes, const ChunkMeta& meta = {});
  // The same, gathering the chunk from parts in order (e.g. the K and V halves).
  Status Put(std::string_view key, std::span<const iovec> parts, const ChunkMeta& meta = {});

  // Reserves a slot for a chunk of `size` bytes under key, to be written in place and then
  // committed (see ReservedChunk). Evicts to make room and fails as Put does.
  Result<ReservedChunk> Reserve(std::string_view key, std::size_t size,
                                const ChunkMeta& meta = {});

  // Copies the chunk into dst and returns its size; `meta`, when given, receives its
  // metadata. NotFound when absent; InvalidArgument when dst is smaller than the chunk.
  Result<std::size_t> Get(std::string_view key, std::span<std::byte> dst,
                          ChunkMeta* meta = nullptr);

  // A lease on the chunk's bytes in place (zero-copy). NotFound when absent.
  Result<PinnedChunk> Pin(std::string_view key);
  // As Pin, but never waits for I/O: a chunk in a tier read through I/O (the spill log), which
  // Pin first reads into a memory tier, is Busy instead, with nothing read, pinned or counted.
  // For event loops, which hand that chunk's Pin to a thread that may wait.
  Result<PinnedChunk> PinWithoutIo(std::string_view key);

  // Batched, asynchronous get of the chunks one request will read, in the order it reads
  // them: the copy threads start at the first and work down the list (a large chunk is split
  // across threads, every byte copied once). Every request gets exactly one Completion on cq:
  // Ok with the size, NotFound, or InvalidArgument (bad key, dst too small). Chunks are looked
  // up and pinned at submit, so what the completion copies is what was stored at that moment.
  // Returns an error (and posts nothing) only when the store is shutting down.
  Status SubmitGets(std::span<const GetRequest> requests, CompletionQueue& cq);
  // Batched, asynchronous put: every request runs as Put on a copy thread, in order, and gets
  // one Completion with Put's status.
  Status SubmitPuts(std::span<const PutRequest> requests, CompletionQueue& cq);

  // Lookups without the bytes: NotFound / false when absent. Decided by the key's 128-bit hash
  // alone (the full key is checked by Get, Pin and Remove, which read or drop the chunk), so
  // they touch only the DRAM index; no recency or stats change.
  Result<std::size_t> Size(std::string_view key) const;
  bool Contains(std::string_view key) const;
  // Contains for many keys at once: found[i] says whether keys[i] is stored (false for an
  // invalid key); returns how many are. found must be as long as keys. The same answers as a
  // loop of Contains, faster on a large index: the cache misses of all the lookups overlap
  // instead of following one another.
  std::size_t ContainsBatch(std::span<const std::string_view> keys, std::span<bool> found) const;

  // Removes the key at once (Contains is false, a new Put may store it again). The slot is
  // freed now, or when the last lease on the chunk ends if it is pinned. NotFound when absent.
  Status Remove(std::string_view key);

  // How many leading keys are stored, stopping at the first absent one. With a prefix-aware
  // eviction policy in some tier, the call also tells that policy a request begins: these keys
  // are one prompt's chunks in order, the engine reads the stored prefix next and puts the
  // rest in order (TierOptions::eviction).
  std::size_t LongestPrefix(std::span<const std::string_view> keys) const;

  // Runs one pass of the background work in the caller's thread: pending promotions, demotion
  // of every tier above its high watermark down to its low one, and the TTL sweep. For stores
  // opened with background_thread = false, and for tests that need a settled state.
  void Maintain();

  // Makes every chunk put so far durable in the tiers that keep chunks across restarts
  // (TierOptions::durability "background"; the others need nothing). Destroying the store
  // does the same, then records a clean shutdown.
  void Sync();

  StoreStats Stats() const;

 private:
  friend class PinnedChunk;
  friend class ReservedChunk;
  friend struct internal::StoreInternals;
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  Result<PinnedChunk> PinChunk(std::string_view key, bool may_read);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
