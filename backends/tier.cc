#include "backends/tier.h"

#include <algorithm>
#include <utility>

#include "util/format.h"

namespace cxlkv::internal {

Result<std::unique_ptr<Tier>> Tier::Open(TierOptions options, std::size_t index,
                                         const std::vector<std::size_t>& chunk_sizes,
                                         std::size_t slab_size) {
  std::unique_ptr<Tier> tier(new Tier());
  tier->name_ = options.name.empty() ? "tier" + std::to_string(index) : options.name;
  if (options.eviction == "lru") {
    tier->policy_ = EvictionPolicy::kLru;
  } else if (options.eviction == "fifo") {
    tier->policy_ = EvictionPolicy::kFifo;
  } else {
    return Status::InvalidArgument("unknown eviction policy '" + options.eviction +
                                   "' (expected lru or fifo)");
  }
  if (options.capacity < slab_size) {
    return Status::InvalidArgument("capacity of " + FormatBytes(options.capacity) +
                                   " is below one slab (" + FormatBytes(slab_size) + ")");
  }
  if (options.source != nullptr) {
    tier->source_ = std::move(options.source);
  } else {
    CXLKV_ASSIGN_OR_RETURN(tier->source_, MemorySource::Parse(options.source_spec));
  }
  tier->source_spec_ = tier->source_->spec();
  tier->capacity_ = options.capacity;
  CXLKV_ASSIGN_OR_RETURN(tier->region_, tier->source_->Map(options.capacity));
  SlabAllocatorOptions slab;
  slab.slab_size = slab_size;
  slab.slot_alignment = 4096;
  // No slot larger than the region: a chunk that could never fit is then refused up front
  // (InvalidArgument) instead of emptying the tier before NoSpace.
  slab.max_slot_size = std::min(16 * slab_size, options.capacity / slab_size * slab_size);
  for (std::size_t size : chunk_sizes) {
    if (size <= slab.max_slot_size) slab.exact_sizes.push_back(size);
  }
  CXLKV_ASSIGN_OR_RETURN(tier->allocator_, SlabAllocator::Create(*tier->region_, slab));
  return tier;
}

void Tier::PushFront(Entry* e) {
  e->prev = nullptr;
  e->next = head_;
  if (head_ != nullptr) head_->prev = e;
  head_ = e;
  if (tail_ == nullptr) tail_ = e;
  e->in_list = true;
}

void Tier::Unlink(Entry* e) {
  if (!e->in_list) return;
  if (e->prev != nullptr) e->prev->next = e->next; else head_ = e->next;
  if (e->next != nullptr) e->next->prev = e->prev; else tail_ = e->prev;
  e->prev = e->next = nullptr;
  e->in_list = false;
}

void Tier::OnHit(Entry* e) {
  if (policy_ != EvictionPolicy::kLru || !e->in_list || head_ == e) return;
  Unlink(e);
  PushFront(e);
}

Entry* Tier::ColdestUnpinned() const {
  for (Entry* e = tail_; e != nullptr; e = e->prev) {
    if (e->pins.load(std::memory_order_relaxed) == 0) return e;
  }
  return nullptr;
}

}  // namespace cxlkv::internal
