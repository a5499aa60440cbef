// ConnectionLimits: how many lm:// connections the server holds at once, in all and per peer
// (a TCP client's address, whatever its port; a Unix socket client's user id). An admitted
// connection holds a ConnectionTicket, which gives its place back when destroyed.
//
// Thread-safety: ConnectionLimits' members are thread-safe; a ticket belongs to one thread at
// a time and must not outlive the limits.
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <utility>

#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv::serve {

class ConnectionLimits;

class ConnectionTicket {
 public:
  ConnectionTicket() = default;
  ~ConnectionTicket() { Release(); }
  ConnectionTicket(ConnectionTicket&& o) noexcept
      : limits_(std::exchange(o.limits_, nullptr)), peer_(std::move(o.peer_)) {}
  ConnectionTicket& operator=(ConnectionTicket&& o) noexcept {
    if (this != &o) {
      Release();
      limits_ = std::exchange(o.limits_, nullptr);
      peer_ = std::move(o.peer_);
    }
    return *this;
  }
  ConnectionTicket(const ConnectionTicket&) = delete;
  ConnectionTicket& operator=(const ConnectionTicket&) = delete;
  bool admitted() const { return limits_ != nullptr; }
  void Release();

 private:
  friend class ConnectionLimits;
  ConnectionTicket(ConnectionLimits* limits, std::string peer)
      : limits_(limits), peer_(std::move(peer)) {}
  ConnectionLimits* limits_ = nullptr;
  std::string peer_;
};

class ConnectionLimits {
 public:
  enum class Verdict { kAdmitted, kServerFull, kPeerFull };

  // max_per_peer 0: no per-peer limit.
  ConnectionLimits(std::size_t max_total, std::size_t max_per_peer)
      : max_total_(max_total), max_per_peer_(max_per_peer) {}

  // A ticket when the server and the peer are both under their limits; otherwise an empty
  // ticket and, in *verdict, which limit refused it.
  ConnectionTicket Admit(const std::string& peer, Verdict* verdict) {
    internal::MutexLock lock(mu_);
    if (total_ >= max_total_) {
      *verdict = Verdict::kServerFull;
      return {};
    }
    if (max_per_peer_ > 0) {
      std::size_t& n = per_peer_[peer];
      if (n >= max_per_peer_) {
        *verdict = Verdict::kPeerFull;
        return {};
      }
      ++n;
    }
    ++total_;
    *verdict = Verdict::kAdmitted;
    return ConnectionTicket(this, max_per_peer_ > 0 ? peer : std::string());
  }
  std::size_t open() const {
    internal::MutexLock lock(mu_);
    return total_;
  }
  std::size_t max_total() const { return max_total_; }

 private:
  friend class ConnectionTicket;
  void Leave(const std::string& peer) {
    internal::MutexLock lock(mu_);
    --total_;
    if (max_per_peer_ == 0) return;
    auto it = per_peer_.find(peer);
    if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  }

  const std::size_t max_total_;
  const std::size_t max_per_peer_;
  mutable internal::Mutex mu_;
  std::size_t total_ GUARDED_BY(mu_) = 0;
  std::unordered_map<std::string, std::size_t> per_peer_ GUARDED_BY(mu_);  // with max_per_peer_
};

inline void ConnectionTicket::Release() {
  if (limits_ == nullptr) return;
  limits_->Leave(peer_);
  limits_ = nullptr;
}

}  // namespace cxlkv::serve
