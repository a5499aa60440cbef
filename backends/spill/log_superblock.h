// The segment log's superblock at open: read both copies, then either format a new log (its
// geometry from the options and the device) or take the newest valid copy, check it against
// the options, and write the next epoch into the other copy, synced before anything else is
// written (segment_log.h, "Layout", has why).
//
// Internal to backends/spill/. Thread-safety: called once, by Open, before the log is shared.
#pragma once

#include "backends/spill/chunk_record.h"
#include "backends/spill/io_channel.h"
#include "backends/spill/log_device.h"
#include "backends/spill/segment_log.h"
#include "cxlkv/status.h"

namespace cxlkv::internal::spill {

// The superblock this open of the log runs under (its epoch already bumped and synced).
// Errors: as SegmentLog::Open's for the superblock (InvalidArgument for a geometry that does
// not fit or does not match, Corruption for two bad copies or a foreign path).
Result<Superblock> OpenSuperblock(const SegmentLogOptions& options, LogDevice& dev,
                                  IoChannel& reader, IoChannel& writer);

}  // namespace cxlkv::internal::spill
