#include "backends/eviction/follow_up_hazard.h"

#include <algorithm>
#include <cmath>

namespace cxlkv::internal {
namespace {

// A class with few units of its own borrows this many units' worth of the pooled hazard, so
// that a rare class starts from the average and moves away as its own evidence comes in.
constexpr double kPriorUnits = 4;

}  // namespace

FollowUpHazard::FollowUpHazard(std::size_t classes, std::size_t max_units)
    : classes_(classes),
      max_units_(std::max<std::size_t>(max_units, 2)),
      cursor_(kBuckets, 0),
      at_risk_(classes * kBuckets, 0),
      followed_(classes * kBuckets, 0),
      hazard_(classes * kBuckets, 0),
      log_survival_(classes * (kBuckets + 1), 0) {}

std::size_t FollowUpHazard::Bucket(double age_s) {
  if (age_s < 1) return 0;
  const auto b = static_cast<std::size_t>(std::floor(std::log2(age_s))) + 1;
  return std::min(b, kBuckets - 1);
}

double FollowUpHazard::Lower(std::size_t b) {
  return b == 0 ? 0 : std::ldexp(1.0, static_cast<int>(b) - 1);
}

void FollowUpHazard::Advance(double now_s) {
  // Bucket 0 is counted in AddUnit; a unit enters bucket b >= 1 when its idle time reaches
  // Lower(b). Units are in time order, so each bucket's crossings are a moving cursor.
  for (std::size_t b = 1; b < kBuckets; ++b) {
    std::size_t& c = cursor_[b];
    while (c < units_.size() && units_[c].time_s + Lower(b) <= now_s) {
      const Unit& u = units_[c++];
      if (u.gap_s < 0 || u.gap_s >= Lower(b)) at_risk_[u.cls * kBuckets + b] += 1;
    }
  }
}

FollowUpHazard::UnitId FollowUpHazard::AddUnit(double time_s, std::size_t cls) {
  if (units_.size() >= max_units_) DropOldest(units_.size() / 2);
  units_.push_back({time_s, -1, static_cast<std::uint32_t>(cls)});
  at_risk_[cls * kBuckets] += 1;
  return first_ + units_.size() - 1;
}

void FollowUpHazard::DropOldest(std::size_t n) {
  n = std::min(n, units_.size());
  units_.erase(units_.begin(), units_.begin() + static_cast<std::ptrdiff_t>(n));
  first_ += n;
  // A dropped unit that had not reached a bucket yet is never counted at risk in it.
  for (std::size_t& c : cursor_) c = c > n ? c - n : 0;
}

void FollowUpHazard::FollowUp(UnitId unit, double now_s) {
  if (unit < first_ || unit - first_ >= units_.size()) return;  // dropped (censored)
  Unit& u = units_[unit - first_];
  if (u.gap_s >= 0) return;
  u.gap_s = std::max(0.0, now_s - u.time_s);
  followed_[u.cls * kBuckets + Bucket(u.gap_s)] += 1;
}

void FollowUpHazard::Fade(double factor) {
  for (double& x : at_risk_) x *= factor;
  for (double& x : followed_) x *= factor;
}

void FollowUpHazard::Refresh() {
  for (std::size_t b = 0; b < kBuckets; ++b) {
    double risk = 0;
    double hits = 0;
    for (std::size_t c = 0; c < classes_; ++c) {
      risk += at_risk_[c * kBuckets + b];
      hits += followed_[c * kBuckets + b];
    }
    const double pooled = risk > 0 ? hits / risk : 0;
    for (std::size_t c = 0; c < classes_; ++c) {
      const double h = (followed_[c * kBuckets + b] + kPriorUnits * pooled) /
                       (at_risk_[c * kBuckets + b] + kPriorUnits);
      hazard_[c * kBuckets + b] = std::clamp(h, 0.0, 0.999);
    }
  }
  for (std::size_t c = 0; c < classes_; ++c) {
    double* edge = &log_survival_[c * (kBuckets + 1)];
    edge[0] = 0;
    for (std::size_t b = 0; b < kBuckets; ++b) {
      edge[b + 1] = edge[b] + std::log1p(-hazard_[c * kBuckets + b]);
    }
  }
}

double FollowUpHazard::LogSurvival(std::size_t cls, double age_s) const {
  const std::size_t b = Bucket(age_s);
  const double width = b == 0 ? 1 : Lower(b);  // [2^(b-1), 2^b); the open last one as wide
  const double within = std::min(1.0, (age_s - Lower(b)) / width);
  const double* edge = &log_survival_[cls * (kBuckets + 1)];
  return edge[b] + within * (edge[b + 1] - edge[b]);
}

double FollowUpHazard::ReturnWithin(std::size_t cls, double age_s, double horizon_s) const {
  age_s = std::max(0.0, age_s);
  return -std::expm1(LogSurvival(cls, age_s + std::max(0.0, horizon_s)) -
                     LogSurvival(cls, age_s));
}

}  // namespace cxlkv::internal
