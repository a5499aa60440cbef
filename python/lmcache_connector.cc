#include "python/lmcache_connector.h"

#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "util/xxh3.h"

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

template <typename Span>
std::size_t TotalBytes(std::span<const Span> buffers) {
  std::size_t bytes = 0;
  for (const Span& b : buffers) bytes += b.size();
  return bytes;
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

int LmcacheConnector::event_fd() const {
  std::shared_lock live(life_);
  return cq_ != nullptr ? cq_->eventfd() : -1;
}

std::string LmcacheConnector::StoreKey(const std::string& key) {
  if (key.size() <= kMaxKeySize) return key;
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  char hex[33];
  std::snprintf(hex, sizeof(hex), "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return key.substr(0, 100) + "#" + hex;
}

std::vector<std::string> LmcacheConnector::StoreKeys(std::span<const std::string> keys) {
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const std::string& k : keys) out.push_back(StoreKey(k));
  return out;
}

std::string LmcacheConnector::SizeMismatch(std::size_t stored, std::size_t buffer) {
  // Another object under the same key: never a partial fill.
  return "the stored chunk is " + std::to_string(stored) + " bytes, the buffer " +
         std::to_string(buffer);
}

Result<std::uint64_t> LmcacheConnector::NewBatch(Kind kind, std::size_t keys,
                                                 std::size_t buffers) {
  if (store_ == nullptr) return Status::Unsupported("the connector is closed");
  if (keys != buffers) {
    return Status::InvalidArgument(std::to_string(keys) + " keys but " + std::to_string(buffers) +
                                   " buffers");
  }
  if (keys >= kMaxBatch) {
    return Status::InvalidArgument("a batch of " + std::to_string(keys) + " keys is over the " +
                                   std::to_string(kMaxBatch - 1) + " a batch may hold");
  }
  std::lock_guard lock(mu_);
  const std::uint64_t id = next_id_++;
  Batch& b = batches_[id];
  b.kind = kind;
  b.per_key.assign(keys, false);
  b.left = keys;
  return id;
}

void LmcacheConnector::FinishAtSubmit(std::uint64_t id, std::vector<bool> per_key,
                                      std::string error, bool refused) {
  {
    std::lock_guard lock(mu_);
    Batch& b = batches_[id];
    b.per_key = std::move(per_key);
    b.error = std::move(error);
    b.refused = refused;
    b.left = 0;
  }
  internal::PostCompletion(*cq_, Completion{UserData(id, kWholeBatch), Status::Ok(), 0});
}

Result<std::uint64_t> LmcacheConnector::SubmitGet(std::span<const std::string> keys,
                                                  std::span<const std::span<std::byte>> buffers) {
  std::shared_lock live(life_);
  Result<std::uint64_t> id = NewBatch(Kind::kGet, keys.size(), buffers.size());
  if (!id.ok()) return id;
  if (TotalBytes(buffers) <= kInlineBytes) {
    // Small batches are copied here: handing them to a copy thread costs more than the copy.
    std::vector<bool> per_key(keys.size(), false);
    std::string error;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      Result<std::size_t> n = store_->Get(StoreKey(keys[i]), buffers[i]);
      per_key[i] = n.ok() && *n == buffers[i].size();
      if (error.empty() && !per_key[i] && !n.status().IsNotFound()) {
        error = "key " + std::to_string(i) + ": " +
                (n.ok() ? SizeMismatch(*n, buffers[i].size()) : n.status().ToString());
      }
    }
    FinishAtSubmit(*id, std::move(per_key), std::move(error), false);
    return id;
  }
  {
    std::lock_guard lock(mu_);
    Batch& b = batches_[*id];
    b.want_size.resize(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) b.want_size[i] = buffers[i].size();
  }
  const std::vector<std::string> store_keys = StoreKeys(keys);
  std::vector<GetRequest> requests(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    requests[i] = GetRequest{store_keys[i], buffers[i], nullptr, UserData(*id, i)};
  }
  // SubmitGets only looks the chunks up, pins them and queues the copies.
  Status s = store_->SubmitGets(requests, *cq_);
  if (!s.ok()) FinishAtSubmit(*id, std::vector<bool>(keys.size(), false), s.ToString(), true);
  return id;
}

Result<std::uint64_t> LmcacheConnector::SubmitSet(
    std::span<const std::string> keys, std::span<const std::span<const std::byte>> buffers) {
  std::shared_lock live(life_);
  Result<std::uint64_t> id = NewBatch(Kind::kSet, keys.size(), buffers.size());
  if (!id.ok()) return id;
  if (TotalBytes(buffers) <= kInlineBytes) {
    std::vector<bool> per_key(keys.size(), false);
    std::string error;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const Status s = store_->Put(StoreKey(keys[i]), buffers[i]);
      per_key[i] = s.ok();
      if (!s.ok() && error.empty()) error = "key " + std::to_string(i) + ": " + s.ToString();
    }
    FinishAtSubmit(*id, std::move(per_key), std::move(error), false);
    return id;
  }
  const std::vector<std::string> store_keys = StoreKeys(keys);
  std::vector<PutRequest> requests(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    requests[i].key = store_keys[i];
    requests[i].bytes = buffers[i];
    requests[i].user_data = UserData(*id, i);
  }
  Status s = store_->SubmitPuts(requests, *cq_);
  if (!s.ok()) FinishAtSubmit(*id, std::vector<bool>(keys.size(), false), s.ToString(), true);
  return id;
}

Result<std::uint64_t> LmcacheConnector::SubmitExists(std::span<const std::string> keys) {
  std::shared_lock live(life_);
  Result<std::uint64_t> id = NewBatch(Kind::kExists, keys.size(), keys.size());
  if (!id.ok()) return id;
  // One ContainsBatch: the index misses of all the keys overlap.
  const std::vector<std::string> store_keys = StoreKeys(keys);
  const std::vector<std::string_view> views(store_keys.begin(), store_keys.end());
  std::unique_ptr<bool[]> found(new bool[keys.size()]);
  store_->ContainsBatch(views, std::span<bool>(found.get(), keys.size()));
  FinishAtSubmit(*id, std::vector<bool>(found.get(), found.get() + keys.size()), "", false);
  return id;
}

Result<std::uint64_t> LmcacheConnector::SubmitDelete(std::span<const std::string> keys) {
  std::shared_lock live(life_);
  Result<std::uint64_t> id = NewBatch(Kind::kDelete, keys.size(), keys.size());
  if (!id.ok()) return id;
  std::vector<bool> per_key(keys.size());
  std::string error;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const Status s = store_->Remove(StoreKey(keys[i]));
    per_key[i] = s.ok();
    if (!s.ok() && !s.IsNotFound() && error.empty()) error = s.ToString();
  }
  FinishAtSubmit(*id, std::move(per_key), std::move(error), false);
  return id;
}

Result<StoreStats> LmcacheConnector::Stats() const {
  std::shared_lock live(life_);
  if (store_ == nullptr) return Status::Unsupported("the connector is closed");
  return store_->Stats();
}

std::vector<BatchCompletion> LmcacheConnector::Drain() {
  std::vector<BatchCompletion> done;
  std::shared_lock live(life_);
  if (cq_ == nullptr) return done;
  Completion polled[64];
  std::lock_guard lock(mu_);
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
          good = false;
          if (b.error.empty()) {
            b.error = "key " + std::to_string(index) + ": " +
                      SizeMismatch(polled[c].size, b.want_size[index]);
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
  std::unique_lock live(life_);  // waits for the submits and drains under way
  if (store_ == nullptr) return;
  store_.reset();  // completes every batch in flight, then closes durable pools clean
  cq_.reset();
  std::lock_guard lock(mu_);
  batches_.clear();
}

}  // namespace cxlkv::lmcache
