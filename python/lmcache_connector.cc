#include "python/lmcache_connector.h"

#include <xxhash.h>

#include <cstdio>
#include <utility>

namespace cxlkv::lmcache {
namespace {

// A store operation's user_data: the batch's future id above, the key's index below. The
// all-ones index marks a batch that finished at submit.
constexpr int kIndexBits = 24;
constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kIndexBits) - 1;
constexpr std::uint64_t kWholeBatch = kIndexMask;

std::uint64_t UserData(std::uint64_t id, std::uint64_t index) {
  return (id << kIndexBits) | index;
}

}  // namespace

Result<std::unique_ptr<LmcacheConnector>> LmcacheConnector::Open(StoreOptions options) {
  Result<std::unique_ptr<Store>> store = Store::Open(std::move(options));
  if (!store.ok()) return store.status();
  Result<std::unique_ptr<CompletionQueue>> cq = CompletionQueue::Create();
  if (!cq.ok()) return cq.status();
  return std::unique_ptr<LmcacheConnector>(
      new LmcacheConnector(std::move(store).value(), std::move(cq).value()));
}

LmcacheConnector::LmcacheConnector(std::unique_ptr<Store> store,
                                   std::unique_ptr<CompletionQueue> cq)
    : store_(std::move(store)), cq_(std::move(cq)) {}

LmcacheConnector::~LmcacheConnector() { Close(); }

int LmcacheConnector::event_fd() const { return cq_ != nullptr ? cq_->eventfd() : -1; }

std::string LmcacheConnector::StoreKey(const std::string& key) {
  if (key.size() <= kMaxKeySize) return key;
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return key.substr(0, 100) + "#" + hex;
}

Result<std::uint64_t> LmcacheConnector::NewBatch(Kind kind, std::size_t keys) {
  if (closed_) return Status::Unsupported("the connector is closed");
  if (keys >= kMaxBatch) {
    return Status::InvalidArgument("a batch of " + std::to_string(keys) + " keys is over the " +
                                   std::to_string(kMaxBatch - 1) + " a batch may hold");
  }
  const std::uint64_t id = next_id_++;
  Batch& b = batches_[id];
  b.kind = kind;
  b.per_key.assign(keys, false);
  b.left = keys;
  return id;
}

void LmcacheConnector::PostFinished(std::uint64_t id) {
  internal::PostCompletion(*cq_, Completion{UserData(id, kWholeBatch), Status::Ok(), 0});
}

Result<std::uint64_t> LmcacheConnector::SubmitGet(std::span<const std::string> keys,
                                                  std::span<const std::span<std::byte>> buffers) {
  if (keys.size() != buffers.size()) {
    return Status::InvalidArgument(std::to_string(keys.size()) + " keys but " +
                                   std::to_string(buffers.size()) + " buffers");
  }
  std::unique_lock lock(mu_);
  Result<std::uint64_t> id = NewBatch(Kind::kGet, keys.size());
  if (!id.ok()) return id;
  Batch& b = batches_[*id];
  std::vector<std::string> store_keys;
  store_keys.reserve(keys.size());
  std::vector<GetRequest> requests(keys.size());
  b.want_size.resize(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    store_keys.push_back(StoreKey(keys[i]));
    b.want_size[i] = buffers[i].size();
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    requests[i] = GetRequest{store_keys[i], buffers[i], nullptr, UserData(*id, i)};
  }
  if (keys.empty()) {
    PostFinished(*id);
    return id;
  }
  // The lock is held across the submit so that Close cannot tear the store down under it;
  // SubmitGets only looks chunks up and queues them (the copies run on the copy threads).
  Status s = store_->SubmitGets(requests, *cq_);
  if (!s.ok()) {
    b.error = s.ToString();
    b.refused = true;
    b.left = 0;
    PostFinished(*id);
  }
  return id;
}

Result<std::uint64_t> LmcacheConnector::SubmitSet(
    std::span<const std::string> keys, std::span<const std::span<const std::byte>> buffers) {
  if (keys.size() != buffers.size()) {
    return Status::InvalidArgument(std::to_string(keys.size()) + " keys but " +
                                   std::to_string(buffers.size()) + " buffers");
  }
  std::unique_lock lock(mu_);
  Result<std::uint64_t> id = NewBatch(Kind::kSet, keys.size());
  if (!id.ok()) return id;
  Batch& b = batches_[*id];
  std::vector<std::string> store_keys;
  store_keys.reserve(keys.size());
  for (const std::string& k : keys) store_keys.push_back(StoreKey(k));
  std::vector<PutRequest> requests(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    requests[i].key = store_keys[i];
    requests[i].bytes = buffers[i];
    requests[i].user_data = UserData(*id, i);
  }
  if (keys.empty()) {
    PostFinished(*id);
    return id;
  }
  Status s = store_->SubmitPuts(requests, *cq_);
  if (!s.ok()) {
    b.error = s.ToString();
    b.refused = true;
    b.left = 0;
    PostFinished(*id);
  }
  return id;
}

Result<std::uint64_t> LmcacheConnector::SubmitExists(std::span<const std::string> keys) {
  std::unique_lock lock(mu_);
  Result<std::uint64_t> id = NewBatch(Kind::kExists, keys.size());
  if (!id.ok()) return id;
  Batch& b = batches_[*id];
  for (std::size_t i = 0; i < keys.size(); ++i) b.per_key[i] = store_->Contains(StoreKey(keys[i]));
  b.left = 0;
  PostFinished(*id);
  return id;
}

Result<std::uint64_t> LmcacheConnector::SubmitDelete(std::span<const std::string> keys) {
  std::unique_lock lock(mu_);
  Result<std::uint64_t> id = NewBatch(Kind::kDelete, keys.size());
  if (!id.ok()) return id;
  Batch& b = batches_[*id];
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const Status s = store_->Remove(StoreKey(keys[i]));
    b.per_key[i] = s.ok();
    if (!s.ok() && !s.IsNotFound() && b.error.empty()) b.error = s.ToString();
  }
  b.left = 0;
  PostFinished(*id);
  return id;
}

std::vector<BatchCompletion> LmcacheConnector::Drain() {
  std::vector<BatchCompletion> done;
  std::unique_lock lock(mu_);
  if (cq_ == nullptr) return done;
  Completion polled[64];
  for (;;) {
    const std::size_t n = cq_->Poll(polled);
    for (std::size_t c = 0; c < n; ++c) {
      const std::uint64_t id = polled[c].user_data >> kIndexBits;
      const std::uint64_t index = polled[c].user_data & kIndexMask;
      auto it = batches_.find(id);
      if (it == batches_.end()) continue;  // cannot happen: every batch is erased once, here
      Batch& b = it->second;
      if (index != kWholeBatch) {
        const Status& s = polled[c].status;
        bool good = s.ok();
        if (b.kind == Kind::kGet && good && polled[c].size != b.want_size[index]) {
          good = false;  // another object of the same key: never a partial fill
          if (b.error.empty()) {
            b.error = "key " + std::to_string(index) + ": the stored chunk is " +
                      std::to_string(polled[c].size) + " bytes, the buffer " +
                      std::to_string(b.want_size[index]);
          }
        }
        b.per_key[index] = good;
        if (!s.ok() && !s.IsNotFound() && b.error.empty()) {
          b.error = "key " + std::to_string(index) + ": " + s.ToString();
        }
        if (--b.left > 0) continue;
      }
      BatchCompletion out;
      out.future_id = id;
      out.per_key = std::move(b.per_key);
      // A set is ok when every key is stored; a get, exists or delete when the batch ran (its
      // per-key results say which keys were there).
      bool all_stored = true;
      for (bool k : out.per_key) all_stored = all_stored && k;
      out.ok = !b.refused && (b.kind != Kind::kSet || all_stored);
      out.error = std::move(b.error);
      if (!out.ok && out.error.empty()) out.error = "not every key was stored";
      batches_.erase(it);
      done.push_back(std::move(out));
    }
    if (n < std::size(polled)) break;
  }
  return done;
}

void LmcacheConnector::Close() {
  std::unique_ptr<Store> store;
  std::unique_ptr<CompletionQueue> cq;
  {
    std::unique_lock lock(mu_);
    if (closed_) return;
    closed_ = true;
    store = std::move(store_);
    cq = std::move(cq_);
  }
  store.reset();  // completes every batch in flight, then closes durable pools clean
  cq.reset();
  std::unique_lock lock(mu_);
  batches_.clear();
}

}  // namespace cxlkv::lmcache
