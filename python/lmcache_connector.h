// LmcacheConnector: a Store behind LMCache's native storage-connector contract, the one its
// MP-mode `native_plugin` L2 adapter drives (LMCache's csrc/storage_backends/
// connector_interface.h, IStorageConnector; lmcache/v1/distributed/l2_adapters/
// native_connector_l2_adapter.py wraps the Python object; docs/lmcache.md cites the commits).
//
// The contract: batches of keys go in with the caller's buffers, each batch gets a future id
// at once, and one fd (an eventfd) turns readable while finished batches wait to be drained.
// Every submitted batch produces exactly one BatchCompletion: the future id, ok, an error
// message, and one result per key (stored / found / loaded / deleted).
//
// It maps almost one to one onto the Store: a get batch is one Store::SubmitGets (the copy
// threads fill the caller's buffers straight from the tiers, in order), a set batch one
// Store::SubmitPuts (one copy, from the caller's buffer into the tier); exists and delete run
// on the index at submit. Batches of at most kInlineBytes are copied at submit, in the
// caller's thread: handing 64 KiB to a copy thread and waking the caller again costs more than
// copying it. event_fd() is the store's CompletionQueue eventfd: no thread sits between a copy
// thread finishing and the caller waking.
//
// Per key, a get is loaded only when the stored chunk's size is exactly the buffer's: LMCache
// sizes its buffers from the object's layout, so a chunk of another size is another object,
// never a partial fill. A set batch is ok only when every key is stored (or was already: keys
// are write once). Keys longer than the store's 150 bytes are stored under their first 100
// bytes, '#', and the 32 hex digits of their XXH3-128 (the store compares full keys, so two
// long keys collide only if their 128-bit hashes do).
//
// Thread-safety: every member function is thread-safe. The buffers of a get or set batch must
// stay valid until its completion is drained; Close() waits for every batch in flight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cxlkv/completion_queue.h"
#include "cxlkv/status.h"
#include "cxlkv/store.h"

namespace cxlkv::lmcache {

struct BatchCompletion {
  std::uint64_t future_id = 0;
  bool ok = false;
  std::string error;          // empty when ok
  std::vector<bool> per_key;  // one per key of the batch, in order
};

class LmcacheConnector {
 public:
  static Result<std::unique_ptr<LmcacheConnector>> Open(StoreOptions options);
  ~LmcacheConnector();
  LmcacheConnector(const LmcacheConnector&) = delete;
  LmcacheConnector& operator=(const LmcacheConnector&) = delete;

  // Readable while finished batches wait for Drain. Valid until Close.
  int event_fd() const;

  // Each returns the batch's future id; the batch's outcome comes through Drain. InvalidArgument
  // (nothing submitted) when keys and buffers differ in number or a batch is over kMaxBatch
  // keys; Unsupported after Close.
  Result<std::uint64_t> SubmitGet(std::span<const std::string> keys,
                                  std::span<const std::span<std::byte>> buffers);
  Result<std::uint64_t> SubmitSet(std::span<const std::string> keys,
                                  std::span<const std::span<const std::byte>> buffers);
  Result<std::uint64_t> SubmitExists(std::span<const std::string> keys);
  Result<std::uint64_t> SubmitDelete(std::span<const std::string> keys);

  // The store's statistics (not part of LMCache's contract: for operators and tools).
  // Unsupported after Close.
  Result<StoreStats> Stats() const;

  // Every batch that finished since the last call (in no particular order); never blocks.
  std::vector<BatchCompletion> Drain();

  // Waits for every batch in flight, then closes the store (a durable pool is closed clean)
  // and the eventfd. Idempotent.
  void Close();

  // The store, for tools and tests that look beyond the contract (stats, Sync); null after
  // Close. Not to be used concurrently with Close.
  Store* store() { return store_.get(); }

  static constexpr std::size_t kMaxBatch = std::size_t{1} << 24;
  static constexpr std::size_t kInlineBytes = std::size_t{256} << 10;

 private:
  enum class Kind { kGet, kSet, kExists, kDelete };
  struct Batch {
    Kind kind;
    std::vector<std::size_t> want_size;  // a get: each buffer's size
    std::vector<bool> per_key;
    std::size_t left = 0;  // store completions still to come
    std::string error;     // the first failure, for the completion's message
    bool refused = false;  // the store refused the whole batch (it is shutting down)
  };

  LmcacheConnector(std::unique_ptr<Store> store, std::unique_ptr<CompletionQueue> cq);
  // Checks a batch (the store open, as many buffers as keys, not too many keys) and registers
  // it. The caller holds life_ shared.
  Result<std::uint64_t> NewBatch(Kind kind, std::size_t keys, std::size_t buffers);
  // Records the outcome of a batch that finished at submit (small gets and sets, exists,
  // delete, a refused submit) and posts its completion.
  void FinishAtSubmit(std::uint64_t id, std::vector<bool> per_key, std::string error,
                      bool refused);
  static std::string StoreKey(const std::string& key);
  static std::vector<std::string> StoreKeys(std::span<const std::string> keys);
  static std::string SizeMismatch(std::size_t stored, std::size_t buffer);

  // Shared by submits and Drain, exclusive for Close: the store and queue live while held.
  mutable std::shared_mutex life_;
  std::unique_ptr<Store> store_;  // null after Close
  std::unique_ptr<CompletionQueue> cq_;
  std::mutex mu_;
  std::unordered_map<std::uint64_t, Batch> batches_;  // guarded by mu_
  std::uint64_t next_id_ = 1;                          // guarded by mu_
};

}  // namespace cxlkv::lmcache
