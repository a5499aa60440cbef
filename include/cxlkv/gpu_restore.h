// GpuRestorer: the last step of a cache hit, host to GPU, straight from the store's tiers; and
// the reverse, GPU to store, when an engine stores its KV cache.
//
// At creation the mapped region of every memory tier (DRAM slabs, NUMA-node pools, devdax and
// file mappings) is registered with cudaHostRegister, in pieces of at most
// registration_piece bytes (recent drivers refuse very large single registrations). The GPU's
// copy engines then DMA from a chunk's slot in place: a restore is one cudaMemcpyAsync per
// chunk (split where the chunk crosses a registration piece), with no CPU copy. Where the
// driver refuses a piece (file-backed or userfaultfd-backed memory on some systems), that
// range is staged instead through a few pinned buffers: the CPU copy of the next piece overlaps
// the DMA of the previous one. Tiers of the emulated CXL-SSD (userfaultfd) are always staged:
// pinning would fault every page in and defeat the device model.
//
// Leases. GetToDevice pins every chunk (Store::Pin) before its first copy and records a CUDA
// event after each chunk's copy; the pin is released when the transfer sees that event
// complete (Poll, Wait, or the transfer's destructor), so a chunk is never evicted, moved or
// freed while the GPU reads it. PutFromDevice reserves a slot per chunk (Store::Reserve),
// DMAs into it and commits it once its copy is complete: a chunk is visible only whole.
//
// Paged layouts. A request with layers > 0 treats its chunk as `layers` equal parts, layer
// after layer, and copies part l to (or from) device address dst + l * layer_stride: one
// cudaMemcpy2DAsync scatters a layer-major chunk into per-layer pages.
//
// Lifetimes: the Store must outlive the GpuRestorer, and the GpuRestorer every GpuTransfer it
// returned (its registrations are dropped by its destructor).
//
// Thread-safety: GpuRestorer's member functions are thread-safe (staged copies take turns on
// the staging buffers). A GpuTransfer is used by one thread at a time; move it freely. Call
// them from threads whose current CUDA device is the one the restorer was created on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cxlkv/status.h"
#include "cxlkv/store.h"

// The CUDA runtime's opaque handle types (cudaStream_t is CUstream_st*), declared here so that
// this header does not need cuda_runtime.h.
struct CUstream_st;
struct CUevent_st;

namespace cxlkv {

// OK when this build has CUDA and the runtime sees at least one device; otherwise Unsupported
// with a one-line reason ("no CUDA device visible: ...", "built without CUDA").
Status CudaDeviceVisible();

struct GpuRestoreOptions {
  // Register the tiers' regions; false stages every copy through pinned buffers.
  bool register_tiers = true;
  // Tiers (indices into StoreOptions::tiers) never registered, always staged.
  std::vector<std::size_t> staged_tiers;
  // The largest single cudaHostRegister; a multiple of the page size (rounded down).
  std::size_t registration_piece = std::size_t{1} << 30;
  // Pinned staging buffers for ranges that are not registered: count (>= 2 to overlap the CPU
  // copy with the DMA) and size of each.
  unsigned staging_buffers = 2;
  std::size_t staging_buffer_bytes = std::size_t{4} << 20;
  // Announce a restore's chunks to the store's prefetcher (StoreOptions::prefetch), so that
  // pages in a slow tier are brought in while earlier chunks copy. No effect without one.
  bool prefetch = true;
};

// One chunk to copy from the store to device memory.
struct DeviceGet {
  std::string_view key;
  void* dst = nullptr;        // device address (or any address cudaMemcpyAsync takes)
  std::size_t capacity = 0;   // bytes writable at dst
  std::size_t layers = 0;     // > 0: scatter the chunk's equal parts to dst + l * layer_stride
  std::size_t layer_stride = 0;
};

// One chunk to copy from device memory into the store (write once, as Store::Put).
struct DevicePut {
  std::string_view key;
  const void* src = nullptr;  // device address
  std::size_t size = 0;       // chunk bytes
  ChunkMeta meta{};
  std::size_t layers = 0;     // > 0: gather the chunk's parts from src + l * layer_stride
  std::size_t layer_stride = 0;
};

// How one tier's region was registered.
struct GpuRegion {
  std::size_t tier = 0;
  std::string kind;                 // MemoryKindName of the region
  std::size_t bytes = 0;
  std::size_t pieces = 0;           // registrations planned
  std::size_t registered_pieces = 0;
  std::size_t registered_bytes = 0;
  std::string note;                 // why (part of) the region is staged; empty when it is not
};

class GpuRestorer;

// The copies of one GetToDevice or PutFromDevice, issued on the caller's stream. Move-only;
// the destructor waits for what is still in flight.
class GpuTransfer {
 public:
  GpuTransfer();
  ~GpuTransfer();
  GpuTransfer(GpuTransfer&& other) noexcept;
  GpuTransfer& operator=(GpuTransfer&& other) noexcept;
  GpuTransfer(const GpuTransfer&) = delete;
  GpuTransfer& operator=(const GpuTransfer&) = delete;

  std::size_t size() const;              // chunks, in request order
  // Bytes of chunk i: its size; for a put of a key already stored, 0 (nothing was copied).
  std::size_t bytes(std::size_t i) const;
  // An event recorded on the stream after chunk i's copy (cudaStreamWaitEvent on it lets a
  // kernel start on chunk i while later chunks still copy); null once the chunk is finished
  // or when nothing was copied.
  CUevent_st* event(std::size_t i) const;
  bool finished(std::size_t i) const;    // complete, lease released / chunk committed
  std::size_t staged_bytes() const;      // bytes that went through the staging buffers

  // Finishes every chunk whose copy is complete: releases its lease (get) or commits it
  // (put). True when every chunk is finished. An error (a failed CUDA call, a failed commit)
  // is kept and returned here and by Wait.
  Result<bool> Poll();
  // Blocks until every copy is complete and finishes every chunk; the first error, if any.
  Status Wait();

 private:
  friend class GpuRestorer;
  struct State;
  std::unique_ptr<State> state_;
};

class GpuRestorer {
 public:
  // Registers the store's tiers (see above). Unsupported when no CUDA device is visible;
  // InvalidArgument for bad options. A refused registration is not an error: the range is
  // staged and regions() says why.
  static Result<std::unique_ptr<GpuRestorer>> Create(Store& store, GpuRestoreOptions options = {});
  ~GpuRestorer();
  GpuRestorer(const GpuRestorer&) = delete;
  GpuRestorer& operator=(const GpuRestorer&) = delete;

  // Copies chunks to the device on `stream`, in request order. Every key is looked up and
  // pinned before any copy: NotFound (naming the key) when one is absent, InvalidArgument for
  // an empty request list, a null destination, a chunk larger than its capacity or not
  // divisible into its layers; nothing is copied then. Returns when every copy is issued
  // (staged ranges have been copied into the staging buffers; their last DMAs may run on).
  // A staged range waits, on the host, for the DMA that last used its buffer: it blocks while
  // earlier work holds the stream. Chunks in the spill tier are read back into the first
  // memory tier by the pin, one after the other, before any copy starts.
  Result<GpuTransfer> GetToDevice(std::span<const DeviceGet> gets, CUstream_st* stream);
  Result<GpuTransfer> GetToDevice(std::string_view key, void* dst, std::size_t capacity,
                                  CUstream_st* stream);

  // Copies chunks from the device into the store on `stream` (after the work already queued
  // on it). Every chunk's slot is reserved first: InvalidArgument for an empty list, a null
  // source, a zero size, bad layers; the store's Reserve errors (NoSpace, Busy) as they come;
  // nothing is copied then. Keys already stored are skipped (bytes(i) == 0). Each chunk
  // becomes visible when the transfer finishes it.
  Result<GpuTransfer> PutFromDevice(std::span<const DevicePut> puts, CUstream_st* stream);

  const std::vector<GpuRegion>& regions() const;

  struct Impl;

 private:
  explicit GpuRestorer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cxlkv
