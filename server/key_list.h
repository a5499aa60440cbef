// KeyList: the keys stored through this server, for the LIST command. The store indexes
// chunks by a hash of the key and keeps the key beside the chunk in its tier, so it cannot
// enumerate keys cheaply; the server remembers the keys of its PUTs instead, and LIST
// returns those the store still holds (and forgets the rest). LMCache never sends LIST, so
// Add also forgets evicted keys whenever the list has doubled since it last did: the list
// stays within twice the keys the store holds (plus 1024), at O(1) amortized per Add.
//
// A LIST reply is capped (ServerOptions::max_list_bytes): Snapshot stops at that many bytes,
// so no client makes the server copy and hold the whole key list.
//
// Thread-safety: every member function is thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>

#include "server/chunk_store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::serve {

class KeyList {
 public:
  void Add(std::string_view key, const ChunkStore& store) {
    internal::MutexLock lock(mu_);
    keys_.emplace(key);
    if (keys_.size() >= 2 * kept_ + 1024) {
      std::erase_if(keys_, [&store](const std::string& k) { return !store.Contains(k); });
      kept_ = keys_.size();
    }
  }
  std::size_t size() {
    internal::MutexLock lock(mu_);
    return keys_.size();
  }
  // Newline-separated keys the store still holds (any order), at most max_bytes of them;
  // *truncated (when given) says whether keys were left out. Forgets the keys it finds the
  // store no longer holds.
  std::string Snapshot(const ChunkStore& store, std::size_t max_bytes, bool* truncated = nullptr) {
    internal::MutexLock lock(mu_);
    std::string out;
    bool cut = false;
    for (auto it = keys_.begin(); it != keys_.end();) {
      if (!store.Contains(*it)) {
        it = keys_.erase(it);
        continue;
      }
      if (out.size() + (out.empty() ? 0 : 1) + it->size() > max_bytes) {
        cut = true;
        break;
      }
      if (!out.empty()) out += '\n';
      out += *it;
      ++it;
    }
    if (!cut) kept_ = keys_.size();  // every key was checked
    if (truncated != nullptr) *truncated = cut;
    return out;
  }

 private:
  internal::Mutex mu_;
  std::unordered_set<std::string> keys_ GUARDED_BY(mu_);
  std::size_t kept_ GUARDED_BY(mu_) = 0;  // keys_.size() after the last full pruning
};

}  // namespace cxlkv::serve
