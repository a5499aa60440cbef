// StagingPipeline: copies between host memory the GPU cannot DMA from (a region the driver
// refused to register) and device memory, through a few pinned buffers, so that the CPU copy
// of one piece overlaps the DMA of the previous one.
//
// To the device, piece k goes to buffer k mod n: wait until the DMA that last read that buffer
// is done, copy the piece in with the CPU, start its DMA, go on. With n = 2 the CPU fills one
// buffer while the copy engine drains the other, so a long run costs max(CPU, DMA) per piece,
// not their sum. From the device it is the mirror: DMAs into the first n buffers are started
// ahead, then each buffer in turn is waited for, copied out by the CPU and refilled.
//
// The pipeline knows nothing of CUDA: it drives a StagingEngine (the CUDA one in
// gpu_restore.cc; tests use a simulated one with a clock). A DMA must be issued in order on one
// queue (a CUDA stream) and Wait(b) returns once the last DMA issued on buffer b is complete.
//
// Thread-safety: a pipeline (and its engine) is used by one thread at a time.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::internal {

class StagingEngine {
 public:
  virtual ~StagingEngine() = default;
  // Blocks until the DMA last issued on `buffer` is complete (at once when there is none).
  virtual Status Wait(unsigned buffer) = 0;
  // CPU copies between host memory and the first len bytes of a buffer.
  virtual Status HostToBuffer(unsigned buffer, const std::byte* src, std::size_t len) = 0;
  virtual Status BufferToHost(unsigned buffer, std::byte* dst, std::size_t len) = 0;
  // Asynchronous DMAs between a buffer and device memory, issued in order.
  virtual Status BufferToDevice(unsigned buffer, std::byte* dst, std::size_t len) = 0;
  virtual Status DeviceToBuffer(unsigned buffer, const std::byte* src, std::size_t len) = 0;
};

// One copy: host to device for ToDevice, device to host for FromDevice.
struct StagedRange {
  const std::byte* src = nullptr;
  std::byte* dst = nullptr;
  std::size_t len = 0;
};

class StagingPipeline {
 public:
  // buffers >= 1 buffers of buffer_bytes > 0 each, owned by the engine.
  StagingPipeline(StagingEngine& engine, std::size_t buffer_bytes, unsigned buffers);

  std::size_t buffer_bytes() const { return buffer_bytes_; }
  unsigned buffers() const { return static_cast<unsigned>(busy_.size()); }

  // Issues the copy of one range to the device, piece by piece. Returns once the last piece's
  // DMA is issued; it may still be running (a later Wait, or an event recorded on the DMA
  // queue after it, sees it complete). Buffers stay in rotation across calls, so the CPU copy
  // of the next range overlaps the DMA of this one.
  Status ToDevice(const StagedRange& range);

  // Copies ranges from the device into host memory, overlapping the DMA of the next piece
  // with the CPU copy-out of the current one. Returns once every byte is in host memory;
  // range_done(i) is called as soon as range i is complete.
  Status FromDevice(std::span<const StagedRange> ranges,
                    const std::function<void(std::size_t)>& range_done);

  // Waits for every DMA in flight; afterwards the engine's buffers are idle.
  Status Drain();

 private:
  StagingEngine& engine_;
  std::size_t buffer_bytes_;
  unsigned next_ = 0;        // the buffer the next piece takes
  std::vector<bool> busy_;   // a DMA was issued on the buffer since its last Wait
};

}  // namespace cxlkv::internal
