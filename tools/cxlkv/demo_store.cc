#include "tools/cxlkv/demo_store.h"

#include <xxhash.h>

namespace cxlkv::cli {

DemoStore::~DemoStore() = default;

Result<std::optional<DemoStore::Slot>> DemoStore::Reserve(std::size_t size) {
  for (std::size_t t = 0; t < tiers_.size(); ++t) {
    Result<Allocation> allocation = tiers_[t]->Allocate(size);
    if (allocation.ok()) return std::optional<Slot>(Slot{t, *allocation});
    if (!allocation.status().IsNoSpace()) {
      return allocation.status().WithContext("allocating " + std::to_string(size) +
                                             " bytes in tier " + std::to_string(t));
    }
  }
  return std::optional<Slot>();
}

void DemoStore::Commit(const std::string& key, const Slot& slot,
                       std::span<const std::byte> bytes) {
  tiers_[slot.tier]->Write(slot.allocation, bytes);
  index_.emplace(key, StoredChunk{slot.tier, slot.allocation,
                                  XXH3_64bits(bytes.data(), bytes.size())});
  stored_order_.push_back(key);
}

DemoStore::Verification DemoStore::VerifyAll(std::span<std::byte> buffer) {
  Verification result;
  for (const std::string& key : stored_order_) {
    const StoredChunk& stored = index_.at(key);
    tiers_[stored.tier]->Load(stored.allocation, buffer);
    if (XXH3_64bits(buffer.data(), stored.allocation.size) == stored.checksum) {
      ++result.verified;
    } else {
      result.mismatched.push_back(key + " in tier " + std::to_string(stored.tier));
    }
  }
  return result;
}

std::vector<TierReport> DemoStore::TierReports() const {
  std::vector<TierReport> reports;
  for (const std::unique_ptr<DemoTier>& tier : tiers_) {
    const RegionInfo& info = tier->region().info();
    reports.push_back({info.ToString(), info.persistence, tier->region().size(),
                       tier->counters(), tier->AllocatorStats()});
  }
  return reports;
}

Status DemoStore::ReleaseAll() {
  for (const auto& [key, stored] : index_) {
    const Status status = tiers_[stored.tier]->Release(stored.allocation);
    if (!status.ok()) {
      return status.WithContext("freeing " + key + " in tier " + std::to_string(stored.tier));
    }
  }
  index_.clear();
  stored_order_.clear();
  return Status::Ok();
}

}  // namespace cxlkv::cli
