// Request traces for `cxlkv demo`: the Mooncake conversation trace format (one JSON object a
// line), where the demo looks for it, and a synthetic generator of the same shape for machines
// that do not have it.
//
// A request names its prompt by block ids, one per kTraceBlockTokens tokens. Ids are
// prefix-chained: equal ids mean equal tokens and an equal prefix before them, so the leading
// ids two requests share are the reusable prefix of the KV cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::cli {

// Mooncake hashes prompts in blocks of 512 tokens; the last block may be partial.
inline constexpr std::uint32_t kTraceBlockTokens = 512;

struct TraceRequest {
  double timestamp_ms = 0;  // arrival time from the start of the trace
  std::uint32_t input_length = 0;   // prompt tokens
  std::uint32_t output_length = 0;  // generated tokens (not stored: the next turn resends them)
  std::vector<std::uint64_t> hash_ids;  // ceil(input_length / kTraceBlockTokens) block ids
};

// Reads the first `max_requests` requests of a JSON-lines trace (blank lines are skipped).
// InvalidArgument naming the path and line for a line that is not such an object: bad JSON, a
// missing or negative field, or a block count that does not match input_length; NotFound or
// IOError (with strerror) when the file cannot be read; InvalidArgument for an empty trace.
Result<std::vector<TraceRequest>> LoadTrace(const std::string& path, std::size_t max_requests);

// What to do with a line that is not a request: stop there (LoadTrace's behaviour) or skip it,
// keep its message and go on (replays of long traces with a few damaged lines).
struct TraceLoadOptions {
  std::size_t max_requests = SIZE_MAX;
  bool skip_bad_lines = false;
};

struct LoadedTrace {
  std::vector<TraceRequest> requests;
  std::size_t skipped_lines = 0;
  // "trace PATH line N: what is wrong" for the first few skipped lines.
  std::vector<std::string> skipped_messages;
};

// LoadTrace with a choice for bad lines. With skip_bad_lines, a bad line is counted and the
// load goes on; read errors and a trace with no good request still fail.
Result<LoadedTrace> LoadTraceWith(const std::string& path, const TraceLoadOptions& options);

// Where the demo looks for the Mooncake trace when --trace is not given, in order: the path in
// $CXLKV_TRACE when set, then ../shared/traces/ and ../../shared/traces/ from the current
// directory (a checkout's root and its build directory sit there in this project's layout).
std::vector<std::string> DefaultTracePaths();

// A Mooncake-like conversation trace, deterministic for a given seed: a few shared
// system prompts picked with Zipf-like popularity (one dominates, as block 0 does in
// Mooncake's trace), new chats arriving as a Poisson stream, and later turns that resend the
// history plus a new message (extending the previous prompt's blocks) after an exponential
// think time; mostly short messages, some long documents. Its rates are fitted to Mooncake's
// (3.3 requests/s, 39% later turns, ~2 minutes between turns), so it reuses as little in a
// short window as the real trace does.
std::vector<TraceRequest> GenerateSyntheticTrace(std::uint64_t seed, std::size_t requests);

}  // namespace cxlkv::cli
