// PoolScan: what a durable pool image holds, read from its superblocks, slab table and chunk
// headers alone (chunk bytes are never read: they are checked against their XXH3 when first
// read after the reopen, or by `cxlkv fsck`).
//
// The scan trusts nothing: any bytes at all give either an error or a scan whose spans lie in
// the region without overlapping and whose chunks each own a distinct header slot and a
// distinct data slot of a span of a fitting size, and each has a committed, whole header that
// names that data slot, that size and a key of that hash. A clean pool's index snapshot saves
// reading the free header slots and settling conflicts, not checking the headers it names:
// after a clean close the media may still be damaged, and the store reads key, metadata and
// checksum from those headers. Conflicts (two committed headers naming one
// data slot or one key, which a crash in background durability can leave) go to the higher
// sequence number; the others are listed as losers, for the pool to free.
//
// Thread-safety: ScanPool reads the image only; it may run its header scan on several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/key.h"
#include "backends/pool/pool_format.h"
#include "cxlkv/status.h"

namespace cxlkv::internal {

struct ScannedSpan {
  std::size_t first_slab = 0;
  std::size_t slabs = 0;
  std::size_t slot_size = 0;
};

struct ScannedChunk {
  KeyHash hash;                  // of the header's key
  std::uint32_t header_ref = 0;  // 256-byte units from the region start
  std::uint32_t data_ref = 0;
  std::uint32_t size = 0;
  std::uint64_t sequence = 0;
};

// Why a committed header gives no chunk (or, for a snapshot record, why the header it names
// does not match it).
enum class DropReason : std::uint8_t {
  kTorn,              // committed state with a failing check word
  kBadFields,         // an unknown state, or a whole header with fields out of range
  kBadDataSlot,       // naming bytes that are not a data slot of a fitting span
  kSnapshotMismatch,  // a snapshot record whose header is not that chunk's committed header
  kWipedSlot,         // format 2: a free state without the free mark (zeroed, or damaged)
};
std::string_view DropReasonName(DropReason r);

struct DroppedHeader {
  std::uint32_t header_ref = 0;  // 256-byte units from the region start
  DropReason reason = DropReason::kTorn;
};

struct PoolScanCounts {
  std::uint64_t header_slots = 0;    // header slots looked at
  std::uint64_t pending = 0;         // written but never committed (a put cut short)
  std::uint64_t torn = 0;            // committed state with a failing check
  std::uint64_t bad_fields = 0;      // committed and whole, but fields out of range
  std::uint64_t bad_data_slot = 0;   // naming bytes that are not a data slot of a fitting span
  std::uint64_t conflicts = 0;       // lost to a newer header for the same slot or key
  std::uint64_t bad_slab_records = 0;  // slab records that form no valid span
  std::uint64_t wiped = 0;             // header slots whose commit word is wiped (format 2)
  std::uint64_t snapshot_mismatch = 0;  // snapshot records whose header does not match them
  std::uint64_t snapshot_chunks = 0;   // chunks taken from the snapshot (headers checked)
  bool used_snapshot = false;
  std::string snapshot_problem;      // why a clean pool's snapshot was not used; "" if it was
};

struct PoolScan {
  Superblock superblock;
  int superblock_slot = 0;
  std::vector<ScannedSpan> spans;
  std::vector<ScannedChunk> chunks;
  std::vector<std::uint32_t> losers;  // header refs of committed headers that lost a conflict
  std::vector<DroppedHeader> dropped;  // committed headers that give no chunk, and why
  std::uint64_t max_sequence = 0;
  PoolScanCounts counts;
};

struct ScanOptions {
  unsigned threads = 1;          // header scan threads
  bool use_snapshot = true;      // when the superblock says clean and the snapshot checks out
};

// Whether a crash can leave what a reopen drops, in a pool whose newest superblock is `sb`;
// else it is damage. Under persist-on-put a commit word says committed only once its header
// and bytes are persistent, and a free is persistent before the slots are reused, so no
// crash leaves a torn header, a conflict, a header naming a freed span or a chunk whose bytes
// fail. Under background durability frees are not flushed: after a crash, a freed header can
// come back committed over a reused slot (torn: its body half rewritten; a conflict; a span
// since given to another class; bytes since overwritten). A clean close flushed everything
// the snapshot names, and no 8-byte commit word is ever half written, so an unknown state or
// fields out of range behind a valid check are damage in every mode.
bool CrashCanLeave(DropReason reason, const Superblock& sb);
bool CrashCanLeaveConflicts(const Superblock& sb);
bool CrashCanLeaveBadBytes(const Superblock& sb);

// Errors: NotFound (not a pool), Corruption (no valid superblock, or an image shorter than
// the capacity its superblock states), Unsupported (a newer format).
Result<PoolScan> ScanPool(std::span<const std::byte> image, const ScanOptions& options = {});

}  // namespace cxlkv::internal
