#include "tools/cxlkv/demo_trace.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <string_view>

namespace cxlkv::cli {
namespace {

constexpr const char* kTraceName = "mooncake_conversation_trace.jsonl";

// Longest prompt a line may claim: far above any model's context window (Mooncake's longest
// is 126k tokens), low enough that tokens x bytes per token cannot overflow.
constexpr std::uint64_t kMaxInputTokens = std::uint64_t{1} << 24;

Result<std::uint64_t> UnsignedField(const nlohmann::json& line, const char* name,
                                    std::uint64_t max) {
  const auto it = line.find(name);
  if (it == line.end()) return Status::InvalidArgument(std::string("no \"") + name + "\" field");
  if (it->is_number_integer() && !it->is_number_unsigned()) {
    return Status::InvalidArgument(std::string("\"") + name + "\" is negative");
  }
  if (!it->is_number_unsigned()) {
    return Status::InvalidArgument(std::string("\"") + name + "\" is not an integer");
  }
  const std::uint64_t value = it->get<std::uint64_t>();
  if (value > max) {
    return Status::InvalidArgument(std::string("\"") + name + "\" " + std::to_string(value) +
                                   " is above " + std::to_string(max));
  }
  return value;
}

Result<TraceRequest> ParseLine(std::string_view text) {
  const nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (line.is_discarded()) return Status::InvalidArgument("not valid JSON");
  if (!line.is_object()) return Status::InvalidArgument("not a JSON object");
  TraceRequest request;

  const auto ts = line.find("timestamp");
  if (ts == line.end()) return Status::InvalidArgument("no \"timestamp\" field");
  if (!ts->is_number() || !std::isfinite(ts->get<double>()) || ts->get<double>() < 0) {
    return Status::InvalidArgument("\"timestamp\" is not a non-negative number of ms");
  }
  request.timestamp_ms = ts->get<double>();

  CXLKV_ASSIGN_OR_RETURN(const std::uint64_t input,
                         UnsignedField(line, "input_length", kMaxInputTokens));
  if (input == 0) return Status::InvalidArgument("\"input_length\" is 0");
  request.input_length = static_cast<std::uint32_t>(input);
  CXLKV_ASSIGN_OR_RETURN(const std::uint64_t output,
                         UnsignedField(line, "output_length", kMaxInputTokens));
  request.output_length = static_cast<std::uint32_t>(output);

  const auto ids = line.find("hash_ids");
  if (ids == line.end()) return Status::InvalidArgument("no \"hash_ids\" field");
  if (!ids->is_array()) return Status::InvalidArgument("\"hash_ids\" is not an array");
  for (const nlohmann::json& id : *ids) {
    if (!id.is_number_unsigned()) {
      return Status::InvalidArgument("\"hash_ids\" holds " + id.dump() +
                                     ", not a non-negative integer");
    }
    request.hash_ids.push_back(id.get<std::uint64_t>());
  }
  // The block count is what ties tokens to ids: a mismatch means the line is not this format.
  const std::uint64_t blocks = (input + kTraceBlockTokens - 1) / kTraceBlockTokens;
  if (request.hash_ids.size() != blocks) {
    return Status::InvalidArgument(
        "\"hash_ids\" has " + std::to_string(request.hash_ids.size()) + " ids for input_length " +
        std::to_string(input) + " (expected " + std::to_string(blocks) + ", one per " +
        std::to_string(kTraceBlockTokens) + " tokens)");
  }
  return request;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// A deterministic stream of draws. The standard distributions differ between standard
// libraries; these do not, so a seed names the same trace everywhere.
class Draw {
 public:
  explicit Draw(std::uint64_t seed) : rng_(seed) {}
  std::uint64_t Below(std::uint64_t n) { return rng_() % n; }
  std::uint32_t Between(std::uint32_t lo, std::uint32_t hi) {  // inclusive
    return lo + static_cast<std::uint32_t>(Below(std::uint64_t{hi} - lo + 1));
  }
  // Skewed toward lo: most chat messages are short.
  std::uint32_t MostlyShort(std::uint32_t lo, std::uint32_t hi) {
    return std::min(Between(lo, hi), Between(lo, hi));
  }
  bool Chance(std::uint32_t percent) { return Below(100) < percent; }
  // Rank r in [0, n) with weight 1/(r+1): a few items take most picks.
  std::size_t Zipf(std::size_t n) {
    constexpr std::uint64_t kScale = 2520;  // divisible by 1..10, so the first ten are exact
    std::uint64_t total = 0;
    for (std::size_t r = 0; r < n; ++r) total += kScale / (r + 1);
    std::uint64_t pick = Below(total);
    for (std::size_t r = 0; r < n; ++r) {
      if (pick < kScale / (r + 1)) return r;
      pick -= kScale / (r + 1);
    }
    return n - 1;
  }
  double Exponential(double mean) {
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // [0, 1)
    return -mean * std::log1p(-u);
  }

 private:
  std::mt19937_64 rng_;
};

// A conversation as its next turn sees it; also a system prompt (no output).
struct Conversation {
  std::vector<std::uint64_t> ids;  // block ids of its last prompt
  std::uint32_t input = 0;         // its last prompt's tokens
  std::uint32_t output = 0;        // the reply to it
};

// Block ids for a prompt of `tokens` whose first `kept` blocks are those of `prefix` (the
// blocks another prompt holds in full); the rest are new.
std::vector<std::uint64_t> ExtendIds(const std::vector<std::uint64_t>& prefix, std::size_t kept,
                                     std::uint32_t tokens, std::uint64_t* next_id) {
  const std::size_t blocks = (tokens + kTraceBlockTokens - 1) / kTraceBlockTokens;
  std::vector<std::uint64_t> ids(prefix.begin(),
                                 prefix.begin() + static_cast<std::ptrdiff_t>(
                                                      std::min({kept, blocks, prefix.size()})));
  while (ids.size() < blocks) ids.push_back((*next_id)++);
  return ids;
}

}  // namespace

Result<std::vector<TraceRequest>> LoadTrace(const std::string& path, std::size_t max_requests) {
  TraceLoadOptions options;
  options.max_requests = max_requests;
  CXLKV_ASSIGN_OR_RETURN(LoadedTrace loaded, LoadTraceWith(path, options));
  return std::move(loaded.requests);
}

Result<LoadedTrace> LoadTraceWith(const std::string& path, const TraceLoadOptions& options) {
  // Enough to show what is wrong with a damaged trace without flooding the report.
  constexpr std::size_t kSkippedMessagesKept = 5;
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "r"));
  if (file == nullptr) return Status::FromErrno("opening trace " + path, errno);
  LoadedTrace loaded;
  char* buffer = nullptr;
  std::size_t capacity = 0;
  std::size_t line_number = 0;
  Status status;
  errno = 0;
  while (loaded.requests.size() < options.max_requests) {
    const ssize_t n = getline(&buffer, &capacity, file.get());
    if (n < 0) break;  // the end, or a read error (ferror below)
    ++line_number;
    const std::string_view text(buffer, static_cast<std::size_t>(n));
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) continue;
    Result<TraceRequest> request = ParseLine(text);
    if (!request.ok()) {
      Status bad = request.status().WithContext("trace " + path + " line " +
                                                std::to_string(line_number));
      if (!options.skip_bad_lines) {
        status = std::move(bad);
        break;
      }
      ++loaded.skipped_lines;
      if (loaded.skipped_messages.size() < kSkippedMessagesKept) {
        loaded.skipped_messages.push_back(bad.ToString());
      }
      continue;
    }
    loaded.requests.push_back(std::move(request).value());
  }
  const int read_errno = errno;
  const bool read_failed = status.ok() && std::ferror(file.get()) != 0;
  std::free(buffer);
  if (read_failed) return Status::FromErrno("reading trace " + path, read_errno);
  if (!status.ok()) return status;
  if (loaded.requests.empty()) {
    return Status::InvalidArgument("trace " + path + " holds no request");
  }
  return loaded;
}

std::vector<std::string> DefaultTracePaths() {
  std::vector<std::string> paths;
  const char* env = std::getenv("CXLKV_TRACE");
  if (env != nullptr && *env != '\0') paths.emplace_back(env);
  paths.push_back(std::string("../shared/traces/") + kTraceName);
  paths.push_back(std::string("../../shared/traces/") + kTraceName);
  return paths;
}

std::vector<TraceRequest> GenerateSyntheticTrace(std::uint64_t seed, std::size_t requests) {
  Draw draw(seed);
  std::uint64_t next_id = 0;

  // System prompts: only their full blocks are shared; the block the first user message
  // starts in differs per conversation.
  constexpr std::size_t kSystemPrompts = 4;
  std::array<Conversation, kSystemPrompts> system;
  for (Conversation& prompt : system) {
    prompt.input = draw.Between(512, 3072);
    prompt.ids = ExtendIds({}, 0, prompt.input, &next_id);
  }

  // Rates fitted to Mooncake's trace: 12,031 requests in an hour, 39% of them a later turn
  // of an earlier conversation, coming back a median of ~2 minutes (423 requests) later.
  constexpr double kRequestsPerMs = 12'031.0 / 3'600'000.0;
  constexpr std::uint32_t kFollowUpPercent = 39;  // each request's chance of a next turn
  constexpr double kMeanThinkMs = 180'000;        // exponential: median 125 s, p90 414 s
  constexpr std::uint32_t kMaxContext = 131072;   // a longer history starts a new chat
  const double new_chat_mean_ms = 1.0 / (kRequestsPerMs * (100 - kFollowUpPercent) / 100.0);

  struct Pending {
    double due_ms;
    std::uint64_t order;  // ties broken by creation, so the trace is the same everywhere
    Conversation conversation;
    bool operator>(const Pending& o) const {
      return due_ms != o.due_ms ? due_ms > o.due_ms : order > o.order;
    }
  };
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending;
  std::uint64_t order = 0;
  double next_new_ms = 0;

  std::vector<TraceRequest> trace;
  trace.reserve(requests);
  while (trace.size() < requests) {
    TraceRequest request;
    request.output_length = draw.MostlyShort(16, 1024);
    bool continued = false;
    if (!pending.empty() && pending.top().due_ms <= next_new_ms) {
      Pending next = pending.top();
      pending.pop();
      Conversation& c = next.conversation;
      request.timestamp_ms = std::floor(next.due_ms);
      const std::uint32_t message =
          draw.Chance(20) ? draw.Between(2048, 16384) : draw.MostlyShort(16, 2048);
      const std::uint64_t tokens = std::uint64_t{c.input} + c.output + message;
      if (tokens <= kMaxContext) {
        // The previous prompt's full blocks are unchanged; its partial last block is not.
        request.input_length = static_cast<std::uint32_t>(tokens);
        request.hash_ids =
            ExtendIds(c.ids, c.input / kTraceBlockTokens, request.input_length, &next_id);
        continued = true;
      }
    } else {
      request.timestamp_ms = std::floor(next_new_ms);
      next_new_ms += draw.Exponential(new_chat_mean_ms);
    }
    if (!continued) {  // a new conversation (or one whose context window is full)
      const Conversation& prompt = system[draw.Zipf(kSystemPrompts)];
      const std::uint32_t message =
          draw.Chance(45) ? draw.Between(2048, 32768) : draw.MostlyShort(32, 2048);
      request.input_length = prompt.input + message;
      request.hash_ids = ExtendIds(prompt.ids, prompt.input / kTraceBlockTokens,
                                   request.input_length, &next_id);
    }
    if (draw.Chance(kFollowUpPercent)) {
      pending.push({request.timestamp_ms + draw.Exponential(kMeanThinkMs), order++,
                    {request.hash_ids, request.input_length, request.output_length}});
    }
    trace.push_back(std::move(request));
  }
  return trace;
}

}  // namespace cxlkv::cli
