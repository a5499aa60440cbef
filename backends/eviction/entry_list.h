// EntryList: an intrusive doubly linked list of index entries, linked by EntryId through
// Entry::prev/next, counting its entries and their chunk bytes. The building block of every
// eviction policy: front is the newest or hottest, back the next to go.
//
// Thread-safety: none; the owning tier's mutex guards the list and the links of its entries.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/entry.h"

namespace cxlkv::internal {

class EntryList {
 public:
  explicit EntryList(const EntryTable& entries) : entries_(&entries) {}

  void PushFront(EntryId id, Entry& e) {
    e.prev = kNoEntry;
    e.next = head_;
    if (head_ != kNoEntry) entries_->at(head_).prev = id; else tail_ = id;
    head_ = id;
    ++count_;
    bytes_ += e.size;
  }

  void Unlink(EntryId id, Entry& e) {
    if (e.prev != kNoEntry) entries_->at(e.prev).next = e.next; else head_ = e.next;
    if (e.next != kNoEntry) entries_->at(e.next).prev = e.prev; else tail_ = e.prev;
    e.prev = e.next = kNoEntry;
    --count_;
    bytes_ -= e.size;
    (void)id;
  }

  void MoveToFront(EntryId id, Entry& e) {
    if (head_ == id) return;
    Unlink(id, e);
    PushFront(id, e);
  }

  EntryId front() const { return head_; }
  EntryId back() const { return tail_; }
  EntryId PrevOf(EntryId id) const { return entries_->at(id).prev; }  // towards the front
  Entry& at(EntryId id) const { return entries_->at(id); }
  bool empty() const { return head_ == kNoEntry; }
  std::size_t count() const { return count_; }
  std::size_t bytes() const { return bytes_; }

  // The entry nearest the back with no pin, or kNoEntry. Pins are read without the shard
  // mutex, as a hint: the caller rechecks.
  EntryId BackmostUnpinned() const {
    for (EntryId id = tail_; id != kNoEntry; id = entries_->at(id).prev) {
      if (entries_->at(id).pins.load(std::memory_order_relaxed) == 0) return id;
    }
    return kNoEntry;
  }

 private:
  const EntryTable* entries_;
  EntryId head_ = kNoEntry;
  EntryId tail_ = kNoEntry;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace cxlkv::internal
