#include "prefetch/inflight_limit.h"

#include <algorithm>

namespace cxlkv::internal {

namespace {
constexpr std::size_t kMinEpochMisses = 16;
constexpr std::size_t kUnloadedKept = 5;
// After a step up that bought nothing, no step to that limit again for this many epochs.
constexpr int kCapEpochs = 16;
}  // namespace

InflightLimit::InflightLimit(unsigned max, unsigned start)
    : max_(std::max(1u, max)),
      limit_(std::clamp(start, 1u, std::max(1u, max))),
      max_seen_(limit_) {}

std::uint64_t InflightLimit::unloaded_ns() const {
  if (unloaded_.empty()) return 0;
  std::vector<std::uint64_t> v(unloaded_.begin(), unloaded_.end());
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

void InflightLimit::OnUnloadedSample(std::uint64_t ns) {
  unloaded_.push_back(ns);
  if (unloaded_.size() > kUnloadedKept) unloaded_.pop_front();
}

unsigned InflightLimit::Grow() const { return std::min(max_, limit_ + std::max(1u, limit_ / 4)); }
unsigned InflightLimit::Shrink() const { return std::max(1u, limit_ - std::max(1u, limit_ / 5)); }

bool InflightLimit::OnMiss(std::uint64_t ns, std::uint64_t now_ns) {
  // An epoch's rate counts its completions since the last one's end (the first epoch: since
  // its first miss was issued).
  if (epoch_start_ns_ == 0) epoch_start_ns_ = std::max<std::uint64_t>(1, now_ns - std::min(now_ns, ns));
  epoch_.push_back(ns);
  if (epoch_.size() < std::max<std::size_t>(kMinEpochMisses, 6 * std::size_t{limit_})) {
    return false;
  }
  std::nth_element(epoch_.begin(), epoch_.begin() + epoch_.size() / 2, epoch_.end());
  median_ns_ = epoch_[epoch_.size() / 2];
  const double seconds = static_cast<double>(std::max<std::uint64_t>(1, now_ns - epoch_start_ns_)) / 1e9;
  const double rate = static_cast<double>(epoch_.size()) / seconds;
  epoch_.clear();
  epoch_start_ns_ = now_ns;
  const std::uint64_t w = unloaded_ns();
  const bool known = w != 0;  // before any sample, throughput alone decides
  const unsigned before = limit_;
  int step = 0;
  if (known && median_ns_ > 4 * w && limit_ <= 4) {
    // So few in flight cannot queue that deep: the device got slower than the samples say.
    unloaded_.assign(1, median_ns_);
  } else if (known && median_ns_ > 4 * w) {
    limit_ = std::max(1u, limit_ / 2);
    step = -1;
  } else if (known && 2 * median_ns_ > 5 * w) {
    limit_ = Shrink();
    step = -1;
  } else if (last_step_ > 0 && rate < last_rate_ * 1.02) {
    // The step up bought nothing: back to where it was, and no higher for a while.
    cap_ = limit_;
    cap_epochs_ = kCapEpochs;
    limit_ = last_limit_;
    step = -1;
  } else if ((!known || 2 * median_ns_ <= 3 * w) && (cap_epochs_ == 0 || Grow() < cap_)) {
    limit_ = Grow();
    step = limit_ > before ? 1 : 0;
  }
  if (cap_epochs_ > 0 && step >= 0) --cap_epochs_;
  last_limit_ = before;
  last_step_ = step;
  last_rate_ = rate;
  max_seen_ = std::max(max_seen_, limit_);
  return limit_ > before;
}

}  // namespace cxlkv::internal
