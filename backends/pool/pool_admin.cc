// The public face of the pool tools (cxlkv/pool.h) over the format and fsck internals.
#include "cxlkv/pool.h"

#include "backends/pool/pool_format.h"
#include "backends/pool/pool_fsck.h"

namespace cxlkv {

Result<PoolIdentity> IdentifyPool(std::span<const std::byte> image) {
  CXLKV_ASSIGN_OR_RETURN(internal::SuperblockChoice choice, internal::ReadSuperblocks(image));
  return PoolIdentity{choice.sb.UuidString(), choice.sb.geometry.region_size};
}

Result<PoolCheckReport> CheckPool(const MemoryRegion& region, bool repair, unsigned threads) {
  CXLKV_ASSIGN_OR_RETURN(internal::FsckReport report,
                         internal::FsckPool(region, repair, threads));
  PoolCheckReport out;
  out.clean = report.clean();
  out.chunks = report.chunks;
  out.damaged = report.damaged();
  out.crash_leftovers = report.crash_leftovers();
  out.text = report.ToString();
  out.json = report.ToJson();
  return out;
}

}  // namespace cxlkv
