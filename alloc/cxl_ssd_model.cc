#include "alloc/cxl_ssd_model.h"

#include <algorithm>
#include <string>

namespace cxlkv::internal {

std::string_view DeviceCachePolicyName(DeviceCachePolicy p) {
  switch (p) {
    case DeviceCachePolicy::kFifo: return "fifo";
    case DeviceCachePolicy::kLru: return "lru";
    case DeviceCachePolicy::kClock: return "clock";
  }
  return "?";
}

Result<DeviceCachePolicy> ParseDeviceCachePolicy(std::string_view name) {
  if (name == "fifo") return DeviceCachePolicy::kFifo;
  if (name == "lru") return DeviceCachePolicy::kLru;
  if (name == "clock") return DeviceCachePolicy::kClock;
  return Status::InvalidArgument("device cache policy '" + std::string(name) +
                                 "' is not fifo, lru or clock");
}

Result<CxlSsdModel> CxlSsdModel::Create(const CxlSsdModelConfig& c) {
  if (c.pages == 0 || c.pages >= kNil) {
    return Status::InvalidArgument("an emulated CXL-SSD needs 1 to 2^32-2 device pages, not " +
                                   std::to_string(c.pages));
  }
  if (c.cache_pages == 0) {
    return Status::InvalidArgument("the device cache must hold at least one page");
  }
  if (c.dies == 0) return Status::InvalidArgument("an emulated CXL-SSD needs at least one die");
  if (c.evict_batch == 0) return Status::InvalidArgument("evict_batch must be at least 1");
  if (c.dilation == 0 || c.dilation > kMaxDilation) {
    return Status::InvalidArgument("time dilation must be 1 to " + std::to_string(kMaxDilation) +
                                   ", not " + std::to_string(c.dilation));
  }
  return CxlSsdModel(c);
}

CxlSsdModel::CxlSsdModel(const CxlSsdModelConfig& config)
    : config_(config),
      state_(config.pages, kNand),
      flags_(config.pages, 0),
      prev_(config.pages, kNil),
      next_(config.pages, kNil),
      die_free_(config.dies, 0),
      die_busy_(config.dies, 0) {}

std::uint64_t CxlSsdModel::Occupy(std::uint64_t page, std::uint64_t ns, std::uint64_t now_ns) {
  std::uint64_t& free_at = die_free_[die_of(page)];
  const std::uint64_t done = std::max(free_at, now_ns) + ns;
  free_at = done;
  stats_.die_busy_ns += ns;
  die_busy_[die_of(page)] += ns;
  return done;
}

void CxlSsdModel::ListPushBack(std::uint32_t page) {
  if (head_ == kNil) {
    head_ = page;
    prev_[page] = next_[page] = page;
    return;
  }
  // Before head_: the newest end of FIFO/LRU, and just behind the CLOCK hand.
  const std::uint32_t tail = prev_[head_];
  prev_[page] = tail;
  next_[page] = head_;
  next_[tail] = page;
  prev_[head_] = page;
}

void CxlSsdModel::ListRemove(std::uint32_t page) {
  if (next_[page] == page) {
    head_ = kNil;
  } else {
    next_[prev_[page]] = next_[page];
    prev_[next_[page]] = prev_[page];
    if (head_ == page) head_ = next_[page];
  }
  prev_[page] = next_[page] = kNil;
}

std::uint32_t CxlSsdModel::Next(std::uint32_t page) const { return next_[page]; }

void CxlSsdModel::Admit(std::uint32_t page, State state) {
  state_[page] = state;
  if (state == kInFlight) ++inflight_;
  ListPushBack(page);
  ++cached_;
}

void CxlSsdModel::Evict(std::uint32_t page, std::uint64_t now_ns,
                        std::vector<std::uint32_t>* victims) {
  ListRemove(page);
  if (flags_[page] & kDirtyBit) {
    Occupy(page, program_cost_ns(), now_ns);
    ++stats_.nand_programs;
  }
  if (flags_[page] & kMappedBit) victims->push_back(page);
  flags_[page] = 0;
  state_[page] = kNand;
  --cached_;
  ++stats_.evictions;
}

void CxlSsdModel::MakeRoom(std::uint64_t need, std::uint64_t now_ns,
                           std::vector<PageRun>* unmap) {
  if (cached_ + need <= config_.cache_pages) return;
  std::uint64_t to_evict =
      std::max<std::uint64_t>(cached_ + need - config_.cache_pages, config_.evict_batch);
  std::vector<std::uint32_t> pages;  // evicted or unmapped for observation: one unmap each
  // Every resident may be looked at twice (once to clear its reference, once to evict it);
  // past that only pages in flight remain, and the cache runs over its size until they land.
  std::uint64_t budget = 2 * cached_ + 2;
  const bool observe = config_.observe_by_unmapping;
  std::uint32_t cursor = head_;
  while (to_evict > 0 && cached_ > 0 && budget-- > 0) {
    const std::uint32_t page = cursor;
    const std::uint32_t after = Next(page);
    if (state_[page] == kInFlight) {  // never a victim: its fetch is about to map it
      cursor = after;
      if (config_.policy == DeviceCachePolicy::kClock) head_ = after;
      continue;
    }
    const bool referenced = (flags_[page] & kRefBit) != 0;
    switch (config_.policy) {
      case DeviceCachePolicy::kFifo:
        break;
      case DeviceCachePolicy::kLru:
        // Hits moved used pages away from this end; with observation, a page not yet checked
        // is unmapped and spared once, and evicted on the next pass unless it faults again.
        if (observe && referenced) {
          flags_[page] &= static_cast<std::uint8_t>(~(kRefBit | kMappedBit));
          pages.push_back(page);
          cursor = after;
          continue;
        }
        break;
      case DeviceCachePolicy::kClock:
        if (referenced) {
          flags_[page] &= static_cast<std::uint8_t>(~kRefBit);
          if (observe && (flags_[page] & kMappedBit)) {
            flags_[page] &= static_cast<std::uint8_t>(~kMappedBit);
            pages.push_back(page);
          }
          head_ = after;  // the hand moves on
          cursor = after;
          continue;
        }
        break;
    }
    if (after == page) {
      cursor = kNil;
    } else {
      cursor = after;
    }
    Evict(page, now_ns, &pages);
    --to_evict;
    if (cursor == kNil || head_ == kNil) break;
    if (config_.policy == DeviceCachePolicy::kClock) head_ = cursor;
  }
  AppendRanges(pages, unmap);
}

void CxlSsdModel::AppendRanges(std::vector<std::uint32_t>& pages, std::vector<PageRun>* out) {
  std::sort(pages.begin(), pages.end());
  for (std::size_t i = 0; i < pages.size();) {
    std::size_t j = i + 1;
    while (j < pages.size() && pages[j] == pages[j - 1] + 1) ++j;
    out->push_back({pages[i], j - i});
    i = j;
  }
}

void CxlSsdModel::OnFault(std::uint64_t page, bool write, std::uint64_t now_ns,
                          FaultOutcome* out) {
  out->fetches.clear();
  out->unmap.clear();
  ++stats_.faults;
  const auto p = static_cast<std::uint32_t>(page);
  if (write) flags_[p] |= kDirtyBit;
  switch (state_[p]) {
    case kCached:
      if (flags_[p] & kMappedBit) {
        out->kind = FaultOutcome::Kind::kMapped;
        return;
      }
      ++stats_.soft_faults;
      flags_[p] |= kRefBit | kMappedBit;
      if (config_.policy == DeviceCachePolicy::kLru) {
        ListRemove(p);
        ListPushBack(p);
      }
      out->kind = FaultOutcome::Kind::kSoftFault;
      return;
    case kInFlight:
      ++stats_.inflight_faults;
      flags_[p] &= static_cast<std::uint8_t>(~kPrefetchedBit);
      out->kind = FaultOutcome::Kind::kInFlight;
      return;
    default:
      break;
  }
  out->kind = FaultOutcome::Kind::kMiss;
  if (write) {
    ++stats_.write_misses;
    MakeRoom(1, now_ns, &out->unmap);
    Admit(p, kInFlight);
    out->fetches.push_back({{page, 1}, now_ns});
    return;
  }
  ++stats_.read_misses;
  // The demand page, then every page of p+1..p+N still in NAND, in runs of adjacent pages.
  const std::uint64_t last = std::min<std::uint64_t>(page + config_.next_n, config_.pages - 1);
  std::uint64_t want = 1;
  for (std::uint64_t q = page + 1; q <= last; ++q) want += state_[q] == kNand;
  MakeRoom(want, now_ns, &out->unmap);
  Fetch current{{page, 0}, 0};
  for (std::uint64_t q = page; q <= last; ++q) {
    if (q != page && state_[q] != kNand) {
      if (current.run.count > 0) out->fetches.push_back(current);
      current = Fetch{{q + 1, 0}, 0};
      continue;
    }
    const auto qq = static_cast<std::uint32_t>(q);
    const std::uint64_t done = Occupy(q, read_cost_ns(), now_ns);
    ++stats_.nand_reads;
    if (q != page) {
      ++stats_.prefetch_reads;
      flags_[qq] |= kPrefetchedBit;
    }
    Admit(qq, kInFlight);
    if (current.run.count == 0) current.run.first = q;
    ++current.run.count;
    current.ready_ns = std::max(current.ready_ns, done);
  }
  if (current.run.count > 0) out->fetches.push_back(current);
}

void CxlSsdModel::OnMapped(const PageRun& run) {
  for (std::uint64_t q = run.first; q < run.first + run.count; ++q) {
    if (state_[q] != kInFlight) continue;
    state_[q] = kCached;
    --inflight_;
    // A prefetched page is unreferenced until used; but when hits are invisible, a mapped
    // page may be used at any moment, so it counts as referenced until checked.
    const bool demand = (flags_[q] & kPrefetchedBit) == 0;
    flags_[q] |= kMappedBit;
    if (demand || config_.observe_by_unmapping) flags_[q] |= kRefBit;
    flags_[q] &= static_cast<std::uint8_t>(~kPrefetchedBit);
  }
}

bool CxlSsdModel::Touch(std::uint64_t page, bool write) {
  const auto p = static_cast<std::uint32_t>(page);
  if (state_[p] != kCached || !(flags_[p] & kMappedBit)) return false;
  ++stats_.touches;
  flags_[p] |= kRefBit;
  if (write) flags_[p] |= kDirtyBit;
  if (config_.policy == DeviceCachePolicy::kLru) {
    ListRemove(p);
    ListPushBack(p);
  }
  return true;
}

void CxlSsdModel::DropAll(std::uint64_t now_ns, std::vector<PageRun>* unmap) {
  std::vector<std::uint32_t> pages;
  std::vector<std::uint32_t> residents;
  if (head_ != kNil) {
    std::uint32_t q = head_;
    do {
      residents.push_back(q);
      q = next_[q];
    } while (q != head_);
  }
  for (std::uint32_t q : residents) {
    if (state_[q] == kCached) Evict(q, now_ns, &pages);
  }
  AppendRanges(pages, unmap);
}

void CxlSsdModel::ResetDies(std::uint64_t now_ns) {
  std::fill(die_free_.begin(), die_free_.end(), now_ns);
}

}  // namespace cxlkv::internal
