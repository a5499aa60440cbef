// StoreChunks: ChunkStore over a Store, a thin adapter (one virtual call per request).
#include <utility>

#include "server/chunk_store.h"

namespace cxlkv::serve {
namespace {

class StoreReservation final : public ChunkStore::Reservation {
 public:
  explicit StoreReservation(ReservedChunk r) : r_(std::move(r)) {}
  std::span<std::byte> bytes() override { return {r_.data(), r_.size()}; }
  Result<bool> Commit() override {
    bool published = false;
    CXLKV_RETURN_IF_ERROR(r_.Commit(&published));
    return published;
  }

 private:
  ReservedChunk r_;  // aborted by its destructor unless committed
};

class StoreLease final : public ChunkStore::Lease {
 public:
  explicit StoreLease(PinnedChunk p) : p_(std::move(p)) {}
  std::span<const std::byte> bytes() const override { return {p_.data(), p_.size()}; }
  const ChunkMeta& meta() const override { return p_.meta(); }

 private:
  PinnedChunk p_;
};

class StoreChunkStore final : public ChunkStore {
 public:
  explicit StoreChunkStore(Store& store) : store_(store) {}
  Result<std::unique_ptr<Reservation>> Reserve(std::string_view key, std::size_t size,
                                               const ChunkMeta& meta) override {
    CXLKV_ASSIGN_OR_RETURN(ReservedChunk r, store_.Reserve(key, size, meta));
    return std::unique_ptr<Reservation>(new StoreReservation(std::move(r)));
  }
  Result<std::unique_ptr<Lease>> Pin(std::string_view key) override {
    CXLKV_ASSIGN_OR_RETURN(PinnedChunk p, store_.Pin(key));
    return std::unique_ptr<Lease>(new StoreLease(std::move(p)));
  }
  Result<std::unique_ptr<Lease>> PinWithoutIo(std::string_view key) override {
    CXLKV_ASSIGN_OR_RETURN(PinnedChunk p, store_.PinWithoutIo(key));
    return std::unique_ptr<Lease>(new StoreLease(std::move(p)));
  }
  bool Contains(std::string_view key) const override { return store_.Contains(key); }

 private:
  Store& store_;
};

}  // namespace

std::unique_ptr<ChunkStore> StoreChunks(Store& store) {
  return std::make_unique<StoreChunkStore>(store);
}

}  // namespace cxlkv::serve
