// The checks GpuRestorer makes before any CUDA call, apart so that they are tested without a
// GPU: request validation, the device-side layout of a chunk, and pinning (gets) or
// reserving (puts) every chunk of a request list, all or nothing.
//
// Thread-safety: pure functions over a thread-safe Store.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "cxlkv/gpu_restore.h"
#include "cxlkv/status.h"
#include "cxlkv/store.h"

namespace cxlkv::internal {

// A chunk's device side: `parts` parts of part_bytes each, part l at base + l * stride (one
// part, stride 0, for a request without layers).
struct DeviceLayout {
  std::size_t parts = 1;
  std::size_t part_bytes = 0;
  std::size_t stride = 0;
  std::size_t span() const { return (parts - 1) * stride + part_bytes; }  // bytes touched
};

// InvalidArgument (naming the key) when size does not divide into `layers` parts, or when the
// stride is shorter than a part (the layers would overlap).
Result<DeviceLayout> LayoutOf(std::size_t size, std::size_t layers, std::size_t stride,
                              std::string_view key);

struct PinnedGets {
  std::vector<PinnedChunk> pins;
  std::vector<DeviceLayout> layouts;
};
// Pins every chunk, in order. InvalidArgument for no request, a null destination, a chunk
// that does not fit its capacity or layers; NotFound for an absent key. On error no lease is
// kept.
Result<PinnedGets> PinGets(Store& store, std::span<const DeviceGet> gets);

struct ReservedPuts {
  std::vector<ReservedChunk> slots;  // already_stored() for keys stored before
  std::vector<DeviceLayout> layouts;
};
// Checks every request (InvalidArgument for no request, a null source, size 0, bad layers),
// then reserves a slot per chunk (Store::Reserve's errors). On error nothing stays reserved.
Result<ReservedPuts> ReservePuts(Store& store, std::span<const DevicePut> puts);

}  // namespace cxlkv::internal
