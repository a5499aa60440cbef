#include "backends/gpu/cuda_runtime.h"

#include <cstdio>
#include <string>

#include "util/format.h"
#include "util/log.h"

namespace cxlkv::internal::cuda {

namespace {

StatusCode CodeOf(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNotSupported:
    case cudaErrorCallRequiresNewerDriver:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorInitializationError:
      return StatusCode::kUnsupported;
    case cudaErrorMemoryAllocation:
      return StatusCode::kNoSpace;
    case cudaErrorInvalidValue:
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidDevicePointer:
    case cudaErrorInvalidMemcpyDirection:
    case cudaErrorInvalidPitchValue:
      return StatusCode::kInvalidArgument;
    default:
      return StatusCode::kIOError;
  }
}

std::string Describe(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + " (" + std::to_string(static_cast<int>(err)) +
         "): " + cudaGetErrorString(err);
}

std::string Ptr(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

}  // namespace

Status Check(cudaError_t err, std::string_view call) {
  if (err == cudaSuccess) return Status::Ok();
  // Clear the runtime's last-error slot (non-sticky errors), so that a failure handled here
  // is not reported again to whoever checks cudaGetLastError after their own kernel.
  (void)cudaGetLastError();
  return Status(CodeOf(err), std::string(call) + ": " + Describe(err));
}

Status DeviceVisible() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return Status::Unsupported("no CUDA device visible: cudaGetDeviceCount: " + Describe(err));
  }
  if (count == 0) return Status::Unsupported("no CUDA device visible: cudaGetDeviceCount = 0");
  return Status::Ok();
}

Result<int> CurrentDevice() {
  int device = -1;
  CXLKV_RETURN_IF_ERROR(Check(cudaGetDevice(&device), "cudaGetDevice"));
  return device;
}

Status SetDevice(int device) {
  return Check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
}

// --- HostRegistration ---

Result<HostRegistration> HostRegistration::Register(void* base, std::size_t size,
                                                    unsigned flags) {
  const cudaError_t err = cudaHostRegister(base, size, flags);
  if (err != cudaSuccess) {
    Status s = Check(err, "cudaHostRegister(" + Ptr(base) + ", " + FormatBytes(size) + ")");
    // Whatever the driver's reason, the caller's answer is the same: stage this range.
    if (!s.IsNoSpace()) s = Status::Unsupported(s.message());
    return s;
  }
  HostRegistration r;
  r.base_ = base;
  r.size_ = size;
  return r;
}

HostRegistration& HostRegistration::operator=(HostRegistration&& o) noexcept {
  if (this != &o) {
    Reset();
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void HostRegistration::Reset() {
  if (base_ == nullptr) return;
  const Status s = Check(cudaHostUnregister(base_), "cudaHostUnregister(" + Ptr(base_) + ")");
  if (!s.ok()) internal::LogF("cxlkv: %s", s.ToString().c_str());  // nothing else to do
  base_ = nullptr;
  size_ = 0;
}

// --- PinnedBuffer ---

Result<PinnedBuffer> PinnedBuffer::Allocate(std::size_t size) {
  void* p = nullptr;
  CXLKV_RETURN_IF_ERROR(Check(cudaHostAlloc(&p, size, cudaHostAllocPortable),
                              "cudaHostAlloc(" + FormatBytes(size) + ")"));
  PinnedBuffer b;
  b.data_ = static_cast<std::byte*>(p);
  b.size_ = size;
  return b;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    Reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void PinnedBuffer::Reset() {
  if (data_ == nullptr) return;
  const Status s = Check(cudaFreeHost(data_), "cudaFreeHost");
  if (!s.ok()) internal::LogF("cxlkv: %s", s.ToString().c_str());
  data_ = nullptr;
  size_ = 0;
}

// --- DeviceBuffer ---

Result<DeviceBuffer> DeviceBuffer::Allocate(std::size_t size) {
  void* p = nullptr;
  CXLKV_RETURN_IF_ERROR(Check(cudaMalloc(&p, size), "cudaMalloc(" + FormatBytes(size) + ")"));
  DeviceBuffer b;
  b.data_ = static_cast<std::byte*>(p);
  b.size_ = size;
  return b;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    Reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void DeviceBuffer::Reset() {
  if (data_ == nullptr) return;
  const Status s = Check(cudaFree(data_), "cudaFree");
  if (!s.ok()) internal::LogF("cxlkv: %s", s.ToString().c_str());
  data_ = nullptr;
  size_ = 0;
}

// --- Event ---

Result<Event> Event::Create(bool timing) {
  cudaEvent_t e = nullptr;
  CXLKV_RETURN_IF_ERROR(
      Check(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming),
            "cudaEventCreateWithFlags"));
  Event ev;
  ev.event_ = e;
  return ev;
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    Reset();
    event_ = std::exchange(o.event_, nullptr);
  }
  return *this;
}

void Event::Reset() {
  if (event_ == nullptr) return;
  const Status s = Check(cudaEventDestroy(event_), "cudaEventDestroy");
  if (!s.ok()) internal::LogF("cxlkv: %s", s.ToString().c_str());
  event_ = nullptr;
}

Status Event::Record(cudaStream_t stream) {
  return Check(cudaEventRecord(event_, stream), "cudaEventRecord");
}

Result<bool> Event::Query() const {
  const cudaError_t err = cudaEventQuery(event_);
  if (err == cudaSuccess) return true;
  if (err == cudaErrorNotReady) return false;
  return Check(err, "cudaEventQuery");
}

Status Event::Synchronize() const {
  return Check(cudaEventSynchronize(event_), "cudaEventSynchronize");
}

Result<float> Event::ElapsedMs(const Event& start, const Event& stop) {
  float ms = 0;
  CXLKV_RETURN_IF_ERROR(
      Check(cudaEventElapsedTime(&ms, start.event_, stop.event_), "cudaEventElapsedTime"));
  return ms;
}

// --- Stream ---

Result<Stream> Stream::Create() {
  cudaStream_t s = nullptr;
  CXLKV_RETURN_IF_ERROR(
      Check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"));
  Stream st;
  st.stream_ = s;
  return st;
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    Reset();
    stream_ = std::exchange(o.stream_, nullptr);
  }
  return *this;
}

void Stream::Reset() {
  if (stream_ == nullptr) return;
  const Status s = Check(cudaStreamDestroy(stream_), "cudaStreamDestroy");
  if (!s.ok()) internal::LogF("cxlkv: %s", s.ToString().c_str());
  stream_ = nullptr;
}

Status Stream::Synchronize() const {
  return Check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

// --- copies ---

Status MemcpyAsync(void* dst, const void* src, std::size_t len, cudaStream_t stream) {
  // The message is built only on failure: this is the hot path.
  const cudaError_t err = cudaMemcpyAsync(dst, src, len, cudaMemcpyDefault, stream);
  if (err == cudaSuccess) return Status::Ok();
  return Check(err, "cudaMemcpyAsync(" + Ptr(dst) + " <- " + Ptr(src) + ", " +
                        FormatBytes(len) + ")");
}

Status Memcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                     std::size_t width, std::size_t rows, cudaStream_t stream) {
  const cudaError_t err =
      cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDefault, stream);
  if (err == cudaSuccess) return Status::Ok();
  return Check(err, "cudaMemcpy2DAsync(" + std::to_string(rows) + " rows of " + FormatBytes(width) +
                   ", pitches " + std::to_string(dpitch) + "/" + std::to_string(spitch) + ")");
}

Status StreamSynchronize(cudaStream_t stream) {
  return Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
}

Status Memset(void* dst, int value, std::size_t len) {
  return Check(cudaMemset(dst, value, len), "cudaMemset(" + FormatBytes(len) + ")");
}

Status Memcpy(void* dst, const void* src, std::size_t len) {
  return Check(cudaMemcpy(dst, src, len, cudaMemcpyDefault),
               "cudaMemcpy(" + FormatBytes(len) + ")");
}

}  // namespace cxlkv::internal::cuda
