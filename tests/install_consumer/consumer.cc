// Uses the installed headers and library: maps DRAM, carves it, stores and reads a chunk.
#include <cxlkv/memory_source.h>
#include <cxlkv/slab_allocator.h>
#include <cxlkv/status.h>

#include <cstdio>
#include <cstring>

int main() {
  auto source = cxlkv::MemorySource::Dram();
  auto region = source->Map(std::size_t{16} << 20, 4096);
  if (!region.ok()) {
    std::fprintf(stderr, "map: %s\n", region.status().ToString().c_str());
    return 1;
  }
  cxlkv::SlabAllocatorOptions options;
  options.slab_size = std::size_t{1} << 20;
  options.exact_sizes = {std::size_t{128} << 10};
  auto allocator = cxlkv::SlabAllocator::Create(**region, options);
  if (!allocator.ok()) {
    std::fprintf(stderr, "allocator: %s\n", allocator.status().ToString().c_str());
    return 1;
  }
  auto slot = (*allocator)->Allocate(std::size_t{128} << 10);
  if (!slot.ok()) {
    std::fprintf(stderr, "allocate: %s\n", slot.status().ToString().c_str());
    return 1;
  }
  std::memset(slot->data, 0x5a, slot->size);
  const bool intact = slot->data[slot->size - 1] == std::byte{0x5a};
  cxlkv::Status freed = (*allocator)->Free(*slot);
  std::printf("consumer: %s, slot %zu B, free %s\n", (*region)->info().ToString().c_str(),
              slot->capacity, freed.ToString().c_str());
  return intact && freed.ok() ? 0 : 1;
}
