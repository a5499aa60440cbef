// IdLists: several intrusive doubly linked lists over one dense id space (ids 0, 1, 2, ...
// handed out by the policy that owns them), each id in at most one list at a time. O(1) push,
// unlink and move with one pair of links per id however many lists there are: the recency
// queues of the prefix policies (prefix.cc) and of their LRU shadow (shadow_lru.h).
//
// Thread-safety: none; the owning policy's caller serialises every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cxlkv::internal {

class IdLists {
 public:
  static constexpr std::uint32_t kNil = UINT32_MAX;
  static constexpr std::uint8_t kNone = UINT8_MAX;

  explicit IdLists(std::size_t lists) : head_(lists, kNil), tail_(lists, kNil), size_(lists, 0) {}

  // Makes room for ids below `ids`; new ids are in no list.
  void Grow(std::size_t ids) {
    if (ids <= list_.size()) return;
    prev_.resize(ids, kNil);
    next_.resize(ids, kNil);
    list_.resize(ids, kNone);
  }

  std::uint8_t list_of(std::uint32_t id) const { return id < list_.size() ? list_[id] : kNone; }
  bool listed(std::uint32_t id) const { return list_of(id) != kNone; }
  bool empty(std::size_t l) const { return size_[l] == 0; }
  std::size_t size(std::size_t l) const { return size_[l]; }
  std::uint32_t front(std::size_t l) const { return head_[l]; }  // the most recently pushed
  std::uint32_t back(std::size_t l) const { return tail_[l]; }   // the oldest
  std::uint32_t towards_front(std::uint32_t id) const { return prev_[id]; }

  void PushFront(std::size_t l, std::uint32_t id) {
    prev_[id] = kNil;
    next_[id] = head_[l];
    if (head_[l] != kNil) prev_[head_[l]] = id; else tail_[l] = id;
    head_[l] = id;
    list_[id] = static_cast<std::uint8_t>(l);
    ++size_[l];
  }

  void Unlink(std::uint32_t id) {
    const std::uint8_t l = list_of(id);
    if (l == kNone) return;
    if (prev_[id] != kNil) next_[prev_[id]] = next_[id]; else head_[l] = next_[id];
    if (next_[id] != kNil) prev_[next_[id]] = prev_[id]; else tail_[l] = prev_[id];
    list_[id] = kNone;
    --size_[l];
  }

  void MoveToFront(std::size_t l, std::uint32_t id) {
    Unlink(id);
    PushFront(l, id);
  }

  // The same lists over new ids, each in the same order: new_of[old] for every listed id,
  // which must not be kNil; `ids` new ids.
  IdLists Remapped(const std::vector<std::uint32_t>& new_of, std::size_t ids) const {
    IdLists out(head_.size());
    out.Grow(ids);
    for (std::size_t l = 0; l < head_.size(); ++l) {
      for (std::uint32_t id = tail_[l]; id != kNil; id = prev_[id]) out.PushFront(l, new_of[id]);
    }
    return out;
  }

  std::size_t bytes() const { return list_.capacity() * 9; }  // two links and a list byte

 private:
  std::vector<std::uint32_t> prev_;  // towards the front
  std::vector<std::uint32_t> next_;  // towards the back
  std::vector<std::uint8_t> list_;   // which list holds the id, or kNone
  std::vector<std::uint32_t> head_;
  std::vector<std::uint32_t> tail_;
  std::vector<std::size_t> size_;
};

}  // namespace cxlkv::internal
