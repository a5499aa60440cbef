// Prefetch threads that touch the pages of announced streams ahead of their readers.
//
// A stream is a flat list of page addresses in read order (one per page of each range, the
// first at the range's start). Threads claim addresses from a shared cursor with a CAS, never
// past the reader's position + the stream's window, and skip what the reader has passed. The
// window and the sampling stride follow the measured touch times (see prefetcher.h).
#include "cxlkv/prefetcher.h"

#include <sched.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "util/cpu.h"

namespace cxlkv {

namespace {

std::uint64_t NowNs() { return MonotonicNs(); }

// A touch slower than this did not find its page resident: a resident page costs a TLB walk
// (well under a microsecond); any fault or device miss costs microseconds.
constexpr std::uint64_t kSlowTouchNs = 2'000;
// Back to sampling once the average touch is this fast again.
constexpr std::uint64_t kFastAverageNs = 1'000;
// How many blocks the trailing touches follow the leading ones.
constexpr std::size_t kTrailBlocks = 2;
// Slow-touch score (+4 a slow touch, -1 a fast one) at which every page is touched.
constexpr int kSlowScore = 16;

// Reads one byte of the page and drops it. The page belongs to a chunk the reader holds (it
// cannot be freed or rewritten before the reader has started it, and the window never reaches
// behind the reader), but a thread that claimed an address just before the reader moved on
// may read it while the reader copies it out: a read-read overlap, or at worst a read of bytes
// being rewritten whose value is never used. ThreadSanitizer cannot know the value is unused.
__attribute__((no_sanitize("thread"))) void TouchPage(std::uintptr_t addr) {
  (void)*reinterpret_cast<const volatile std::uint8_t*>(addr);
}

}  // namespace

// The touch order. Pages are grouped in blocks of P pages; in each block one page in S leads
// (L) and the rest trail (T). The order is L0 L1 L2 T0 L3 T1 ... : a block's leading pages are
// touched kTrailBlocks blocks before its trailing ones. Where the device fetches a run of pages per miss
// (device next-N), the leading misses bring most of a block and the trailing touches, a block
// later, find their pages resident (no second fault on a page still on its way); where it does
// not, the trailing touches take the remaining misses. While touches are fast, only leading
// pages are touched: sampling.
class Prefetcher::Stream::State {
 public:
  State(Prefetcher::Impl* owner, const PrefetchOptions& o,
        std::span<const std::span<const std::byte>> ranges)
      : owner_(owner), options_(o) {
    const std::uintptr_t page = o.page_size;
    std::vector<std::uintptr_t> flat;
    for (const auto& r : ranges) {
      first_page_.push_back(flat.size());
      if (r.empty()) continue;
      const auto begin = reinterpret_cast<std::uintptr_t>(r.data());
      const std::uintptr_t end = begin + r.size();
      flat.push_back(begin);
      for (std::uintptr_t a = (begin / page + 1) * page; a < end; a += page) flat.push_back(a);
    }
    n_ = flat.size();
    max_pages_ = std::max<std::size_t>(1, o.max_ahead_bytes / o.page_size);
    block_ = std::clamp<std::size_t>(max_pages_ / (kTrailBlocks + 2), 1, 512);
    stride_ = std::clamp<std::size_t>(o.fast_stride_pages, 1, block_);
    min_pages_ = std::clamp<std::size_t>(o.min_ahead_bytes / o.page_size,
                                         (kTrailBlocks + 1) * block_, max_pages_);
    ahead_pages_.store(max_pages_);  // sampling starts over the whole budget
    const std::size_t blocks = (n_ + block_ - 1) / block_;
    order_.reserve(n_);
    lead_seq_.assign(blocks + 2, 0);
    auto add = [&](std::size_t b, bool lead) {
      const std::size_t first = b * block_, last = std::min(n_, first + block_);
      for (std::size_t i = first; i < last; ++i) {
        if (((i - first) % stride_ == 0) == lead) {
          order_.push_back({flat[i], static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(b), lead});
        }
      }
    };
    for (std::size_t b = 0; b < blocks + kTrailBlocks; ++b) {
      if (b <= blocks) lead_seq_[b] = order_.size();
      if (b < blocks) add(b, true);
      if (b >= kTrailBlocks) add(b - kTrailBlocks, false);
    }
    lead_seq_[blocks + 1] = order_.size();
  }

  // Claims the next address to touch; false when none is due.
  bool Claim(std::size_t* index) {
    std::size_t q = cursor_.load();
    for (;;) {
      if (finished_.load(std::memory_order_relaxed) || q >= order_.size()) return false;
      const Entry& e = order_[q];
      const std::size_t start = started_page_.load();
      if (e.pos < start || (!e.lead && !slow_.load())) {
        // Passed by the reader, or a trailing page while sampling: skip (the trailing pages of
        // block b sit just before the leading pages of block b + kTrailBlocks + 1).
        const std::size_t next =
            e.lead ? q + 1
                   : std::max(q + 1, lead_seq_[std::min<std::size_t>(e.block + kTrailBlocks + 1,
                                                                     lead_seq_.size() - 1)]);
        const std::size_t to = e.pos < start ? q + 1 : next;
        if (cursor_.compare_exchange_weak(q, to)) q = to;
        continue;
      }
      if (!InWindow(e, start)) return false;
      if (!cursor_.compare_exchange_weak(q, q + 1)) continue;
      const std::size_t ahead = e.pos + 1 - start;
      std::size_t seen = max_ahead_seen_.load();
      while (ahead > seen && !max_ahead_seen_.compare_exchange_weak(seen, ahead)) {
      }
      *index = q;
      return true;
    }
  }

  bool HasWork() const {
    if (finished_.load()) return false;
    const std::size_t q = cursor_.load();
    if (q >= order_.size()) return false;
    const Entry& e = order_[q];
    const std::size_t start = started_page_.load();
    if (e.pos < start || (!e.lead && !slow_.load())) return true;  // skipping is work
    return InWindow(e, start);
  }

  // Touches entry q unless the stream finished; returns the nanoseconds it took, or -1. Sets
  // *widened when this touch switched the stream from sampling to touching every page.
  std::int64_t Touch(std::size_t q, bool* widened) {
    touching_.fetch_add(1);
    if (finished_.load()) {
      touching_.fetch_sub(1);
      return -1;
    }
    const std::uint64_t t0 = NowNs();
    TouchPage(order_[q].addr);
    const std::uint64_t ns = NowNs() - t0;
    touching_.fetch_sub(1);
    *widened = Learn(ns);
    return static_cast<std::int64_t>(ns);
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
      std::lock_guard lock(mu_);
      const std::uint64_t now = NowNs();
      if (last_started_ns_ != 0 && now > last_started_ns_ && page > last_started_page_) {
        // The reader's rate in pages per microsecond, times 1024 (fixed point).
        const std::uint64_t rate =
            (page - last_started_page_) * 1024 * 1000 / (now - last_started_ns_);
        rate_x1024_ = rate_x1024_ == 0 ? rate : (rate_x1024_ * 7 + rate) / 8;
      }
      last_started_ns_ = now;
      last_started_page_ = page;
      ResizeWindowLocked();
    }
    // Wake threads once the window moved far enough to be worth it: by an eighth of it when
    // touching every page (a thread per page that came in), by half of it when sampling (one).
    std::size_t woke = last_wake_page_.load();
    const std::size_t ahead = ahead_pages_.load();
    const bool slow = slow_.load();
    const std::size_t moved = page > woke ? page - woke : 0;
    if (moved < (slow ? std::max<std::size_t>(16, ahead / 8) : ahead / 2)) return 0;
    if (!last_wake_page_.compare_exchange_strong(woke, page)) return 0;
    return slow ? std::min<std::size_t>(moved, options_.threads) : 1;
  }

  void Finish() {
    finished_.store(true);
    while (touching_.load() != 0) sched_yield();
  }

  std::size_t max_ahead_seen_bytes() const { return max_ahead_seen_.load() * options_.page_size; }
  Prefetcher::Impl* owner() const { return owner_; }

 private:
  struct Entry {
    std::uintptr_t addr;
    std::uint32_t pos;    // the page's place in the stream
    std::uint32_t block;  // pos / block_
    bool lead;
  };

  // A page may be touched once its whole block lies within the window (or the stream's end
  // does): no touch ever lands further than the window ahead of the reader.
  bool InWindow(const Entry& e, std::size_t start) const {
    const std::size_t limit = start + ahead_pages_.load();
    return limit >= n_ || (std::size_t{e.block} + 1) * block_ <= limit;
  }

  // Returns true when the stream switched from sampling to touching every page.
  bool Learn(std::uint64_t ns) {
    const std::uint64_t avg = avg_touch_ns_.load(std::memory_order_relaxed);
    const std::uint64_t next_avg = avg == 0 ? ns : (avg * 15 + ns) / 16;
    avg_touch_ns_.store(next_avg, std::memory_order_relaxed);
    // One slow touch may be a preemption or an interrupt, not a miss: it takes a run of them
    // (each adds 4, each fast one takes 1 off) to start touching every page.
    const int score = slow_score_.load(std::memory_order_relaxed);
    const int next_score = ns >= kSlowTouchNs ? std::min(score + 4, 64) : std::max(score - 1, 0);
    slow_score_.store(next_score, std::memory_order_relaxed);
    const bool switch_to_slow = !slow_.load() && next_score >= kSlowScore;
    if (ns < kSlowTouchNs && !switch_to_slow && (!slow_.load() || next_avg >= kFastAverageNs)) {
      return false;
    }
    std::lock_guard lock(mu_);
    if (ns >= kSlowTouchNs) slow_miss_ns_ = slow_miss_ns_ == 0 ? ns : (slow_miss_ns_ * 7 + ns) / 8;
    if (!slow_.load() && switch_to_slow) {
      slow_.store(true);
      // Trailing pages skipped while sampling are due now: go back to the reader's block.
      const std::size_t b = std::min(started_page_.load() / block_, lead_seq_.size() - 1);
      cursor_.store(lead_seq_[b]);
      ResizeWindowLocked();
      return true;
    }
    if (slow_.load() && next_avg < kFastAverageNs) {
      slow_.store(false);
      ahead_pages_.store(max_pages_);
    }
    return false;
  }

  // ahead = 4 x rate x miss latency + one page per thread, within [min, max].
  void ResizeWindowLocked() {
    const std::uint64_t miss_us_x1024 =
        rate_x1024_ * std::max<std::uint64_t>(slow_miss_ns_, 1) / 1000;
    std::size_t want = static_cast<std::size_t>(4 * miss_us_x1024 / 1024) + options_.threads;
    want = std::clamp(want, min_pages_, max_pages_);
    ahead_pages_.store(want);
  }

  Prefetcher::Impl* const owner_;
  const PrefetchOptions options_;
  std::vector<Entry> order_;            // touch order
  std::vector<std::size_t> lead_seq_;   // block b's leading pages start at order_[lead_seq_[b]]
  std::vector<std::size_t> first_page_;  // range k's first page
  std::size_t n_ = 0;
  std::size_t block_ = 1, stride_ = 1;
  std::size_t max_pages_ = 1, min_pages_ = 1;
  std::atomic<std::size_t> started_page_{0};
  std::atomic<std::size_t> cursor_{0};
  std::atomic<std::size_t> ahead_pages_{1};
  std::atomic<std::size_t> max_ahead_seen_{0};
  std::atomic<std::size_t> last_wake_page_{0};
  std::atomic<std::uint64_t> avg_touch_ns_{0};
  std::atomic<int> slow_score_{0};
  std::atomic<bool> slow_{false};
  std::atomic<bool> finished_{false};
  std::atomic<int> touching_{0};
  std::mutex mu_;  // the estimates below, and mode switches
  std::uint64_t slow_miss_ns_ = 0;
  std::uint64_t rate_x1024_ = 0;
  std::uint64_t last_started_ns_ = 0;
  std::size_t last_started_page_ = 0;
};

class Prefetcher::Impl {
 public:
  explicit Impl(PrefetchOptions options) : options_(std::move(options)) {}

  void Start() {
    const std::vector<int> cpus = options_.cpus.empty() ? AllowedCpus() : options_.cpus;
    for (unsigned i = 0; i < options_.threads; ++i) {
      const int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
      threads_.emplace_back([this, cpu] { Loop(cpu); });
    }
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  std::shared_ptr<Stream> Announce(std::span<const std::span<const std::byte>> ranges) {
    auto state = std::make_shared<Stream::State>(this, options_, ranges);
    {
      std::lock_guard lock(mu_);
      active_.push_back(state);
    }
    streams_.fetch_add(1);
    wakeups_.fetch_add(1);
    cv_.notify_one();
    return std::make_shared<Stream>(std::move(state));
  }

  // Wakes up to how_many parked threads.
  void Wake(std::size_t how_many) {
    if (how_many == 0) return;
    std::size_t n;
    {
      std::lock_guard lock(mu_);  // pairs with the predicate check of a thread going to sleep
      n = std::min(how_many, parked_);
    }
    wakeups_.fetch_add(n);
    for (std::size_t i = 0; i < n; ++i) cv_.notify_one();
  }

  void Remove(const Stream::State* state) {
    std::lock_guard lock(mu_);
    active_.erase(std::remove_if(active_.begin(), active_.end(),
                                 [state](const auto& s) { return s.get() == state; }),
                  active_.end());
  }

  PrefetchStats Stats() const {
    PrefetchStats s;
    s.streams = streams_.load();
    s.pages_touched = touched_.load();
    s.slow_touches = slow_.load();
    s.touch_ns = touch_ns_.load();
    s.max_ahead_seen = max_ahead_.load();
    s.wakeups = wakeups_.load();
    return s;
  }

  const PrefetchOptions& options() const { return options_; }
  void NoteAhead(std::size_t bytes) {
    std::uint64_t seen = max_ahead_.load();
    while (bytes > seen && !max_ahead_.compare_exchange_weak(seen, bytes)) {
    }
  }

 private:
  // The next stream with work, taken round-robin; null when stopping.
  std::shared_ptr<Stream::State> NextStream() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (stopping_) return nullptr;
      for (std::size_t n = 0; n < active_.size(); ++n) {
        rr_ = (rr_ + 1) % active_.size();
        if (active_[rr_]->HasWork()) return active_[rr_];
      }
      ++parked_;
      cv_.wait(lock);
      --parked_;
    }
  }

  void Loop(int cpu) {
    if (cpu >= 0) (void)PinThisThread(cpu);  // a hint: fine if refused
    while (std::shared_ptr<Stream::State> s = NextStream()) {
      std::size_t i = 0;
      while (s->Claim(&i)) {
        bool widened = false;
        const std::int64_t ns = s->Touch(i, &widened);
        if (ns < 0) break;
        touched_.fetch_add(1, std::memory_order_relaxed);
        touch_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
        if (static_cast<std::uint64_t>(ns) >= kSlowTouchNs) {
          slow_.fetch_add(1, std::memory_order_relaxed);
        }
        if (widened) Wake(options_.threads);  // every page is due now: bring the others in
      }
      NoteAhead(s->max_ahead_seen_bytes());
    }
  }

  const PrefetchOptions options_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Stream::State>> active_;
  std::size_t rr_ = 0;
  std::size_t parked_ = 0;
  bool stopping_ = false;
  std::atomic<std::uint64_t> streams_{0}, touched_{0}, slow_{0}, touch_ns_{0}, max_ahead_{0},
      wakeups_{0};
};

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
  auto impl = std::make_unique<Impl>(options);
  impl->Start();
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
