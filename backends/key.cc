#include "backends/key.h"

#include <atomic>
#include <string>

#include "cxlkv/store.h"
#include "util/xxh3.h"

namespace cxlkv::internal {
namespace {
std::atomic<KeyHasher> g_hasher{nullptr};
}  // namespace

Status ValidateKey(std::string_view key) {
  if (key.empty()) return Status::InvalidArgument("empty key");
  if (key.size() > kMaxKeySize) {
    return Status::InvalidArgument("key of " + std::to_string(key.size()) +
                                   " bytes is longer than the limit of " +
                                   std::to_string(kMaxKeySize));
  }
  return Status::Ok();
}

KeyHash HashKey(std::string_view key) {
  if (KeyHasher hook = g_hasher.load(std::memory_order_relaxed); hook != nullptr) {
    return hook(key);
  }
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  return KeyHash{h.low64, h.high64};
}

void SetKeyHasherForTesting(KeyHasher hasher) { g_hasher.store(hasher); }

}  // namespace cxlkv::internal
