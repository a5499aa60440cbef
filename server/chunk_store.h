// ChunkStore: the three things a connection asks of the store (reserve a slot to receive a
// PUT into, pin a chunk to send a GET from, look a key up), as an interface. The server runs
// on a Store through StoreChunks(); the connection state machine's fuzz target
// (server/fuzz/) drives it against a small in-memory ChunkStore whose every byte it can
// check, without building the tiers.
//
// Thread-safety: implementations are thread-safe (StoreChunks is, as Store is). A
// Reservation or Lease is used by one thread at a time and must not outlive its ChunkStore.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include "cxlkv/status.h"
#include "cxlkv/store.h"

namespace cxlkv::serve {

class ChunkStore {
 public:
  // A slot a PUT's payload is received into, invisible until Commit; destroying it without
  // Commit frees the slot (a half-received chunk is never seen).
  class Reservation {
   public:
    virtual ~Reservation() = default;
    // The writable bytes; empty when the key was already stored at Reserve (write once: the
    // caller reads and drops the payload).
    virtual std::span<std::byte> bytes() = 0;
    // Publishes the chunk. True when these bytes became the stored chunk; false when the key
    // was stored first (at Reserve, or by a racing PUT that committed before this one).
    virtual Result<bool> Commit() = 0;
  };
  // A chunk held in place (not evicted, moved or freed) until the lease is destroyed.
  class Lease {
   public:
    virtual ~Lease() = default;
    virtual std::span<const std::byte> bytes() const = 0;
    virtual const ChunkMeta& meta() const = 0;
  };

  virtual ~ChunkStore() = default;
  // Fails as Store::Reserve does (NoSpace, InvalidArgument for a chunk larger than any slot).
  virtual Result<std::unique_ptr<Reservation>> Reserve(std::string_view key, std::size_t size,
                                                       const ChunkMeta& meta) = 0;
  // NotFound when absent.
  virtual Result<std::unique_ptr<Lease>> Pin(std::string_view key) = 0;
  // As Pin, but Busy (nothing pinned) where Pin would wait for I/O (Store::PinWithoutIo): the
  // event loop then pins it from a reader thread. A store that never waits pins at once.
  virtual Result<std::unique_ptr<Lease>> PinWithoutIo(std::string_view key) { return Pin(key); }
  virtual bool Contains(std::string_view key) const = 0;
};

// The server's ChunkStore: a Store, which must outlive it.
std::unique_ptr<ChunkStore> StoreChunks(Store& store);

}  // namespace cxlkv::serve
