// The lm:// server's options schema: every ServerOptions field a user can set, described once
// (options/option_schema.h). `cxlkv serve` reads them from the [server] table of its TOML file
// and from flags generated from this table (the key with dashes, or the flag named here).
//
// Thread-safety: functions only; all are thread-safe.
#pragma once

#include "options/option_schema.h"
#include "server/server.h"

namespace cxlkv::serve {

options::Schema<ServerOptions> ServerSchema();

}  // namespace cxlkv::serve
