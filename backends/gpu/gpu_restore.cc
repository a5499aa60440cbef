// GpuRestorer: registration of the tiers, GetToDevice and PutFromDevice over the CUDA runtime
// (through backends/gpu/cuda_runtime.h only). See include/cxlkv/gpu_restore.h.
#include "cxlkv/gpu_restore.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "backends/gpu/cuda_runtime.h"
#include "backends/gpu/host_ranges.h"
#include "backends/gpu/requests.h"
#include "backends/gpu/staging.h"
#include "backends/store_internals.h"
#include "util/format.h"
#include "util/log.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace cxlkv {

namespace cuda = internal::cuda;
using internal::DeviceLayout;
using internal::HostSegment;
using internal::StagedRange;

Status CudaDeviceVisible() { return cuda::DeviceVisible(); }

namespace {

// The staging buffers behind a StagingPipeline: one pinned buffer and one event per buffer,
// DMAs on the stream of the call in progress.
class CudaStagingEngine : public internal::StagingEngine {
 public:
  static Result<std::unique_ptr<CudaStagingEngine>> Create(unsigned buffers, std::size_t bytes) {
    auto e = std::unique_ptr<CudaStagingEngine>(new CudaStagingEngine());
    for (unsigned i = 0; i < buffers; ++i) {
      CXLKV_ASSIGN_OR_RETURN(cuda::PinnedBuffer b, cuda::PinnedBuffer::Allocate(bytes));
      CXLKV_ASSIGN_OR_RETURN(cuda::Event ev, cuda::Event::Create());
      e->buffers_.push_back(std::move(b));
      e->events_.push_back(std::move(ev));
    }
    return e;
  }
  void set_stream(cudaStream_t s) { stream_ = s; }

  Status Wait(unsigned b) override { return events_[b].Synchronize(); }
  Status HostToBuffer(unsigned b, const std::byte* src, std::size_t len) override {
    std::memcpy(buffers_[b].data(), src, len);
    return Status::Ok();
  }
  Status BufferToHost(unsigned b, std::byte* dst, std::size_t len) override {
    std::memcpy(dst, buffers_[b].data(), len);
    return Status::Ok();
  }
  Status BufferToDevice(unsigned b, std::byte* dst, std::size_t len) override {
    CXLKV_RETURN_IF_ERROR(cuda::MemcpyAsync(dst, buffers_[b].data(), len, stream_));
    return events_[b].Record(stream_);
  }
  Status DeviceToBuffer(unsigned b, const std::byte* src, std::size_t len) override {
    CXLKV_RETURN_IF_ERROR(cuda::MemcpyAsync(buffers_[b].data(), src, len, stream_));
    return events_[b].Record(stream_);
  }

 private:
  CudaStagingEngine() = default;
  std::vector<cuda::PinnedBuffer> buffers_;
  std::vector<cuda::Event> events_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

struct GpuRestorer::Impl {
  Store* store = nullptr;
  GpuRestoreOptions options;
  int device = 0;
  std::vector<GpuRegion> regions;
  std::vector<cuda::HostRegistration> registrations;
  internal::HostRangeMap ranges;  // every tier piece, registered or not; fixed after Create

  // The engine and the pipeline: set once by Create, used under staging_mu.
  internal::Mutex staging_mu;
  std::unique_ptr<CudaStagingEngine> staging_engine PT_GUARDED_BY(staging_mu);
  std::unique_ptr<internal::StagingPipeline> staging PT_GUARDED_BY(staging_mu);

  internal::Mutex events_mu;
  std::vector<cuda::Event> free_events GUARDED_BY(events_mu);

  Result<cuda::Event> TakeEvent() {
    {
      internal::MutexLock lock(events_mu);
      if (!free_events.empty()) {
        cuda::Event e = std::move(free_events.back());
        free_events.pop_back();
        return e;
      }
    }
    return cuda::Event::Create();
  }
  void ReturnEvent(cuda::Event e) {
    if (e.get() == nullptr) return;
    internal::MutexLock lock(events_mu);
    free_events.push_back(std::move(e));
  }

  Status RegisterTiers();
  // Copies len bytes between host range [host, host + len) of the tiers and device address
  // `dev`, in place where registered and through the staging buffers elsewhere.
  // to_device: host -> device; else device -> host (only registered segments: the caller
  // collects the rest in `staged` for one pipelined pass). Counts staged bytes.
  Status CopyHostRange(std::byte* host, std::byte* dev, std::size_t len, bool to_device,
                       cudaStream_t stream, std::vector<StagedRange>* staged,
                       std::size_t* staged_bytes);
  // One chunk, both directions, with its device layout.
  Status CopyChunk(std::byte* host, std::size_t size, std::byte* dev, const DeviceLayout& l,
                   bool to_device, cudaStream_t stream, std::vector<StagedRange>* staged,
                   std::size_t* staged_bytes);
};

Status GpuRestorer::Impl::RegisterTiers() {
  const std::vector<const MemoryRegion*> tier_regions =
      internal::StoreInternals::TierRegions(*store);
  const long sys_page = sysconf(_SC_PAGESIZE);
  const std::size_t page = sys_page > 0 ? static_cast<std::size_t>(sys_page) : 4096;
  for (std::size_t t = 0; t < tier_regions.size(); ++t) {
    const MemoryRegion& region = *tier_regions[t];
    GpuRegion info;
    info.tier = t;
    info.kind = std::string(MemoryKindName(region.info().kind));
    info.bytes = region.size();
    CXLKV_ASSIGN_OR_RETURN(std::vector<internal::HostPiece> pieces,
                           internal::PlanRegistration(region.data(), region.size(),
                                                      options.registration_piece, page));
    info.pieces = pieces.size();
    std::optional<std::string> skip;
    if (!options.register_tiers) {
      skip = "registration turned off (GpuRestoreOptions::register_tiers)";
    } else if (std::find(options.staged_tiers.begin(), options.staged_tiers.end(), t) !=
               options.staged_tiers.end()) {
      skip = "staged by request (GpuRestoreOptions::staged_tiers)";
    } else if (region.info().kind == MemoryKind::kEmulatedCxlSsd) {
      // Pinning faults every page in through the userfaultfd handler and keeps it resident,
      // which turns the emulated device into DRAM.
      skip = "userfaultfd-backed (emulated CXL-SSD): not pinned";
    }
    for (const internal::HostPiece& piece : pieces) {
      if (skip) {
        ranges.Add(piece, false);
        continue;
      }
      Result<cuda::HostRegistration> reg =
          cuda::HostRegistration::Register(piece.base, piece.size, cudaHostRegisterPortable);
      if (!reg.ok()) {
        // One refusal stands for the region (the same kind of memory, the same driver): its
        // remaining pieces are staged without asking again.
        skip = "registration refused, staged: " + reg.status().ToString();
        ranges.Add(piece, false);
        continue;
      }
      ranges.Add(piece, true);
      registrations.push_back(std::move(reg).value());
      ++info.registered_pieces;
      info.registered_bytes += piece.size;
    }
    if (skip) info.note = *skip;
    regions.push_back(std::move(info));
  }
  ranges.Finish();
  return Status::Ok();
}

Status GpuRestorer::Impl::CopyHostRange(std::byte* host, std::byte* dev, std::size_t len,
                                        bool to_device, cudaStream_t stream,
                                        std::vector<StagedRange>* staged,
                                        std::size_t* staged_bytes) {
  for (const HostSegment& seg : ranges.Split(host, len)) {
    std::byte* h = host + seg.offset;
    std::byte* d = dev + seg.offset;
    if (seg.registered) {
      CXLKV_RETURN_IF_ERROR(to_device ? cuda::MemcpyAsync(d, h, seg.length, stream)
                                      : cuda::MemcpyAsync(h, d, seg.length, stream));
      continue;
    }
    *staged_bytes += seg.length;
    if (!to_device) {
      staged->push_back({d, h, seg.length});
      continue;
    }
    internal::MutexLock lock(staging_mu);
    staging_engine->set_stream(stream);
    CXLKV_RETURN_IF_ERROR(staging->ToDevice({h, d, seg.length}));
  }
  return Status::Ok();
}

Status GpuRestorer::Impl::CopyChunk(std::byte* host, std::size_t size, std::byte* dev,
                                    const DeviceLayout& l, bool to_device, cudaStream_t stream,
                                    std::vector<StagedRange>* staged,
                                    std::size_t* staged_bytes) {
  if (l.parts == 1) return CopyHostRange(host, dev, size, to_device, stream, staged, staged_bytes);
  const std::vector<HostSegment> segs = ranges.Split(host, size);
  if (segs.size() == 1 && segs[0].registered) {
    // The whole chunk is in one registration: one 2D copy scatters (or gathers) the layers.
    return to_device ? cuda::Memcpy2DAsync(dev, l.stride, host, l.part_bytes, l.part_bytes,
                                           l.parts, stream)
                     : cuda::Memcpy2DAsync(host, l.part_bytes, dev, l.stride, l.part_bytes,
                                           l.parts, stream);
  }
  for (std::size_t p = 0; p < l.parts; ++p) {
    CXLKV_RETURN_IF_ERROR(CopyHostRange(host + p * l.part_bytes, dev + p * l.stride, l.part_bytes,
                                        to_device, stream, staged, staged_bytes));
  }
  return Status::Ok();
}

// --- GpuTransfer ---

struct GpuTransfer::State {
  GpuRestorer::Impl* owner = nullptr;
  std::vector<PinnedChunk> pins;            // gets: one lease per chunk
  std::vector<ReservedChunk> reservations;  // puts: one slot per chunk
  std::vector<cuda::Event> events;          // per chunk; empty (null) when nothing to wait for
  std::vector<std::size_t> bytes;
  std::vector<bool> finished;
  std::size_t first_unfinished = 0;
  std::size_t staged_bytes = 0;
  Status error;

  void Finish(std::size_t i) {
    if (!pins.empty()) pins[i].Release();
    if (!reservations.empty()) {
      Status s = reservations[i].Commit();
      if (!s.ok() && error.ok()) error = s;
    }
    owner->ReturnEvent(std::move(events[i]));
    finished[i] = true;
  }
  // Finishes chunks in order while their events are complete (or, with `block`, waits).
  void Advance(bool block) {
    while (first_unfinished < finished.size()) {
      const std::size_t i = first_unfinished;
      if (events[i].get() != nullptr) {
        if (block) {
          Status s = events[i].Synchronize();
          if (!s.ok() && error.ok()) error = s;
        } else {
          Result<bool> done = events[i].Query();
          if (!done.ok()) {
            if (error.ok()) error = done.status();
            return;
          }
          if (!*done) return;
        }
      }
      Finish(i);
      ++first_unfinished;
    }
  }
};

GpuTransfer::GpuTransfer() = default;
GpuTransfer::~GpuTransfer() {
  if (state_) {
    const Status s = Wait();
    if (!s.ok()) internal::LogF("cxlkv: GPU transfer: %s", s.ToString().c_str());
  }
}
GpuTransfer::GpuTransfer(GpuTransfer&& other) noexcept = default;
GpuTransfer& GpuTransfer::operator=(GpuTransfer&& other) noexcept {
  if (this != &other) {
    if (state_) (void)Wait();
    state_ = std::move(other.state_);
  }
  return *this;
}

std::size_t GpuTransfer::size() const { return state_ ? state_->bytes.size() : 0; }
std::size_t GpuTransfer::bytes(std::size_t i) const { return state_->bytes[i]; }
CUevent_st* GpuTransfer::event(std::size_t i) const { return state_->events[i].get(); }
bool GpuTransfer::finished(std::size_t i) const { return state_->finished[i]; }
std::size_t GpuTransfer::staged_bytes() const { return state_ ? state_->staged_bytes : 0; }

Result<bool> GpuTransfer::Poll() {
  if (!state_) return true;
  state_->Advance(false);
  if (!state_->error.ok()) return state_->error;
  return state_->first_unfinished == state_->finished.size();
}

Status GpuTransfer::Wait() {
  if (!state_) return Status::Ok();
  // After a failed query, blocking still finishes every chunk: leases must end.
  state_->Advance(true);
  return state_->error;
}

// --- GpuRestorer ---

GpuRestorer::GpuRestorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuRestorer::~GpuRestorer() {
  // The staging buffers may still be read by DMAs of transfers nobody waited for.
  internal::MutexLock lock(impl_->staging_mu);  // no other user is left: for the analysis
  if (impl_->staging) {
    const Status s = impl_->staging->Drain();
    if (!s.ok()) internal::LogF("cxlkv: GPU restorer: %s", s.ToString().c_str());
  }
}

const std::vector<GpuRegion>& GpuRestorer::regions() const { return impl_->regions; }

Result<std::unique_ptr<GpuRestorer>> GpuRestorer::Create(Store& store, GpuRestoreOptions options) {
  if (options.staging_buffers == 0) {
    return Status::InvalidArgument("GpuRestoreOptions::staging_buffers must be at least 1");
  }
  if (options.staging_buffer_bytes == 0) {
    return Status::InvalidArgument("GpuRestoreOptions::staging_buffer_bytes must be positive");
  }
  CXLKV_RETURN_IF_ERROR(cuda::DeviceVisible());
  auto impl = std::make_unique<Impl>();
  impl->store = &store;
  impl->options = std::move(options);
  CXLKV_ASSIGN_OR_RETURN(impl->device, cuda::CurrentDevice());
  CXLKV_ASSIGN_OR_RETURN(impl->staging_engine,
                         CudaStagingEngine::Create(impl->options.staging_buffers,
                                                   impl->options.staging_buffer_bytes));
  {
    internal::MutexLock lock(impl->staging_mu);  // not shared yet: for the analysis
    impl->staging = std::make_unique<internal::StagingPipeline>(
        *impl->staging_engine, impl->options.staging_buffer_bytes, impl->options.staging_buffers);
  }
  CXLKV_RETURN_IF_ERROR(impl->RegisterTiers());
  return std::unique_ptr<GpuRestorer>(new GpuRestorer(std::move(impl)));
}

Result<GpuTransfer> GpuRestorer::GetToDevice(std::string_view key, void* dst,
                                             std::size_t capacity, CUstream_st* stream) {
  const DeviceGet get{key, dst, capacity, 0, 0};
  return GetToDevice({&get, 1}, stream);
}

Result<GpuTransfer> GpuRestorer::GetToDevice(std::span<const DeviceGet> gets,
                                             CUstream_st* stream) {
  Impl& im = *impl_;
  // Everything that can fail without CUDA is checked (and every chunk pinned) first.
  CXLKV_ASSIGN_OR_RETURN(internal::PinnedGets pinned, internal::PinGets(*im.store, gets));
  auto state = std::make_unique<GpuTransfer::State>();
  state->owner = &im;
  const std::vector<DeviceLayout>& layouts = pinned.layouts;
  for (const PinnedChunk& p : pinned.pins) state->bytes.push_back(p.size());
  state->pins = std::move(pinned.pins);
  const std::size_t n = gets.size();
  state->finished.assign(n, false);
  state->events.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    CXLKV_ASSIGN_OR_RETURN(state->events[i], im.TakeEvent());
  }

  // Host prefetch: the chunks in copy order. DMA from a registered tier does not go through
  // the CPU, but staged ranges do, and a slow tier's pages come in while earlier chunks copy.
  std::shared_ptr<Prefetcher::Stream> prefetch;
  Prefetcher* prefetcher = internal::StoreInternals::StorePrefetcher(*im.store);
  if (im.options.prefetch && prefetcher != nullptr && n > 1) {
    std::vector<std::span<const std::byte>> announced;
    for (const PinnedChunk& p : state->pins) announced.emplace_back(p.data(), p.size());
    prefetch = prefetcher->Announce(announced);
  }

  Status issued;
  for (std::size_t i = 0; i < n && issued.ok(); ++i) {
    if (prefetch) prefetch->Started(i);
    // The lease keeps the slot; the bytes are only read (const_cast for the shared helper).
    auto* host = const_cast<std::byte*>(state->pins[i].data());
    issued = im.CopyChunk(host, state->bytes[i], static_cast<std::byte*>(gets[i].dst), layouts[i],
                          /*to_device=*/true, stream, nullptr, &state->staged_bytes);
    if (issued.ok()) issued = state->events[i].Record(stream);
  }
  if (prefetch) prefetch->Finish();
  if (!issued.ok()) {
    // Copies already issued still read their chunks: the leases end (with `state`) only after
    // the stream's work is done.
    const Status s = cuda::StreamSynchronize(stream);
    if (!s.ok()) internal::LogF("cxlkv: GetToDevice cleanup: %s", s.ToString().c_str());
    return issued;
  }
  GpuTransfer t;
  t.state_ = std::move(state);
  return t;
}

Result<GpuTransfer> GpuRestorer::PutFromDevice(std::span<const DevicePut> puts,
                                               CUstream_st* stream) {
  Impl& im = *impl_;
  // Everything that can fail without CUDA is checked (and every slot reserved) first.
  CXLKV_ASSIGN_OR_RETURN(internal::ReservedPuts reserved, internal::ReservePuts(*im.store, puts));
  auto state = std::make_unique<GpuTransfer::State>();
  state->owner = &im;
  const std::vector<DeviceLayout>& layouts = reserved.layouts;
  for (std::size_t i = 0; i < puts.size(); ++i) {
    state->bytes.push_back(reserved.slots[i].already_stored() ? 0 : puts[i].size);
  }
  state->reservations = std::move(reserved.slots);
  const std::size_t n = puts.size();
  state->finished.assign(n, false);
  state->events.resize(n);

  // Registered slots take their DMA now, an event after each chunk; staged ranges are
  // collected and copied in one pipelined pass below.
  std::vector<StagedRange> staged;
  Status issued;
  for (std::size_t i = 0; i < n && issued.ok(); ++i) {
    if (state->bytes[i] == 0) continue;
    std::byte* slot = state->reservations[i].data();
    auto* dev = static_cast<std::byte*>(const_cast<void*>(puts[i].src));
    issued = im.CopyChunk(slot, puts[i].size, dev, layouts[i], /*to_device=*/false, stream,
                          &staged, &state->staged_bytes);
    if (!issued.ok()) break;
    // Recorded after the chunk's direct DMAs. Its staged ranges, if any, are complete before
    // this call returns (FromDevice below), so the event covers the whole chunk by then.
    Result<cuda::Event> ev = im.TakeEvent();
    if (!ev.ok()) {
      issued = ev.status();
      break;
    }
    state->events[i] = std::move(ev).value();
    issued = state->events[i].Record(stream);
  }
  if (issued.ok() && !staged.empty()) {
    internal::MutexLock lock(im.staging_mu);
    im.staging_engine->set_stream(stream);
    issued = im.staging->FromDevice(staged, nullptr);
  }
  if (!issued.ok()) {
    // Every reservation is aborted (with `state`: nothing half-written is published), but only
    // once the stream's copies into the slots are done.
    const Status s = cuda::StreamSynchronize(stream);
    if (!s.ok()) internal::LogF("cxlkv: PutFromDevice cleanup: %s", s.ToString().c_str());
    return issued;
  }
  GpuTransfer t;
  t.state_ = std::move(state);
  return t;
}

}  // namespace cxlkv
