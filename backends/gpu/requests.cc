#include "backends/gpu/requests.h"

#include <string>
#include <utility>

namespace cxlkv::internal {

Result<DeviceLayout> LayoutOf(std::size_t size, std::size_t layers, std::size_t stride,
                              std::string_view key) {
  DeviceLayout l;
  l.part_bytes = size;
  if (layers == 0) return l;
  if (size % layers != 0) {
    return Status::InvalidArgument("chunk of " + std::to_string(size) + " bytes for key " +
                                   std::string(key) + " does not divide into " +
                                   std::to_string(layers) + " layers");
  }
  l.parts = layers;
  l.part_bytes = size / layers;
  l.stride = layers > 1 ? stride : 0;
  if (layers > 1 && stride < l.part_bytes) {
    return Status::InvalidArgument("layer stride " + std::to_string(stride) + " for key " +
                                   std::string(key) + " is shorter than a layer of " +
                                   std::to_string(l.part_bytes) + " bytes");
  }
  return l;
}

Result<PinnedGets> PinGets(Store& store, std::span<const DeviceGet> gets) {
  if (gets.empty()) return Status::InvalidArgument("GetToDevice of no chunk");
  PinnedGets out;
  out.pins.reserve(gets.size());
  for (std::size_t i = 0; i < gets.size(); ++i) {
    const DeviceGet& g = gets[i];
    const std::string what = "GetToDevice request " + std::to_string(i);
    if (g.dst == nullptr) {
      return Status::InvalidArgument(what + " (key " + std::string(g.key) +
                                     ") has a null destination");
    }
    Result<PinnedChunk> pin = store.Pin(g.key);
    if (!pin.ok()) return pin.status().WithContext(what);
    Result<DeviceLayout> l = LayoutOf(pin->size(), g.layers, g.layer_stride, g.key);
    if (!l.ok()) return l.status().WithContext(what);
    if (l->span() > g.capacity) {
      return Status::InvalidArgument(what + ": the chunk for key " + std::string(g.key) +
                                     " needs " + std::to_string(l->span()) +
                                     " bytes at its destination; capacity is " +
                                     std::to_string(g.capacity));
    }
    out.layouts.push_back(*l);
    out.pins.push_back(std::move(pin).value());
  }
  return out;
}

Result<ReservedPuts> ReservePuts(Store& store, std::span<const DevicePut> puts) {
  if (puts.empty()) return Status::InvalidArgument("PutFromDevice of no chunk");
  ReservedPuts out;
  for (std::size_t i = 0; i < puts.size(); ++i) {
    const DevicePut& p = puts[i];
    const std::string what = "PutFromDevice request " + std::to_string(i);
    if (p.src == nullptr || p.size == 0) {
      return Status::InvalidArgument(what + " (key " + std::string(p.key) +
                                     ") has a null source or zero size");
    }
    Result<DeviceLayout> l = LayoutOf(p.size, p.layers, p.layer_stride, p.key);
    if (!l.ok()) return l.status().WithContext(what);
    out.layouts.push_back(*l);
  }
  out.slots.reserve(puts.size());
  for (std::size_t i = 0; i < puts.size(); ++i) {
    Result<ReservedChunk> r = store.Reserve(puts[i].key, puts[i].size, puts[i].meta);
    if (!r.ok()) return r.status().WithContext("PutFromDevice request " + std::to_string(i));
    out.slots.push_back(std::move(r).value());
  }
  return out;
}

}  // namespace cxlkv::internal
