// The emulated CXL-SSD: a memfd mapping, a userfaultfd, and one fault handler per CPU.
//
// Why it is built this way (measurements in ../shared/notes/uffd-emulator-measurements.md):
//   - A fault round trip costs ~4 us when the handler runs on the faulting thread's CPU and
//     70-130 us when it wakes a thread on the other CPU. So each handler is pinned to a CPU and
//     serves the faults of threads pinned to that CPU: whichever handler reads a fault message
//     hands it to the right one through a mailbox (shared memory, no wake-up while both poll).
//   - MINOR faults over a memfd map a page that already exists: no allocation, no copy.
//   - Timer wake-ups arrive ~26 us late, so a handler busy-polls its queue (yielding the CPU
//     between looks) while faults keep coming; after 200 us without one it sleeps in ppoll():
//     until a fault comes if nothing is queued, else until shortly before its next completion
//     when that is over 300 us off (a dilated device). Polling through a long wait on a loaded
//     host gave the CPU away at each yield: mappings came milliseconds late.
//   - Unmapping one page at a time costs a third of a fault; the model evicts in batches and
//     the handler unmaps them as ranges.
#include "cxlkv/cxl_ssd.h"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <functional>
#include <queue>
#include <thread>

#include "alloc/cxl_ssd_model.h"
#include "alloc/os_memory.h"
#include "alloc/userfaultfd.h"
#include "util/cpu.h"
#include "util/format.h"
#include "util/log.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"
#include "util/unique_fd.h"

namespace cxlkv {

namespace {

using internal::CxlSsdModel;
using internal::FaultOutcome;
using internal::PageRun;

std::uint64_t NowNs() { return MonotonicNs(); }

// How long a handler keeps polling after its last piece of work before it sleeps.
constexpr std::uint64_t kSpinAfterWorkNs = 200'000;
// A handler that has had no fault for kSpinAfterWorkNs, and whose next completion is further
// off than kSleepAheadNs, sleeps until kWakeEarlyNs before it (timer wake-ups arrive ~26 us
// late here) rather than poll: polling, it yields the CPU to whatever else is runnable, and
// on a loaded host each yield can cost a time slice, however far off the completion is.
constexpr std::uint64_t kSleepAheadNs = 300'000;
constexpr std::uint64_t kWakeEarlyNs = 60'000;
// How long a thread's CPU, as learnt from its affinity, is trusted.
constexpr std::uint64_t kRouteTtlNs = 50'000'000;

}  // namespace

class CxlSsd::Impl {
 public:
  struct Pending {
    std::uint64_t ready_ns;
    PageRun run;
    bool operator>(const Pending& o) const { return ready_ns > o.ready_ns; }
  };
  struct Route {
    pid_t tid;
    int handler;
    std::uint64_t learnt_ns;
  };
  struct Handler {
    int cpu = -1;
    UniqueFd wake;  // eventfd: mail arrived while asleep, or stop
    std::atomic<bool> asleep{false};
    internal::Mutex mail_mu;
    std::vector<os::Userfaultfd::Fault> mail GUARDED_BY(mail_mu);
    std::thread thread;
    std::vector<Route> routes;  // the handler's own cache, touched only by its thread
  };

  Impl(CxlSsdOptions options, CxlSsdModel model, UniqueFd memfd, os::AnonymousMapping mapping,
       os::Userfaultfd uffd)
      : options_(std::move(options)),
        model_(std::move(model)),
        memfd_(std::move(memfd)),
        mapping_(std::move(mapping)),
        uffd_(std::move(uffd)),
        base_(reinterpret_cast<std::uintptr_t>(mapping_.data())),
        dilation_(options_.dilation) {}

  Status Start(const std::vector<int>& cpus) {
    handlers_ = std::vector<Handler>(cpus.size());
    for (std::size_t i = 0; i < cpus.size(); ++i) {
      handlers_[i].cpu = cpus[i];
      handlers_[i].wake = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (handlers_[i].wake.get() < 0) return Status::FromErrno("eventfd", errno);
    }
    {
      internal::MutexLock lock(model_mu_);  // no handler runs yet; the lock is for the analysis
      stats_start_ns_ = NowNs();
    }
    for (std::size_t i = 0; i < handlers_.size(); ++i) {
      handlers_[i].thread = std::thread([this, i] { HandlerLoop(static_cast<int>(i)); });
    }
    return Status::Ok();
  }

  ~Impl() {
    // Unregistering wakes any thread still waiting on a fault; it then maps the page itself.
    Status s = uffd_.Unregister(mapping_.data(), mapping_.length());
    if (!s.ok()) internal::LogF("cxlkv: emulated CXL-SSD: %s", s.ToString().c_str());
    stopping_.store(true);
    for (Handler& h : handlers_) WakeHandler(h);
    for (Handler& h : handlers_) {
      if (h.thread.joinable()) h.thread.join();
    }
  }

  std::byte* data() const { return mapping_.data(); }
  std::size_t size() const { return options_.capacity; }
  const CxlSsdOptions& options() const { return options_; }

  void SetTiming(bool on) { timing_.store(on); }
  void SetNextN(unsigned n) {
    internal::MutexLock lock(model_mu_);
    model_.SetNextN(n);
  }

  void SetLatencies(std::chrono::nanoseconds read, std::chrono::nanoseconds program) {
    internal::MutexLock lock(model_mu_);
    model_.SetLatencies(static_cast<std::uint64_t>(std::max<std::int64_t>(0, read.count())),
                        static_cast<std::uint64_t>(std::max<std::int64_t>(0, program.count())));
  }

  Status SetDilation(unsigned d) {
    if (d == 0 || d > internal::kMaxDilation) {
      return Status::InvalidArgument("time dilation must be 1 to " +
                                     std::to_string(internal::kMaxDilation) + ", not " +
                                     std::to_string(d));
    }
    internal::MutexLock lock(model_mu_);
    model_.SetDilation(d);
    dilation_.store(d);
    return Status::Ok();
  }
  unsigned dilation() const { return dilation_.load(); }

  Status DropCache() {
    std::vector<PageRun> unmap;
    // Pages in flight are mapped by their handler after the model hears of them; wait for
    // them to land, or they would stay mapped while the model counts them out.
    const std::uint64_t give_up = NowNs() + 5'000'000'000ull;
    for (;;) {
      {
        internal::MutexLock lock(model_mu_);
        if (model_.inflight_pages() == 0) {
          model_.DropAll(NowNs(), &unmap);
          break;
        }
      }
      if (NowNs() > give_up) {
        return Status::Busy("emulated CXL-SSD: pages still in flight after 5 s; cache not dropped");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return Unmap(unmap);
  }

  void ResetStats() {
    internal::MutexLock lock(model_mu_);
    model_.ResetStats();
    model_.ResetDies(NowNs());
    forwarded_ = 0;
    unmap_calls_ = 0;
    late_ns_ = 0;
    mappings_ = 0;
    busy_ns_ = 0;
    stats_start_ns_ = NowNs();
  }

  CxlSsdStats Stats() const {
    CxlSsdStats s;
    const std::uint64_t now = NowNs();
    internal::MutexLock lock(model_mu_);
    const internal::CxlSsdModelStats& m = model_.stats();
    s.faults = m.faults;
    s.read_misses = m.read_misses;
    s.write_misses = m.write_misses;
    s.soft_faults = m.soft_faults;
    s.inflight_faults = m.inflight_faults;
    s.nand_reads = m.nand_reads;
    s.prefetch_reads = m.prefetch_reads;
    s.nand_programs = m.nand_programs;
    s.evictions = m.evictions;
    s.cached_pages = model_.cached_pages();
    s.elapsed = std::chrono::nanoseconds(now - stats_start_ns_);
    const double denom = static_cast<double>(model_.config().dies) *
                         static_cast<double>(std::max<std::uint64_t>(1, now - stats_start_ns_));
    s.die_utilisation = static_cast<double>(m.die_busy_ns) / denom;
    const double elapsed = denom / static_cast<double>(model_.config().dies);
    for (std::uint32_t d = 0; d < model_.config().dies; ++d) {
      s.die_utilisation_per_die.push_back(static_cast<double>(model_.die_busy_ns(d)) / elapsed);
    }
    s.forwarded = forwarded_.load();
    s.unmap_calls = unmap_calls_.load();
    s.late_ns = late_ns_.load();
    s.mappings = mappings_.load();
    s.handler_busy_ns = busy_ns_.load();
    return s;
  }

  Status health() const {
    internal::MutexLock lock(error_mu_);
    return first_error_;
  }

  double NandReadBound() const {
    const double dies = static_cast<double>(options_.channels) * options_.dies_per_channel;
    return dies * static_cast<double>(options_.page_size) /
           (static_cast<double>(options_.read_latency.count()) * dilation_.load() * 1e-9);
  }

  bool Claim() { return !claimed_.exchange(true); }
  void Release() { claimed_.store(false); }

 private:
  void Record(const Status& s) {
    if (s.ok()) return;
    internal::MutexLock lock(error_mu_);
    if (first_error_.ok()) first_error_ = s;
  }

  static void WakeHandler(Handler& h) {
    const std::uint64_t one = 1;
    if (write(h.wake.get(), &one, sizeof(one)) < 0 && errno != EAGAIN) {
      std::perror("cxlkv: emulated CXL-SSD: eventfd write");
    }
  }

  Status Unmap(const std::vector<PageRun>& runs) {
    Status first;
    for (const PageRun& r : runs) {
      Status s = os::DropMappedPages(mapping_.data() + r.first * options_.page_size,
                                     r.count * options_.page_size);
      if (first.ok()) first = s;
      unmap_calls_.fetch_add(1, std::memory_order_relaxed);
    }
    return first;
  }

  void Map(const PageRun& run, std::uint64_t due_ns) {
    Status s = uffd_.Continue(base_ + run.first * options_.page_size,
                              run.count * options_.page_size);
    Record(s);
    {
      internal::MutexLock lock(model_mu_);
      model_.OnMapped(run);
    }
    const std::uint64_t now = NowNs();
    if (now > due_ns) late_ns_.fetch_add(now - due_ns, std::memory_order_relaxed);
    mappings_.fetch_add(1, std::memory_order_relaxed);
  }

  // The handler that serves `tid`: the one on the single CPU the thread is pinned to, else
  // the one that read the fault.
  int RouteOf(Handler& self, int self_index, pid_t tid, std::uint64_t now) {
    if (handlers_.size() == 1 || tid == 0) return self_index;
    for (Route& r : self.routes) {
      if (r.tid == tid && now - r.learnt_ns < kRouteTtlNs) return r.handler;
    }
    int target = self_index;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(tid, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1) {
      for (std::size_t i = 0; i < handlers_.size(); ++i) {
        if (CPU_ISSET(handlers_[i].cpu, &set)) target = static_cast<int>(i);
      }
    }
    auto it = std::find_if(self.routes.begin(), self.routes.end(),
                           [tid](const Route& r) { return r.tid == tid; });
    if (it != self.routes.end()) {
      *it = Route{tid, target, now};
    } else {
      if (self.routes.size() >= 256) self.routes.erase(self.routes.begin());
      self.routes.push_back(Route{tid, target, now});
    }
    return target;
  }

  void HandleFault(const os::Userfaultfd::Fault& f,
                   std::priority_queue<Pending, std::vector<Pending>, std::greater<>>& queue,
                   FaultOutcome& outcome) {
    const std::uintptr_t off = f.address - base_;
    if (f.address < base_ || off >= mapping_.length()) {
      Record(uffd_.Wake(f.address & ~std::uintptr_t{4095}, 4096));
      return;
    }
    const std::uint64_t page = off / options_.page_size;
    const std::uint64_t now = NowNs();
    {
      internal::MutexLock lock(model_mu_);
      model_.OnFault(page, f.write, now, &outcome);
    }
    switch (outcome.kind) {
      case FaultOutcome::Kind::kInFlight:
        break;  // the fetch that brings the page wakes this thread when it maps it
      case FaultOutcome::Kind::kSoftFault:
      case FaultOutcome::Kind::kMapped:
        Map({page, 1}, now);
        break;
      case FaultOutcome::Kind::kMiss: {
        const bool timing = timing_.load(std::memory_order_relaxed);
        for (const internal::Fetch& fetch : outcome.fetches) {
          if (!timing || fetch.ready_ns <= now) {
            Map(fetch.run, timing ? fetch.ready_ns : now);
          } else {
            queue.push({fetch.ready_ns, fetch.run});
          }
        }
        break;
      }
    }
    // Evicted pages are unmapped after the fault is served, off its path: the model counts
    // them as gone already, and a thread that touches one before the unmap reads the same
    // bytes it would read after the next fault.
    Record(Unmap(outcome.unmap));
  }

  void HandlerLoop(int index) {
    Handler& self = handlers_[static_cast<std::size_t>(index)];
    if (!PinThisThread(self.cpu)) {
      Record(Status::IOError("cannot pin an emulated CXL-SSD handler to CPU " +
                             std::to_string(self.cpu)));
    }
    std::priority_queue<Pending, std::vector<Pending>, std::greater<>> queue;
    std::vector<os::Userfaultfd::Fault> faults(64);
    std::vector<os::Userfaultfd::Fault> mine;
    FaultOutcome outcome;
    std::uint64_t last_work = NowNs();
    while (!stopping_.load(std::memory_order_relaxed)) {
      const std::uint64_t start = NowNs();
      bool worked = false;
      mine.clear();
      Result<std::size_t> n = uffd_.ReadFaults(faults);
      if (!n.ok()) {
        Record(n.status());
      } else {
        for (std::size_t i = 0; i < *n; ++i) {
          const int target = RouteOf(self, index, faults[i].tid, start);
          if (target == index) {
            mine.push_back(faults[i]);
            continue;
          }
          Handler& other = handlers_[static_cast<std::size_t>(target)];
          {
            internal::MutexLock lock(other.mail_mu);
            other.mail.push_back(faults[i]);
          }
          forwarded_.fetch_add(1, std::memory_order_relaxed);
          if (other.asleep.load()) WakeHandler(other);
        }
      }
      {
        internal::MutexLock lock(self.mail_mu);
        mine.insert(mine.end(), self.mail.begin(), self.mail.end());
        self.mail.clear();
      }
      for (const auto& f : mine) HandleFault(f, queue, outcome);
      worked = !mine.empty();
      std::uint64_t now = NowNs();
      while (!queue.empty() && queue.top().ready_ns <= now) {
        const Pending p = queue.top();
        queue.pop();
        Map(p.run, p.ready_ns);
        worked = true;
        now = NowNs();
      }
      if (worked) {
        busy_ns_.fetch_add(now - start, std::memory_order_relaxed);
        last_work = now;
        continue;
      }
      if (!queue.empty() && queue.top().ready_ns > now + kSleepAheadNs &&
          now - last_work >= kSpinAfterWorkNs) {
        Sleep(self, queue.top().ready_ns - kWakeEarlyNs - now);
        continue;
      }
      if (!queue.empty() || now - last_work < kSpinAfterWorkNs) {
        sched_yield();  // completions are due soon: poll, but let runnable threads run
        continue;
      }
      Sleep(self, 0);
      last_work = NowNs();
    }
  }

  // Sleeps until a fault arrives, mail is handed over, the device stops, or (timeout_ns > 0)
  // that long has passed.
  void Sleep(Handler& self, std::uint64_t timeout_ns) {
    self.asleep.store(true);
    bool has_mail;
    {
      internal::MutexLock lock(self.mail_mu);
      has_mail = !self.mail.empty();
    }
    if (!has_mail && !stopping_.load()) {
      pollfd fds[2] = {{uffd_.fd(), POLLIN, 0}, {self.wake.get(), POLLIN, 0}};
      timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000),
                  static_cast<long>(timeout_ns % 1'000'000'000)};
      if (ppoll(fds, 2, timeout_ns > 0 ? &ts : nullptr, nullptr) < 0 && errno != EINTR) {
        Record(Status::FromErrno("ppoll", errno));
      }
      if (fds[1].revents & POLLIN) {
        std::uint64_t v;
        if (read(self.wake.get(), &v, sizeof(v)) < 0 && errno != EAGAIN) {
          Record(Status::FromErrno("eventfd read", errno));
        }
      }
    }
    self.asleep.store(false);
  }

  const CxlSsdOptions options_;
  mutable internal::Mutex model_mu_;
  CxlSsdModel model_ GUARDED_BY(model_mu_);
  UniqueFd memfd_;
  os::AnonymousMapping mapping_;
  os::Userfaultfd uffd_;
  const std::uintptr_t base_;
  std::vector<Handler> handlers_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> timing_{true};
  std::atomic<bool> claimed_{false};
  std::atomic<unsigned> dilation_{1};
  std::atomic<std::uint64_t> forwarded_{0}, unmap_calls_{0}, late_ns_{0}, mappings_{0},
      busy_ns_{0};
  std::uint64_t stats_start_ns_ GUARDED_BY(model_mu_) = 0;
  mutable internal::Mutex error_mu_;
  Status first_error_ GUARDED_BY(error_mu_);
};

namespace {

Status Validate(const CxlSsdOptions& o) {
  if (o.page_size != 4096 && o.page_size != 16384) {
    return Status::InvalidArgument("emulated CXL-SSD page size must be 4 KiB or 16 KiB, not " +
                                   FormatBytes(o.page_size));
  }
  if (o.capacity == 0 || o.capacity % o.page_size != 0) {
    return Status::InvalidArgument("emulated CXL-SSD capacity " + FormatBytes(o.capacity) +
                                   " is not a positive multiple of its page size " +
                                   FormatBytes(o.page_size));
  }
  if (o.cache_bytes < o.page_size) {
    return Status::InvalidArgument("emulated CXL-SSD cache of " + FormatBytes(o.cache_bytes) +
                                   " holds no page of " + FormatBytes(o.page_size));
  }
  if (o.channels == 0 || o.dies_per_channel == 0) {
    return Status::InvalidArgument("emulated CXL-SSD needs at least one channel and one die");
  }
  if (o.read_latency.count() < 0 || o.program_latency.count() < 0) {
    return Status::InvalidArgument("emulated CXL-SSD latencies cannot be negative");
  }
  if (o.dilation == 0 || o.dilation > internal::kMaxDilation) {
    return Status::InvalidArgument("emulated CXL-SSD time dilation must be 1 to " +
                                   std::to_string(internal::kMaxDilation) + ", not " +
                                   std::to_string(o.dilation));
  }
  return Status::Ok();
}


}  // namespace

Result<std::shared_ptr<CxlSsd>> CxlSsd::Create(const CxlSsdOptions& options) {
  CXLKV_RETURN_IF_ERROR(Validate(options));
  internal::CxlSsdModelConfig config;
  config.pages = options.capacity / options.page_size;
  config.cache_pages = options.cache_bytes / options.page_size;
  config.dies = options.channels * options.dies_per_channel;
  config.read_ns = static_cast<std::uint64_t>(options.read_latency.count());
  config.program_ns = static_cast<std::uint64_t>(options.program_latency.count());
  CXLKV_ASSIGN_OR_RETURN(config.policy, internal::ParseDeviceCachePolicy(options.cache_policy));
  config.next_n = options.next_n;
  config.dilation = options.dilation;
  config.evict_batch = std::max(1u, options.evict_batch);
  config.observe_by_unmapping = true;
  CXLKV_ASSIGN_OR_RETURN(CxlSsdModel model, CxlSsdModel::Create(config));

  std::vector<int> cpus = options.handler_cpus.empty() ? AllowedCpus() : options.handler_cpus;
  if (cpus.empty()) cpus = {0};  // the kernel would not say: one handler
  for (int c : cpus) {
    if (c < 0 || c >= CPU_SETSIZE) {
      return Status::InvalidArgument("handler CPU " + std::to_string(c) + " does not exist");
    }
  }
  CXLKV_ASSIGN_OR_RETURN(os::Userfaultfd uffd, os::Userfaultfd::Open());
  CXLKV_ASSIGN_OR_RETURN(UniqueFd memfd,
                         os::CreateAllocatedMemfd("cxlkv-cxlssd", options.capacity));
  CXLKV_ASSIGN_OR_RETURN(os::AnonymousMapping mapping,
                         os::MapSharedFd(memfd.get(), options.capacity));
  // Every page starts in NAND: no page-table entry until a fault maps it.
  CXLKV_RETURN_IF_ERROR(os::DropMappedPages(mapping.data(), mapping.length()));
  CXLKV_RETURN_IF_ERROR(uffd.RegisterMinor(mapping.data(), mapping.length()));
  auto impl = std::make_unique<Impl>(options, std::move(model), std::move(memfd),
                                     std::move(mapping), std::move(uffd));
  CXLKV_RETURN_IF_ERROR(impl->Start(cpus));
  return std::shared_ptr<CxlSsd>(new CxlSsd(std::move(impl)));
}

CxlSsd::CxlSsd(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CxlSsd::~CxlSsd() = default;
std::byte* CxlSsd::data() const { return impl_->data(); }
std::size_t CxlSsd::size() const { return impl_->size(); }
const CxlSsdOptions& CxlSsd::options() const { return impl_->options(); }
void CxlSsd::SetTiming(bool on) { impl_->SetTiming(on); }
void CxlSsd::SetNextN(unsigned n) { impl_->SetNextN(n); }
void CxlSsd::SetLatencies(std::chrono::nanoseconds read, std::chrono::nanoseconds program) {
  impl_->SetLatencies(read, program);
}
Status CxlSsd::DropCache() { return impl_->DropCache(); }
void CxlSsd::ResetStats() { impl_->ResetStats(); }
CxlSsdStats CxlSsd::Stats() const { return impl_->Stats(); }
Status CxlSsd::health() const { return impl_->health(); }
double CxlSsd::NandReadBound() const { return impl_->NandReadBound(); }
Status CxlSsd::SetDilation(unsigned d) { return impl_->SetDilation(d); }
unsigned CxlSsd::dilation() const { return impl_->dilation(); }

// --- the device as a MemorySource ---

namespace {

// Claims the device for one region at a time: two tiers on the same bytes would overwrite
// each other's chunks.
struct Claim {
  std::function<bool()> take;
  std::function<void()> release;
};

class CxlSsdRegion final : public MemoryRegion {
 public:
  CxlSsdRegion(std::shared_ptr<CxlSsd> device, Claim claim, std::size_t size, RegionInfo info)
      : MemoryRegion(device->data(), size, std::move(info)),
        device_(std::move(device)),
        claim_(std::move(claim)) {}
  ~CxlSsdRegion() override { claim_.release(); }

 private:
  std::shared_ptr<CxlSsd> device_;
  Claim claim_;
};

class CxlSsdSource final : public MemorySource {
 public:
  CxlSsdSource(std::shared_ptr<CxlSsd> device, Claim claim)
      : device_(std::move(device)), claim_(std::move(claim)) {}

  Result<std::unique_ptr<MemoryRegion>> Map(std::size_t size, std::size_t alignment) override {
    if (size == 0) size = device_->size();
    if (size > device_->size()) {
      return Status::InvalidArgument("cannot map " + FormatBytes(size) +
                                     " of an emulated CXL-SSD of " +
                                     FormatBytes(device_->size()));
    }
    if (alignment != 0 && reinterpret_cast<std::uintptr_t>(device_->data()) % alignment != 0) {
      return Status::InvalidArgument("the emulated CXL-SSD mapping is not aligned to " +
                                     FormatBytes(alignment));
    }
    if (!claim_.take()) {
      return Status::Busy("the emulated CXL-SSD is mapped by another tier already");
    }
    RegionInfo info;
    info.kind = MemoryKind::kEmulatedCxlSsd;
    info.page_size = device_->options().page_size;
    info.persistence = PersistGranularity::kNone;
    return std::unique_ptr<MemoryRegion>(
        new CxlSsdRegion(device_, claim_, size, std::move(info)));
  }
  MemoryKind kind() const override { return MemoryKind::kEmulatedCxlSsd; }
  std::string spec() const override { return "cxlssd"; }

 private:
  std::shared_ptr<CxlSsd> device_;
  Claim claim_;
};

}  // namespace

std::unique_ptr<MemorySource> CxlSsd::Source(std::shared_ptr<CxlSsd> device) {
  Impl* impl = device->impl_.get();
  Claim claim{[impl] { return impl->Claim(); }, [impl] { impl->Release(); }};
  return std::make_unique<CxlSsdSource>(std::move(device), std::move(claim));
}

}  // namespace cxlkv
