// Online estimate of "does a request get a follow-up, and when", for the prefix-hazard
// eviction policy (prefix.cc).
//
// A unit is something that may be followed up: the private part of a request (its
// conversation's history and new turn: followed up when a later request extends it) or its
// shared prefix (followed up when any later request reads it again). Each unit belongs to a
// class. Per class and per log2 bucket of idle time the estimator counts how many units were
// still waiting at the start of the bucket (at risk) and how many were followed up within it:
// their ratio is the bucket's hazard, a Kaplan-Meier estimate that units still waiting (the
// present, the end of a trace) cannot bias. From the hazards comes the chance that a unit idle
// for `age` seconds is followed up within the next `horizon` seconds. Nothing is fitted to a
// trace: all counts are learned while the replay runs, and they fade so that they follow it.
//
// Cost: AddUnit and FollowUp O(1) (amortised: AddUnit drops the oldest half of the units at
// max_units); Advance amortised O(buckets) per unit over a run; Refresh O(classes x buckets);
// ReturnWithin O(1). Memory: at most max_units units of 24 bytes.
//
// A dropped unit leaves observation: still waiting, it is censored (counted at risk up to the
// bucket it reached, never as followed up), which a Kaplan-Meier estimate takes without bias;
// a follow-up of it afterwards is not counted.
//
// Thread-safety: none, like the policies that own it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cxlkv::internal {

class FollowUpHazard {
 public:
  // Idle-time buckets: [0, 1) s, then [2^(b-1), 2^b) s; the last is open (about 48 days on).
  static constexpr std::size_t kBuckets = 24;
  using UnitId = std::uint64_t;  // never reused
  static constexpr UnitId kNoUnit = UINT64_MAX;
  // Two per request at most: about a million requests' worth.
  static constexpr std::size_t kDefaultMaxUnits = std::size_t{1} << 21;

  explicit FollowUpHazard(std::size_t classes, std::size_t max_units = kDefaultMaxUnits);

  // Moves the clock to now_s (non-decreasing): counts the units whose idle time crossed into
  // a later bucket while still waiting.
  void Advance(double now_s);
  // A new unit of class cls, idle from time_s (the current time). Returns its id.
  UnitId AddUnit(double time_s, std::size_t cls);
  // The unit was followed up at now_s; only its first follow-up counts, and none once the unit
  // has been dropped.
  void FollowUp(UnitId unit, double now_s);
  // Multiplies every count by factor (old evidence weighs less).
  void Fade(double factor);
  // Recomputes the survival tables from the counts; call after a batch of updates.
  void Refresh();

  // The chance that a unit of class cls, idle for age_s seconds, is followed up within the
  // next horizon_s seconds (hazard constant within a bucket).
  double ReturnWithin(std::size_t cls, double age_s, double horizon_s) const;
  // The hazard of bucket b for class cls as Refresh last computed it.
  double Hazard(std::size_t cls, std::size_t b) const { return hazard_[cls * kBuckets + b]; }

  std::size_t units() const { return units_.size(); }  // held now (at most max_units)

  static std::size_t Bucket(double age_s);
  static double Lower(std::size_t b);  // the bucket's first second

 private:
  struct Unit {
    double time_s = 0;
    double gap_s = -1;  // idle time at its first follow-up; < 0 while waiting
    std::uint32_t cls = 0;
  };
  // log of the chance of no follow-up up to age_s.
  double LogSurvival(std::size_t cls, double age_s) const;

  // Censors the oldest `n` units (see above).
  void DropOldest(std::size_t n);

  std::size_t classes_;
  std::size_t max_units_;
  UnitId first_ = 0;                    // the id of units_[0]
  std::vector<Unit> units_;             // in time order
  std::vector<std::size_t> cursor_;     // per bucket: units whose idle time reached it
  std::vector<double> at_risk_;         // per class x bucket
  std::vector<double> followed_;        // per class x bucket
  std::vector<double> hazard_;          // per class x bucket, from Refresh
  std::vector<double> log_survival_;    // per class x (bucket edge), from Refresh
};

}  // namespace cxlkv::internal
