// KeyList: the keys stored through this server, for the LIST command. The store indexes
// chunks by a hash of the key and keeps the key beside the chunk in its tier, so it cannot
// enumerate keys cheaply; the server remembers the keys of its PUTs instead, and LIST
// returns those the store still holds (and forgets the rest). LMCache never sends LIST, so
// Add also forgets evicted keys whenever the list has doubled since it last did: the list
// stays within twice the keys the store holds (plus 1024), at O(1) amortized per Add.
//
// Thread-safety: every member function is thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "cxlkv/store.h"

namespace cxlkv::serve {

class KeyList {
 public:
  void Add(std::string_view key, const Store& store) {
    std::lock_guard lock(mu_);
    keys_.emplace(key);
    if (keys_.size() >= 2 * kept_ + 1024) {
      std::erase_if(keys_, [&store](const std::string& k) { return !store.Contains(k); });
      kept_ = keys_.size();
    }
  }
  std::size_t size() {
    std::lock_guard lock(mu_);
    return keys_.size();
  }
  // Newline-separated keys the store still holds (any order); forgets the others.
  std::string Snapshot(const Store& store) {
    std::lock_guard lock(mu_);
    kept_ = 0;  // recounted below
    std::string out;
    for (auto it = keys_.begin(); it != keys_.end();) {
      if (!store.Contains(*it)) {
        it = keys_.erase(it);
        continue;
      }
      if (!out.empty()) out += '\n';
      out += *it;
      ++it;
    }
    kept_ = keys_.size();
    return out;
  }

 private:
  std::mutex mu_;
  std::unordered_set<std::string> keys_;  // guarded by mu_
  std::size_t kept_ = 0;                   // keys_.size() after the last pruning; mu_
};

}  // namespace cxlkv::serve
