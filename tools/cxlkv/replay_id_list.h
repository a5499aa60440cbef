// An intrusive doubly linked list of chunk ids over flat arrays: O(1) push, unlink and pop
// with no allocation per operation, the building block of the simulator's recency queues.
//
// Thread-safety: none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cxlkv::cli {

class IdList {
 public:
  static constexpr std::uint32_t kNil = UINT32_MAX;

  explicit IdList(std::size_t ids) : prev_(ids, kNil), next_(ids, kNil), linked_(ids, 0) {}

  bool contains(std::uint32_t id) const { return linked_[id] != 0; }
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::uint32_t front() const { return head_; }  // the most recently pushed
  std::uint32_t back() const { return tail_; }   // the oldest

  void PushFront(std::uint32_t id) {
    prev_[id] = kNil;
    next_[id] = head_;
    if (head_ != kNil) prev_[head_] = id;
    head_ = id;
    if (tail_ == kNil) tail_ = id;
    linked_[id] = 1;
    ++size_;
  }

  void Unlink(std::uint32_t id) {
    if (!contains(id)) return;
    if (prev_[id] != kNil) next_[prev_[id]] = next_[id]; else head_ = next_[id];
    if (next_[id] != kNil) prev_[next_[id]] = prev_[id]; else tail_ = prev_[id];
    linked_[id] = 0;
    --size_;
  }

  void MoveToFront(std::uint32_t id) {
    Unlink(id);
    PushFront(id);
  }

 private:
  std::vector<std::uint32_t> prev_;
  std::vector<std::uint32_t> next_;
  std::vector<std::uint8_t> linked_;
  std::uint32_t head_ = kNil;
  std::uint32_t tail_ = kNil;
  std::size_t size_ = 0;
};

}  // namespace cxlkv::cli
