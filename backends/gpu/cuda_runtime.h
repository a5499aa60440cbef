// The one place that talks to the CUDA runtime. Every call's return code is checked and turned
// into a Status whose message names the call, its arguments where they help, and the runtime's
// own words (cudaGetErrorName / cudaGetErrorString). Every resource is owned by an RAII type:
// a registration is unregistered, a buffer freed, an event or stream destroyed with its owner.
//
// Codes: no driver, no device or a driver too old for this runtime -> Unsupported; out of
// memory -> NoSpace; bad values -> InvalidArgument; a refused host registration ->
// Unsupported; everything else -> IOError.
//
// Thread-safety: the free functions are thread-safe (the runtime is). An RAII object is used
// by one thread at a time; it may be destroyed from any thread.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string_view>
#include <utility>

#include "cxlkv/status.h"

namespace cxlkv::internal::cuda {

// OK for cudaSuccess; otherwise a Status naming `call` and the error.
Status Check(cudaError_t err, std::string_view call);

// OK when the runtime finds a driver and at least one device; otherwise Unsupported with a
// one-line reason ("no CUDA device visible: cudaGetDeviceCount: ...").
Status DeviceVisible();
Result<int> CurrentDevice();
Status SetDevice(int device);

// A host range registered with cudaHostRegister (page-locked, mapped for DMA), unregistered by
// the destructor.
class HostRegistration {
 public:
  HostRegistration() = default;
  static Result<HostRegistration> Register(void* base, std::size_t size, unsigned flags);
  ~HostRegistration() { Reset(); }
  HostRegistration(HostRegistration&& o) noexcept
      : base_(std::exchange(o.base_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  HostRegistration& operator=(HostRegistration&& o) noexcept;
  void Reset();
  void* base() const { return base_; }
  std::size_t size() const { return size_; }

 private:
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

// Page-locked host memory from cudaHostAlloc.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static Result<PinnedBuffer> Allocate(std::size_t size);
  ~PinnedBuffer() { Reset(); }
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  void Reset();
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Device memory from cudaMalloc (tests and benchmarks).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Result<DeviceBuffer> Allocate(std::size_t size);
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  void Reset();
  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// A cudaEvent_t without timing (cheapest to record and query), or with it (benchmarks).
class Event {
 public:
  Event() = default;
  static Result<Event> Create(bool timing = false);
  ~Event() { Reset(); }
  Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
  Event& operator=(Event&& o) noexcept;
  void Reset();
  cudaEvent_t get() const { return event_; }

  Status Record(cudaStream_t stream);
  // True when the work before the record is done, false while it runs; an error otherwise.
  Result<bool> Query() const;
  Status Synchronize() const;
  // Milliseconds between two timing events, both complete.
  static Result<float> ElapsedMs(const Event& start, const Event& stop);

 private:
  cudaEvent_t event_ = nullptr;
};

// A non-blocking stream (tests and benchmarks; the store's calls take the caller's stream).
class Stream {
 public:
  Stream() = default;
  static Result<Stream> Create();
  ~Stream() { Reset(); }
  Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept;
  void Reset();
  cudaStream_t get() const { return stream_; }
  Status Synchronize() const;

 private:
  cudaStream_t stream_ = nullptr;
};

// cudaMemcpyAsync with cudaMemcpyDefault (unified addressing tells the direction).
Status MemcpyAsync(void* dst, const void* src, std::size_t len, cudaStream_t stream);
// cudaMemcpy2DAsync: `rows` rows of `width` bytes, pitches in bytes.
Status Memcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                     std::size_t width, std::size_t rows, cudaStream_t stream);
Status StreamSynchronize(cudaStream_t stream);
Status Memset(void* dst, int value, std::size_t len);
Status Memcpy(void* dst, const void* src, std::size_t len);  // synchronous (tests)

}  // namespace cxlkv::internal::cuda
