// KeyList: the keys stored through this server, for the LIST command. The store indexes
// chunks by a hash of the key and keeps the key beside the chunk in its tier, so it cannot
// enumerate keys cheaply; the server remembers the keys of its PUTs instead, and LIST
// returns those the store still holds (and forgets the rest).
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
  void Add(std::string_view key) {
    std::lock_guard lock(mu_);
    keys_.emplace(key);
  }
  // Newline-separated keys the store still holds (any order); forgets the others.
  std::string Snapshot(const Store& store) {
    std::lock_guard lock(mu_);
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
    return out;
  }

 private:
  std::mutex mu_;
  std::unordered_set<std::string> keys_;  // guarded by mu_
};

}  // namespace cxlkv::serve
