// LRU and FIFO: one list each. They differ only in what a read does.
#include <memory>

#include "backends/eviction/entry_list.h"
#include "backends/eviction/eviction_policy.h"

namespace cxlkv::internal {
namespace {

class ListPolicy : public EvictionPolicy {
 public:
  ListPolicy(const EntryTable& entries, bool reorder_on_read)
      : list_(entries), reorder_on_read_(reorder_on_read) {}

  void Insert(EntryId id, Entry& e) override { list_.PushFront(id, e); }
  void Touch(EntryId id, Entry& e) override {
    if (reorder_on_read_) list_.MoveToFront(id, e);
  }
  void Erase(EntryId id, Entry& e, bool /*evicted*/) override { list_.Unlink(id, e); }
  EntryId Victim() override { return list_.BackmostUnpinned(); }
  const char* name() const override { return reorder_on_read_ ? "lru" : "fifo"; }

 private:
  EntryList list_;
  const bool reorder_on_read_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> MakeLruPolicy(const EntryTable& entries) {
  return std::make_unique<ListPolicy>(entries, true);
}

std::unique_ptr<EvictionPolicy> MakeFifoPolicy(const EntryTable& entries) {
  return std::make_unique<ListPolicy>(entries, false);
}

Result<std::unique_ptr<EvictionPolicy>> EvictionPolicy::Create(std::string_view name,
                                                              const EntryTable& entries,
                                                              std::size_t capacity_bytes) {
  if (name == "lru") return MakeLruPolicy(entries);
  if (name == "fifo") return MakeFifoPolicy(entries);
  if (name == "lfu") return MakeLfuPolicy(entries);
  if (name == "s3fifo") return MakeS3FifoPolicy(entries, capacity_bytes);
  if (std::unique_ptr<EvictionPolicy> prefix = MakePrefixPolicy(name, entries)) return prefix;
  return Status::InvalidArgument(
      "unknown eviction policy '" + std::string(name) +
      "' (expected lru, fifo, lfu, s3fifo, prefix-chains, prefix or prefix-hazard)");
}

}  // namespace cxlkv::internal
