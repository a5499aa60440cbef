// The store's options as command-line flags (`cxlkv serve`; `cxlkv demo --tier`), parsed
// through the options schema (options/store_schema.h): the flags keep their comma syntax, the
// keys and ranges are the schema's.
//
//   --tier SPEC,CAPACITY[,ITEM...]   ITEM: KEY=VALUE (a [[tier]] key), or a bare durability
//                                    (persist-on-put) or eviction policy (lru)
//   --spill PATH,CAPACITY[,KEY=VALUE...]   [spill] keys
//   --store KEY=VALUE                [store] keys
//
// Errors name the flag as given and the key ("--tier dram,1G,promote_after_hits=64:
// promote_after_hits is 64; it must be 0 to 63").
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include <string>

#include "cxlkv/status.h"
#include "cxlkv/store.h"

namespace cxlkv::options {

// Sets what one --tier gives on `tier` (which holds the command's defaults: its name, its
// eviction policy). The spec is the flag's text up to its first comma.
Status ApplyTierFlag(const std::string& flag, TierOptions& tier);
// Sets options.spill from one --spill.
Status ApplySpillFlag(const std::string& flag, StoreOptions& options);
// Sets one store option from one --store KEY=VALUE.
Status ApplyStoreFlag(const std::string& flag, StoreOptions& options);

}  // namespace cxlkv::options
