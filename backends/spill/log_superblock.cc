#include "backends/spill/log_superblock.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <span>
#include <string>

namespace cxlkv::internal::spill {
namespace {

bool AllZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

std::uint64_t RandomLogId() {
  std::uint64_t id = 0;
  if (getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id) || id == 0) {
    // getrandom cannot fail for 8 bytes once the pool is initialised; a clock-derived id is a
    // fine stand-in (it only needs to differ from the previous log on the same path).
    id = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) *
             0x9e3779b97f4a7c15ULL |
         1;
  }
  return id;
}

// A new log's superblock, written as copy 0 with copy 1 zeroed, and synced.
Result<Superblock> FormatSuperblock(const SegmentLogOptions& options, LogDevice& dev,
                                    IoChannel& writer, std::uint64_t device_size) {
  const std::string& path = options.path;
  std::uint64_t capacity = options.capacity;
  if (dev.is_block_device()) {
    if (capacity == 0) capacity = device_size;
    if (capacity > device_size) {
      return Status::InvalidArgument("capacity " + std::to_string(capacity) +
                                     " exceeds the size of " + path + " (" +
                                     std::to_string(device_size) + " bytes)");
    }
  } else if (capacity == 0) {
    return Status::InvalidArgument("creating a spill log in " + path + " needs a capacity");
  }
  const std::uint64_t segment_size =
      options.segment_size != 0 ? options.segment_size : kDefaultSegmentSize;
  if (capacity < kDataOffset + segment_size) {
    return Status::InvalidArgument("capacity " + std::to_string(capacity) +
                                   " holds no segment of " + std::to_string(segment_size) +
                                   " bytes after the " + std::to_string(kDataOffset) +
                                   "-byte superblock area");
  }
  const std::uint64_t count = (capacity - kDataOffset) / segment_size;
  if (count > ChunkLocation::kMaxSegments) {
    return Status::InvalidArgument(std::to_string(count) + " segments of " +
                                   std::to_string(segment_size) + " bytes exceed the limit of " +
                                   std::to_string(ChunkLocation::kMaxSegments) +
                                   ": use larger segments");
  }
  if (options.format) CXLKV_RETURN_IF_ERROR(dev.Truncate());
  const Superblock sb{RandomLogId(), capacity, segment_size, count, 1};
  // Copy 0 gets the new superblock; copy 1 is zeroed so a stale superblock of an earlier log on
  // a reused device can never outrank it.
  std::array<std::byte, 2 * kBlockSize> blocks{};
  EncodeSuperblock(sb, std::span(blocks).first(kBlockSize));
  CXLKV_RETURN_IF_ERROR(writer.WriteRange(0, blocks));
  CXLKV_RETURN_IF_ERROR(dev.Sync());
  return sb;
}

}  // namespace

Result<Superblock> OpenSuperblock(const SegmentLogOptions& options, LogDevice& dev,
                                  IoChannel& reader, IoChannel& writer) {
  const std::string& path = options.path;
  std::array<std::byte, 2 * kBlockSize> blocks{};
  {
    RangeRead r{0, blocks.size(), blocks.data(), {}};
    CXLKV_RETURN_IF_ERROR(reader.ReadRanges({&r, 1}));
    CXLKV_RETURN_IF_ERROR(r.status);
  }
  CXLKV_ASSIGN_OR_RETURN(const std::uint64_t device_size, dev.Size());
  if (options.format || AllZero(blocks)) {
    return FormatSuperblock(options, dev, writer, device_size);
  }

  // An existing log: take the newest valid copy.
  std::array<Result<Superblock>, 2> copies = {
      DecodeSuperblock(std::span(blocks).first(kBlockSize)),
      DecodeSuperblock(std::span(blocks).subspan(kBlockSize))};
  int best = -1;
  for (int i = 0; i < 2; ++i) {
    if (copies[i].ok() && (best < 0 || copies[i]->epoch > copies[best]->epoch)) best = i;
  }
  if (best < 0) {
    // An intact superblock of another format version is an old (or newer) log, not damage:
    // say so, naming both versions, rather than "no valid superblock".
    for (int i = 0; i < 2; ++i) {
      const std::uint32_t version =
          OtherSuperblockVersion(std::span(blocks).subspan(std::size_t(i) * kBlockSize, kBlockSize));
      if (version != 0) {
        return Status::Corruption(path + " holds a cxlkv spill log of format version " +
                                  std::to_string(version) + "; this build reads format version " +
                                  std::to_string(kFormatVersion) +
                                  " only (record data starts on a block boundary since version "
                                  "2): set `format` to overwrite it with a new, empty log");
      }
    }
    return Status::Corruption(path + " holds no valid cxlkv spill log superblock (copy 0: " +
                              copies[0].status().message() +
                              "; copy 1: " + copies[1].status().message() +
                              "); set `format` to overwrite it with a new log");
  }
  Superblock sb = *copies[best];
  if (options.capacity != 0 && options.capacity != sb.capacity) {
    return Status::InvalidArgument("the log in " + path + " has a capacity of " +
                                   std::to_string(sb.capacity) + " bytes, not " +
                                   std::to_string(options.capacity));
  }
  if (options.segment_size != 0 && options.segment_size != sb.segment_size) {
    return Status::InvalidArgument("the log in " + path + " has segments of " +
                                   std::to_string(sb.segment_size) + " bytes, not " +
                                   std::to_string(options.segment_size));
  }
  if (dev.is_block_device() && device_size < sb.capacity) {
    return Status::InvalidArgument(path + " (" + std::to_string(device_size) +
                                   " bytes) is smaller than its log's capacity (" +
                                   std::to_string(sb.capacity) + " bytes)");
  }
  // The new epoch goes into the other copy. When that copy is damaged, it may have held an
  // epoch one higher than the survivor (a bit flip after it was synced), so skip past it.
  const int other = 1 - best;
  sb.epoch += copies[other].ok() ? 1 : 2;
  if (sb.epoch >= (std::uint64_t{1} << 32)) {
    return Status::Corruption(path + ": superblock epoch out of range");
  }
  std::array<std::byte, kBlockSize> block{};
  EncodeSuperblock(sb, block);
  CXLKV_RETURN_IF_ERROR(writer.WriteRange(std::uint64_t(other) * kBlockSize, block));
  CXLKV_RETURN_IF_ERROR(dev.Sync());
  return sb;
}

}  // namespace cxlkv::internal::spill
