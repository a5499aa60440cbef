// Prefetch threads that touch the pages of announced streams ahead of their readers.
//
// A stream is a flat list of page addresses in read order (one per page of each range, the
// first at the range's start). Threads claim work from two cursors, never past the reader's
// position + the stream's window, and skip what the reader has passed:
//   - `lead`: the pages that should miss. While sampling, one page in fast_stride_pages; once
//     misses are seen, the head of every run the device fetches (stride R, the learnt run
//     length), with now and then a probe: a few consecutive pages touched by one thread to
//     measure R again.
//   - `trail`: when R > 1, every page, far enough behind `lead` that the runs there should
//     have landed: mostly resident pages (a cheap touch), and a fetch wherever a run left a gap.
// What the streams learn about the device (miss latency, reader rate, R, how many misses to
// keep in flight) lives in DeviceEstimates, shared by every stream of the prefetcher (see prefetcher.h).
#include "cxlkv/prefetcher.h"

#include <sched.h>

#include <algorithm>
#include <deque>
#include <set>
#include <thread>

#include "prefetch/inflight_limit.h"
#include "util/cpu.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv {

namespace {

std::uint64_t NowNs() { return MonotonicNs(); }

// A touch slower than this did not find its page resident: a resident page costs a TLB walk
// (well under a microsecond); any fault or device miss costs microseconds.
constexpr std::uint64_t kSlowTouchNs = 2'000;
// Back to sampling once the average touch is this fast again.
constexpr std::uint64_t kFastAverageNs = 1'000;
// Slow-touch score (+4 a slow touch, -1 a fast one) at which misses are chased.
constexpr int kSlowScore = 16;
// A probe touches up to this many consecutive pages, and stops after three slow ones: runs up
// to 20 pages show twice, longer ones (up to kMaxRun) once; one slow touch tells nothing.
constexpr std::size_t kProbePages = 40;
constexpr unsigned kMaxRun = 32;
constexpr int kProbeSlowTouches = 3;
// Pages of a stream between probes, and how many probe results the median is taken over.
constexpr std::size_t kProbeEveryPages = 8192;
constexpr std::size_t kProbesKept = 3;
// A stream announced within this long of a miss starts out chasing misses.
constexpr std::uint64_t kMissMemoryNs = 250'000'000;

// Reads one byte of the page and drops it. The page belongs to a chunk the reader holds (it
// cannot be freed or rewritten before the reader has started it, and the window never reaches
// behind the reader), but a thread that claimed an address just before the reader moved on
// may read it while the reader copies it out: a read-read overlap, or at worst a read of bytes
// being rewritten whose value is never used. ThreadSanitizer cannot know the value is unused.
__attribute__((no_sanitize("thread"))) void TouchPage(std::uintptr_t addr) {
  (void)*reinterpret_cast<const volatile std::uint8_t*>(addr);
}

std::uint64_t TimedTouch(std::uintptr_t addr) {
  const std::uint64_t t0 = NowNs();
  TouchPage(addr);
  return NowNs() - t0;
}

}  // namespace

// What the prefetcher has learnt about the memory behind its streams. Shared by every stream:
// they read the same devices, and a new stream should not start from scratch.
namespace internal {

class DeviceEstimates {
 public:
  // The limit starts at a quarter of the threads (4 at least) and moves from there.
  explicit DeviceEstimates(unsigned max_limit)
      : limit_model_(max_limit, std::max(4u, max_limit / 4)) {
    limit_.store(limit_model_.limit());
    max_seen_.store(limit_model_.limit());
  }

  unsigned limit() const { return limit_.load(std::memory_order_relaxed); }
  unsigned max_limit_seen() const { return max_seen_.load(std::memory_order_relaxed); }
  unsigned run() const { return run_.load(std::memory_order_relaxed); }
  std::uint64_t miss_ns() const { return miss_ns_.load(std::memory_order_relaxed); }
  std::uint64_t rate_x1024() const { return rate_x1024_.load(std::memory_order_relaxed); }
  // True when a stream ended chasing misses a moment ago: a new one starts out doing so.
  bool RecentlyMissed(std::uint64_t now) const {
    const std::uint64_t last = last_slow_end_ns_.load(std::memory_order_relaxed);
    return last != 0 && now - last < kMissMemoryNs;
  }
  void StreamEndedSlow(std::uint64_t now) {
    last_slow_end_ns_.store(now, std::memory_order_relaxed);
  }
  // A touch at least this slow is a miss: well above a resident page, and (once probes have
  // timed the device) above a quarter of its unloaded miss, so that a preempted touch of a
  // resident page or a page-table fill in a VM is not taken for one. Not a quarter of the
  // recent miss: under queueing that grows past what a fresh miss takes, and the misses that
  // would bring it down again would no longer count.
  std::uint64_t MissThresholdNs() const {
    return std::max(kSlowTouchNs, unloaded_ns_.load(std::memory_order_relaxed) / 4);
  }

  // A miss that took `ns` (see inflight_limit.h). Returns true when the limit grew.
  bool OnMiss(std::uint64_t ns) {
    MutexLock lock(mu_);
    const bool grew = limit_model_.OnMiss(ns, NowNs());
    limit_.store(limit_model_.limit(), std::memory_order_relaxed);
    max_seen_.store(limit_model_.max_seen(), std::memory_order_relaxed);
    miss_ns_.store(limit_model_.median_ns(), std::memory_order_relaxed);
    return grew;
  }

  // A probe's first touch: a miss no other touch asked for.
  void OnProbeMiss(std::uint64_t ns) {
    MutexLock lock(mu_);
    limit_model_.OnUnloadedSample(ns);
    unloaded_ns_.store(limit_model_.unloaded_ns(), std::memory_order_relaxed);
  }

  void OnRate(std::uint64_t rate_x1024) {
    MutexLock lock(mu_);
    const std::uint64_t r = rate_x1024_.load(std::memory_order_relaxed);
    rate_x1024_.store(r == 0 ? rate_x1024 : (r * 7 + rate_x1024) / 8, std::memory_order_relaxed);
  }

  // A probe saw runs of `run` pages: R becomes the median of the last few probes.
  void OnProbe(unsigned run) {
    MutexLock lock(mu_);
    probes_.push_back(std::clamp(run, 1u, kMaxRun));
    if (probes_.size() > kProbesKept) probes_.pop_front();
    std::vector<unsigned> sorted(probes_.begin(), probes_.end());
    std::sort(sorted.begin(), sorted.end());
    run_.store(sorted[sorted.size() / 2], std::memory_order_relaxed);
  }

 private:
  std::atomic<unsigned> limit_{1};     // limit_model_'s, read without the mutex
  std::atomic<unsigned> max_seen_{0};
  std::atomic<unsigned> run_{1};
  std::atomic<std::uint64_t> miss_ns_{0};     // the last epoch's median miss
  std::atomic<std::uint64_t> rate_x1024_{0};  // the readers' pages per microsecond x 1024
  std::atomic<std::uint64_t> last_slow_end_ns_{0};
  std::atomic<std::uint64_t> unloaded_ns_{0};  // from the probes; 0 before any
  Mutex mu_;
  InflightLimit limit_model_ GUARDED_BY(mu_);
  std::deque<unsigned> probes_ GUARDED_BY(mu_);
};

}  // namespace internal

using internal::CondVar;
using internal::DeviceEstimates;
using internal::Mutex;
using internal::MutexLock;

class Prefetcher::Stream::State {
 public:
  enum class Kind : std::uint8_t { kLead, kTrail, kProbe };
  struct Task {
    Kind kind = Kind::kLead;
    std::size_t first = 0;  // page index in the stream
    std::size_t count = 1;
  };

  State(Prefetcher::Impl* owner, DeviceEstimates* learnt, const PrefetchOptions& o,
        std::span<const std::span<const std::byte>> ranges)
      : owner_(owner), learnt_(learnt), options_(o) {
    const std::uintptr_t page = o.page_size;
    for (const auto& r : ranges) {
      first_page_.push_back(pages_.size());
      if (r.empty()) continue;
      const auto begin = reinterpret_cast<std::uintptr_t>(r.data());
      const std::uintptr_t end = begin + r.size();
      pages_.push_back(begin);
      for (std::uintptr_t a = (begin / page + 1) * page; a < end; a += page) pages_.push_back(a);
    }
    n_ = pages_.size();
    max_pages_ = std::max<std::size_t>(1, o.max_ahead_bytes / o.page_size);
    min_pages_ = std::clamp<std::size_t>(o.min_ahead_bytes / o.page_size, 1, max_pages_);
    stride_ = std::max(1u, o.fast_stride_pages);
    ahead_pages_.store(max_pages_);  // sampling looks over the whole budget
    if (learnt_->RecentlyMissed(NowNs())) {
      slow_score_.store(kSlowScore);
      MutexLock lock(mu_);
      EnterSlowLocked();
    }
  }

  // Claims the next task; false when none is due.
  bool Claim(Task* task) {
    if (finished_.load()) return false;
    const std::size_t start = started_page_.load();
    const std::size_t end = std::min(n_, start + ahead_pages_.load());
    const bool slow = slow_.load();
    const std::size_t stride = slow ? learnt_->run() : stride_;
    // A probe is due: it takes a span at the far end of the window, which no touch has
    // reached (its misses are the device's alone) and the reader will not reach before the
    // probe's few serial misses are done. Leads skip the span; the probe covers it.
    if (slow && probe_first_.load() == kNone && lead_.load() >= next_probe_.load() &&
        end - start >= 2 * kProbePages) {
      const std::size_t p0 = end - kProbePages;
      const std::size_t lead = lead_.load();
      std::size_t none = kNone;
      if (p0 >= lead + std::size_t{learnt_->limit()} * stride &&
          probe_first_.compare_exchange_strong(none, p0)) {
        next_probe_.store(p0 + kProbeEveryPages);
        NoteAhead(kProbePages + p0 - start);
        *task = Task{Kind::kProbe, p0, kProbePages};
        return true;
      }
    }
    // What a probe left of its span, first: it is nearer the reader than the leads are.
    for (std::size_t r = rest_next_.load(); r < rest_end_.load();) {
      if (r < start) {
        if (rest_next_.compare_exchange_weak(r, start)) r = start;
        continue;
      }
      if (!rest_next_.compare_exchange_weak(r, r + stride)) continue;
      *task = Task{Kind::kLead, r, 1};
      return true;
    }
    std::size_t q = lead_.load();
    for (;;) {
      if (q < start) {  // the reader passed it: start again at the reader
        if (lead_.compare_exchange_weak(q, start)) q = start;
        continue;
      }
      const std::size_t probe = probe_first_.load();
      if (probe != kNone && q >= probe && q < probe + kProbePages) {  // the probe's span
        if (lead_.compare_exchange_weak(q, probe + kProbePages)) q = probe + kProbePages;
        continue;
      }
      if (q >= end) break;
      if (!lead_.compare_exchange_weak(q, q + stride)) continue;
      NoteAhead(q + 1 - start);
      *task = Task{Kind::kLead, q, 1};
      return true;
    }
    if (!slow || stride <= 1) return false;
    const std::size_t gap = TrailGap(stride);
    std::size_t r = trail_.load();
    for (;;) {
      if (r < start) {
        if (trail_.compare_exchange_weak(r, start)) r = start;
        continue;
      }
      const std::size_t lead = lead_.load();
      if (r >= end || (lead < n_ && r + gap > lead)) return false;
      if (!trail_.compare_exchange_weak(r, r + 1)) continue;
      *task = Task{Kind::kTrail, r, 1};
      return true;
    }
  }

  bool HasWork() const {
    if (finished_.load()) return false;
    const std::size_t start = started_page_.load();
    const std::size_t end = std::min(n_, start + ahead_pages_.load());
    if (rest_next_.load() < rest_end_.load()) return true;
    const std::size_t q = lead_.load();
    if (q < end) return true;  // skipping what the reader passed counts as work
    if (!slow_.load() || learnt_->run() <= 1) return false;
    const std::size_t r = trail_.load();
    const std::size_t lead = lead_.load();
    return r < end && (lead >= n_ || r + TrailGap(learnt_->run()) <= lead);
  }

  // Runs a claimed task unless the stream finished. Returns true when more threads are due:
  // the stream started chasing misses, or the in-flight limit grew.
  bool Run(const Task& task) {
    touching_.fetch_add(1);
    bool wake = false;
    if (!finished_.load()) {
      if (task.kind == Kind::kProbe) {
        wake = Probe(task.first, task.count);
      } else {
        wake = Learn(TimedTouch(pages_[task.first]));
      }
    }
    touching_.fetch_sub(1);
    return wake;
  }

  // The reader started range k. Returns how many threads to wake.
  std::size_t Started(std::size_t k) {
    if (k >= first_page_.size()) return 0;
    const std::size_t page = first_page_[k];
    std::size_t cur = started_page_.load();
    while (page > cur && !started_page_.compare_exchange_weak(cur, page)) {
    }
    if (page <= cur) return 0;
    if (slow_.load()) {
      MutexLock lock(mu_);
      const std::uint64_t now = NowNs();
      if (last_started_ns_ != 0 && now > last_started_ns_ && page > last_started_page_) {
        learnt_->OnRate((page - last_started_page_) * 1024 * 1000 / (now - last_started_ns_));
      }
      last_started_ns_ = now;
      last_started_page_ = page;
      ResizeWindowLocked();
    }
    // Wake threads once the window moved far enough to be worth it: by an eighth of it when
    // chasing misses (a thread per run head that came in), by half of it when sampling (one).
    std::size_t woke = last_wake_page_.load();
    const std::size_t ahead = ahead_pages_.load();
    const bool slow = slow_.load();
    const std::size_t moved = page > woke ? page - woke : 0;
    if (moved < (slow ? std::max<std::size_t>(16, ahead / 8) : ahead / 2)) return 0;
    if (!last_wake_page_.compare_exchange_strong(woke, page)) return 0;
    return slow ? std::min<std::size_t>(moved / learnt_->run() + 1, learnt_->limit()) : 1;
  }

  void Finish() {
    if (!finished_.exchange(true) && slow_.load()) learnt_->StreamEndedSlow(NowNs());
    while (touching_.load() != 0) sched_yield();
  }

  std::size_t max_ahead_seen_bytes() const { return max_ahead_seen_.load() * options_.page_size; }
  Prefetcher::Impl* owner() const { return owner_; }
  bool slow() const { return slow_.load(); }

 private:
  // How far the trailing touches stay behind the run heads: about two miss latencies' worth
  // of heads in flight, so that the runs there have landed.
  std::size_t TrailGap(std::size_t run) const {
    return std::max<std::size_t>(64, 2 * std::size_t{learnt_->limit()} * run);
  }

  void NoteAhead(std::size_t pages) {
    std::size_t seen = max_ahead_seen_.load();
    while (pages > seen && !max_ahead_seen_.compare_exchange_weak(seen, pages)) {
    }
  }

  // Touches pages first.. one by one until three of them are slow, and takes the largest
  // distance between slow ones as the run length (a run cut short by one already on its way
  // shows a shorter distance, never a longer one). The rest of the span is handed to every
  // thread (rest_next_), to be touched at the run heads.
  bool Probe(std::size_t first, std::size_t count);

  // Accounts a touch of `ns`; returns true when more threads are due.
  bool Learn(std::uint64_t ns);

  // Starts chasing misses from the reader's position, with a probe first.
  void EnterSlowLocked() REQUIRES(mu_) {
    slow_.store(true);
    const std::size_t start = started_page_.load();
    lead_.store(start);
    trail_.store(start);
    next_probe_.store(start);
    ResizeWindowLocked();
  }

  // ahead = 4 x rate x miss latency + 2 x (misses in flight x R) + a probe, within [min, max].
  void ResizeWindowLocked() REQUIRES(mu_) {
    const std::uint64_t rate_x1024 = learnt_->rate_x1024();
    const std::uint64_t miss_ns = std::max<std::uint64_t>(learnt_->miss_ns(), 1);
    std::size_t want = static_cast<std::size_t>(4 * rate_x1024 * miss_ns / 1000 / 1024) +
                       2 * std::size_t{learnt_->limit()} * learnt_->run() + kProbePages;
    want = std::clamp(want, min_pages_, max_pages_);
    ahead_pages_.store(want);
  }

  Prefetcher::Impl* const owner_;
  DeviceEstimates* const learnt_;
  const PrefetchOptions options_;
  std::vector<std::uintptr_t> pages_;    // page addresses in read order
  std::vector<std::size_t> first_page_;  // range k's first page
  std::size_t n_ = 0;
  std::size_t stride_ = 1;
  std::size_t max_pages_ = 1, min_pages_ = 1;
  std::atomic<std::size_t> started_page_{0};
  std::atomic<std::size_t> lead_{0};
  std::atomic<std::size_t> trail_{0};
  std::atomic<std::size_t> next_probe_{0};  // lead position from which a probe is due
  static constexpr std::size_t kNone = ~std::size_t{0};
  std::atomic<std::size_t> probe_first_{kNone};  // the span of the probe in progress
  std::atomic<std::size_t> rest_next_{0}, rest_end_{0};  // what the last probe left of it
  std::atomic<std::size_t> ahead_pages_{1};
  std::atomic<std::size_t> max_ahead_seen_{0};
  std::atomic<std::size_t> last_wake_page_{0};
  std::atomic<std::uint64_t> avg_touch_ns_{0};
  std::atomic<int> slow_score_{0};
  std::atomic<bool> slow_{false};
  std::atomic<bool> finished_{false};
  std::atomic<int> touching_{0};
  Mutex mu_;  // mode switches (the atomics above change together under it)
  std::uint64_t last_started_ns_ GUARDED_BY(mu_) = 0;  // the reader's rate
  std::size_t last_started_page_ GUARDED_BY(mu_) = 0;
};

class Prefetcher::Impl {
 public:
  Impl(PrefetchOptions options, unsigned max_limit)
      : options_(std::move(options)), learnt_(max_limit) {}

  void Start(const std::vector<int>& cpus) {
    for (unsigned i = 0; i < options_.threads; ++i) {
      const int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
      threads_.emplace_back([this, i, cpu] {
        NameThisThread("cxlkv-pref-" + std::to_string(i));
        Loop(i, cpu);
      });
    }
  }

  ~Impl() {
    {
      MutexLock lock(mu_);
      stopping_ = true;
    }
    work_cv_.SignalAll();
    gate_cv_.SignalAll();
    for (std::thread& t : threads_) t.join();
  }

  std::shared_ptr<Stream> Announce(std::span<const std::span<const std::byte>> ranges) {
    auto state = std::make_shared<Stream::State>(this, &learnt_, options_, ranges);
    {
      MutexLock lock(mu_);
      active_.push_back(state);
    }
    streams_.fetch_add(1);
    Wake(state->slow() ? learnt_.limit() : 1);
    return std::make_shared<Stream>(std::move(state));
  }

  // Wakes up to how_many threads waiting for work.
  void Wake(std::size_t how_many) {
    if (how_many == 0) return;
    std::size_t n;
    {
      MutexLock lock(mu_);  // pairs with the predicate check of a thread going to sleep
      n = std::min(how_many, waiting_);
    }
    wakeups_.fetch_add(n);
    for (std::size_t i = 0; i < n; ++i) work_cv_.Signal();
  }

  // More threads are due (more work, or a higher limit): wake them all.
  void WakeAll() {
    {
      MutexLock lock(mu_);
      wakeups_.fetch_add(waiting_ + gated_);
    }
    work_cv_.SignalAll();
    gate_cv_.SignalAll();
  }

  void Remove(const Stream::State* state) {
    MutexLock lock(mu_);
    active_.erase(std::remove_if(active_.begin(), active_.end(),
                                 [state](const auto& s) { return s.get() == state; }),
                  active_.end());
  }

  void Count(std::uint64_t ns) {
    touched_.fetch_add(1, std::memory_order_relaxed);
    touch_ns_.fetch_add(ns, std::memory_order_relaxed);
    if (ns >= kSlowTouchNs) slow_.fetch_add(1, std::memory_order_relaxed);
  }
  void CountProbe() { probes_.fetch_add(1, std::memory_order_relaxed); }

  PrefetchStats Stats() const {
    PrefetchStats s;
    s.streams = streams_.load();
    s.pages_touched = touched_.load();
    s.slow_touches = slow_.load();
    s.touch_ns = touch_ns_.load();
    s.max_ahead_seen = max_ahead_.load();
    s.wakeups = wakeups_.load();
    s.probes = probes_.load();
    s.inflight_limit = learnt_.limit();
    s.inflight_limit_max = learnt_.max_limit_seen();
    s.run_pages = learnt_.run();
    s.miss_ns = learnt_.miss_ns();
    return s;
  }

  const PrefetchOptions& options() const { return options_; }
  void NoteAhead(std::size_t bytes) {
    std::uint64_t seen = max_ahead_.load();
    while (bytes > seen && !max_ahead_.compare_exchange_weak(seen, bytes)) {
    }
  }

 private:
  // The next stream with work, taken round-robin, for thread `index`; null when stopping.
  // Threads at or above the in-flight limit wait apart until it grows.
  std::shared_ptr<Stream::State> NextStream(unsigned index) {
    MutexLock lock(mu_);
    for (;;) {
      if (stopping_) return nullptr;
      if (index >= learnt_.limit()) {
        ++gated_;
        gate_cv_.Wait(mu_);
        --gated_;
        continue;
      }
      for (std::size_t n = 0; n < active_.size(); ++n) {
        rr_ = (rr_ + 1) % active_.size();
        if (active_[rr_]->HasWork()) return active_[rr_];
      }
      ++waiting_;
      work_cv_.Wait(mu_);
      --waiting_;
    }
  }

  void Loop(unsigned index, int cpu) {
    if (cpu >= 0) (void)PinThisThread(cpu);  // a hint: fine if refused
    while (std::shared_ptr<Stream::State> s = NextStream(index)) {
      Stream::State::Task task;
      while (index < learnt_.limit() && s->Claim(&task)) {
        if (s->Run(task)) WakeAll();
      }
      NoteAhead(s->max_ahead_seen_bytes());
    }
  }

  const PrefetchOptions options_;
  DeviceEstimates learnt_;
  std::vector<std::thread> threads_;
  Mutex mu_;
  CondVar work_cv_;  // threads under the limit, waiting for work
  CondVar gate_cv_;  // threads at or above the limit
  std::vector<std::shared_ptr<Stream::State>> active_ GUARDED_BY(mu_);
  std::size_t rr_ GUARDED_BY(mu_) = 0;
  std::size_t waiting_ GUARDED_BY(mu_) = 0;
  std::size_t gated_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::atomic<std::uint64_t> streams_{0}, touched_{0}, slow_{0}, touch_ns_{0}, max_ahead_{0},
      wakeups_{0}, probes_{0};
};

// --- Stream::State, the parts that report to the prefetcher ---

bool Prefetcher::Stream::State::Learn(std::uint64_t ns) {
  owner_->Count(ns);
  bool wake = false;
  if (ns >= learnt_->MissThresholdNs()) wake = learnt_->OnMiss(ns);
  const std::uint64_t avg = avg_touch_ns_.load(std::memory_order_relaxed);
  const std::uint64_t next_avg = avg == 0 ? ns : (avg * 15 + ns) / 16;
  avg_touch_ns_.store(next_avg, std::memory_order_relaxed);
  // One slow touch may be a preemption or an interrupt, not a miss: it takes a run of them
  // (each adds 4, each fast one takes 1 off) to start chasing misses.
  const int score = slow_score_.load(std::memory_order_relaxed);
  const int next_score = ns >= kSlowTouchNs ? std::min(score + 4, 64) : std::max(score - 1, 0);
  slow_score_.store(next_score, std::memory_order_relaxed);
  const bool slow = slow_.load();
  if (!slow && next_score >= kSlowScore) {
    MutexLock lock(mu_);
    if (!slow_.load()) {
      EnterSlowLocked();
      return true;
    }
  } else if (slow && next_avg < kFastAverageNs) {
    MutexLock lock(mu_);
    slow_.store(false);
    ahead_pages_.store(max_pages_);
  }
  return wake;
}

bool Prefetcher::Stream::State::Probe(std::size_t first, std::size_t count) {
  owner_->CountProbe();
  const std::size_t end = first + count;
  // The first touch is a miss no one else has asked for (the span is ahead of every other
  // touch). A page this miss brought costs microseconds, a page of another run a miss again,
  // give or take the queueing in the device (misses vary 1-4x under load): a sixteenth of the
  // first tells them apart.
  std::uint64_t threshold = 0;
  std::size_t slow_at[kProbeSlowTouches];
  int slow = 0;
  bool wake = false;
  std::size_t i = first;
  for (; i < end && slow < kProbeSlowTouches; ++i) {
    if (finished_.load()) break;
    // The reader got there first: what is left would time its misses, not the device's runs.
    if (i < started_page_.load()) break;
    const std::uint64_t ns = TimedTouch(pages_[i]);
    wake |= Learn(ns);
    if (threshold == 0) {
      if (ns < kSlowTouchNs) break;  // resident: nothing to learn or chase here
      threshold = std::max(kSlowTouchNs, ns / 16);
      learnt_->OnProbeMiss(ns);
    }
    if (ns >= threshold) slow_at[slow++] = i;
  }
  if (slow >= 2) {
    std::size_t run = 1;
    for (int k = 1; k < slow; ++k) run = std::max(run, slow_at[k] - slow_at[k - 1]);
    learnt_->OnProbe(static_cast<unsigned>(run));
  }
  // The rest of the span goes to every thread, at the run heads (the leads skipped it).
  const std::size_t rest = slow > 0 ? slow_at[slow - 1] + learnt_->run() : i;
  if (rest < end) {
    rest_end_.store(end);
    rest_next_.store(rest);
    wake = true;
  }
  probe_first_.store(kNone);
  return wake;
}

// --- Stream ---

void Prefetcher::Stream::Started(std::size_t k) {
  state_->owner()->Wake(state_->Started(k));
}

void Prefetcher::Stream::Finish() {
  state_->Finish();
  state_->owner()->NoteAhead(state_->max_ahead_seen_bytes());
  state_->owner()->Remove(state_.get());
}

std::size_t Prefetcher::Stream::max_ahead_seen() const { return state_->max_ahead_seen_bytes(); }

Prefetcher::Stream::~Stream() { Finish(); }

// --- Prefetcher ---

Result<std::unique_ptr<Prefetcher>> Prefetcher::Create(const PrefetchOptions& options) {
  if (options.threads == 0 || options.threads > 1024) {
    return Status::InvalidArgument("prefetch threads must be 1 to 1024, not " +
                                   std::to_string(options.threads));
  }
  if (options.page_size == 0 || (options.page_size & (options.page_size - 1)) != 0) {
    return Status::InvalidArgument("prefetch page size must be a power of two");
  }
  if (options.max_ahead_bytes < options.page_size) {
    return Status::InvalidArgument("prefetch budget (max_ahead_bytes) is under one page");
  }
  if (options.fast_stride_pages == 0) {
    return Status::InvalidArgument("prefetch fast_stride_pages must be at least 1");
  }
  if (options.max_misses_per_cpu > 1024) {
    return Status::InvalidArgument("prefetch max_misses_per_cpu must be 0 (no cap) to 1024, not " +
                                   std::to_string(options.max_misses_per_cpu));
  }
  const std::vector<int> cpus = options.cpus.empty() ? AllowedCpus() : options.cpus;
  unsigned max_limit = options.threads;
  if (options.max_misses_per_cpu > 0) {
    // Threads are spread round-robin over these CPUs: each can have its cap in flight.
    const std::size_t used = std::min<std::size_t>(
        options.threads, std::max<std::size_t>(1, std::set<int>(cpus.begin(), cpus.end()).size()));
    max_limit = std::min<unsigned>(max_limit,
                                   options.max_misses_per_cpu * static_cast<unsigned>(used));
  }
  auto impl = std::make_unique<Impl>(options, max_limit);
  impl->Start(cpus);
  return std::unique_ptr<Prefetcher>(new Prefetcher(std::move(impl)));
}

Prefetcher::Prefetcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Prefetcher::~Prefetcher() = default;

std::shared_ptr<Prefetcher::Stream> Prefetcher::Announce(
    std::span<const std::span<const std::byte>> ranges) {
  return impl_->Announce(ranges);
}

PrefetchStats Prefetcher::Stats() const { return impl_->Stats(); }
const PrefetchOptions& Prefetcher::options() const { return impl_->options(); }

}  // namespace cxlkv
