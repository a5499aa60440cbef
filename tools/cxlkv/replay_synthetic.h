// A second synthetic trace for the replay, built to differ from the conversation trace the
// prefix-aware policy was developed on (and from `cxlkv demo`'s Mooncake-like generator), so it
// can serve as a held-out check: multi-block system prompts with Zipf popularity, shared
// documents behind some of them (a two-level prefix tree), sessions of a geometric number of
// turns whose histories grow, think times with a heavy tail, and one-off long documents.
//
// Thread-safety: a pure function of its arguments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tools/cxlkv/demo_trace.h"

namespace cxlkv::cli {

// Deterministic for a seed on every platform (no std:: distributions).
std::vector<TraceRequest> GenerateSessionTrace(std::uint64_t seed, std::size_t requests);

}  // namespace cxlkv::cli
