// MemoryChunkStore: a ChunkStore in ordinary memory, for the connection fuzz target: write
// once, no eviction, a byte capacity shared by stored chunks and open reservations, and
// counts of what is open, so the target can check that a connection leaves nothing behind.
// Header-only.
//
// Thread-safety: none; one thread drives it (the fuzz target).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/chunk_store.h"

namespace cxlkv::serve::fuzz {

class MemoryChunkStore final : public ChunkStore {
 public:
  struct Chunk {
    std::vector<std::byte> bytes;
    ChunkMeta meta;
  };

  explicit MemoryChunkStore(std::size_t capacity) : capacity_(capacity) {}

  Result<std::unique_ptr<Reservation>> Reserve(std::string_view key, std::size_t size,
                                               const ChunkMeta& meta) override {
    if (key.empty() || key.size() > kMaxKeySize || size == 0) {
      return Status::InvalidArgument("bad reservation");
    }
    if (chunks_.count(std::string(key)) != 0) {
      return std::unique_ptr<Reservation>(new MemoryReservation(*this, std::string(key), 0, meta));
    }
    if (used_ + size > capacity_) return Status::NoSpace("memory store full");
    used_ += size;
    return std::unique_ptr<Reservation>(new MemoryReservation(*this, std::string(key), size, meta));
  }
  Result<std::unique_ptr<Lease>> Pin(std::string_view key) override {
    auto it = chunks_.find(std::string(key));
    if (it == chunks_.end()) return Status::NotFound("no chunk");
    return std::unique_ptr<Lease>(new MemoryLease(*this, it->second));
  }
  bool Contains(std::string_view key) const override {
    return chunks_.count(std::string(key)) != 0;
  }

  const std::map<std::string, Chunk>& chunks() const { return chunks_; }
  int open_reservations() const { return open_reservations_; }
  int open_leases() const { return open_leases_; }
  std::size_t used() const { return used_; }

 private:
  class MemoryReservation final : public Reservation {
   public:
    MemoryReservation(MemoryChunkStore& s, std::string key, std::size_t size, const ChunkMeta& meta)
        : s_(s), key_(std::move(key)), bytes_(size), meta_(meta) {
      ++s_.open_reservations_;
    }
    ~MemoryReservation() override {
      --s_.open_reservations_;
      if (!committed_) s_.used_ -= bytes_.size();
    }
    std::span<std::byte> bytes() override { return bytes_; }
    Result<bool> Commit() override {
      if (committed_) return Status::InvalidArgument("committed twice");
      committed_ = true;
      if (bytes_.empty() || s_.chunks_.count(key_) != 0) {
        s_.used_ -= bytes_.size();
        return false;
      }
      s_.chunks_[key_] = Chunk{std::move(bytes_), meta_};
      return true;
    }

   private:
    MemoryChunkStore& s_;
    std::string key_;
    std::vector<std::byte> bytes_;
    ChunkMeta meta_;
    bool committed_ = false;
  };
  class MemoryLease final : public Lease {
   public:
    MemoryLease(MemoryChunkStore& s, const Chunk& c) : s_(s), c_(c) { ++s_.open_leases_; }
    ~MemoryLease() override { --s_.open_leases_; }
    std::span<const std::byte> bytes() const override { return c_.bytes; }
    const ChunkMeta& meta() const override { return c_.meta; }

   private:
    MemoryChunkStore& s_;
    const Chunk& c_;  // chunks are never removed: the reference stays valid
  };

  std::size_t capacity_;
  std::size_t used_ = 0;  // stored chunks and open reservations
  std::map<std::string, Chunk> chunks_;
  int open_reservations_ = 0;
  int open_leases_ = 0;
};

}  // namespace cxlkv::serve::fuzz
