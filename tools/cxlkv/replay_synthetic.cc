#include "tools/cxlkv/replay_synthetic.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <utility>

namespace cxlkv::cli {
namespace {

class Draws {
 public:
  explicit Draws(std::uint64_t seed) : rng_(seed) {}
  double Unit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }  // [0, 1)
  std::uint32_t Between(std::uint32_t lo, std::uint32_t hi) {  // inclusive
    return lo + static_cast<std::uint32_t>(rng_() % (std::uint64_t{hi} - lo + 1));
  }
  bool Chance(double p) { return Unit() < p; }
  double Exponential(double mean) { return -mean * std::log1p(-Unit()); }
  // Heavy-tailed: exp of a (12-uniform) normal.
  double LogNormal(double median, double sigma) {
    double z = -6;
    for (int i = 0; i < 12; ++i) z += Unit();
    return median * std::exp(sigma * z);
  }
  // Rank in [0, n) with weight 1/(r+1)^s.
  std::size_t Zipf(std::size_t n, double s) {
    double total = 0;
    for (std::size_t r = 0; r < n; ++r) total += 1.0 / std::pow(static_cast<double>(r + 1), s);
    double pick = Unit() * total;
    for (std::size_t r = 0; r < n; ++r) {
      pick -= 1.0 / std::pow(static_cast<double>(r + 1), s);
      if (pick < 0) return r;
    }
    return n - 1;
  }

 private:
  std::mt19937_64 rng_;
};

struct Session {
  std::vector<std::uint64_t> ids;  // the last prompt's block ids
  std::uint32_t tokens = 0;        // the last prompt's tokens
  std::uint32_t turns_left = 0;
};

}  // namespace

std::vector<TraceRequest> GenerateSessionTrace(std::uint64_t seed, std::size_t requests) {
  Draws draw(seed);
  std::uint64_t next_id = 1u << 20;  // unlike the other generator's ids, for no reason but clarity
  auto fresh = [&next_id](std::vector<std::uint64_t>* ids, std::size_t blocks) {
    while (ids->size() < blocks) ids->push_back(next_id++);
  };

  constexpr std::size_t kSystemPrompts = 16;
  constexpr std::size_t kDocuments = 64;
  std::vector<std::vector<std::uint64_t>> system(kSystemPrompts);
  for (auto& prompt : system) fresh(&prompt, draw.Between(1, 8));  // whole blocks
  std::vector<std::uint32_t> document_blocks(kDocuments);
  for (auto& blocks : document_blocks) blocks = draw.Between(4, 40);
  std::map<std::pair<std::size_t, std::size_t>, std::vector<std::uint64_t>> shared;  // (sp, doc)

  constexpr double kNewSessionsPerMs = 2.0 / 1000;  // plus the later turns
  struct Due {
    double ms;
    std::uint64_t order;
    Session session;
    bool operator>(const Due& o) const { return ms != o.ms ? ms > o.ms : order > o.order; }
  };
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due;
  std::uint64_t order = 0;
  double next_new_ms = 0;
  std::vector<TraceRequest> trace;
  trace.reserve(requests);
  while (trace.size() < requests) {
    TraceRequest request;
    request.output_length = static_cast<std::uint32_t>(std::min(4096.0, draw.LogNormal(200, 0.8)));
    Session session;
    if (!due.empty() && due.top().ms <= next_new_ms) {
      Due next = due.top();
      due.pop();
      request.timestamp_ms = std::floor(next.ms);
      session = std::move(next.session);
      const auto message = static_cast<std::uint32_t>(std::min(16384.0, draw.LogNormal(300, 1.2)));
      const std::uint32_t tokens = session.tokens + 250 + message;  // the reply, then the message
      request.input_length = tokens;
      request.hash_ids.assign(session.ids.begin(),
                              session.ids.begin() + session.tokens / kTraceBlockTokens);
      fresh(&request.hash_ids, (tokens + kTraceBlockTokens - 1) / kTraceBlockTokens);
    } else {
      request.timestamp_ms = std::floor(next_new_ms);
      next_new_ms += draw.Exponential(1.0 / kNewSessionsPerMs);
      if (draw.Chance(0.2)) {  // a one-off long document, no shared prefix, one turn
        request.input_length = draw.Between(8192, 65536);
        fresh(&request.hash_ids, (request.input_length + kTraceBlockTokens - 1) / kTraceBlockTokens);
        session.turns_left = 0;
      } else {
        const std::size_t sp = draw.Zipf(kSystemPrompts, 1.1);
        request.hash_ids = system[sp];
        if (draw.Chance(0.3)) {  // a shared document behind the system prompt
          const std::size_t doc = draw.Zipf(kDocuments, 0.8);
          auto [it, inserted] = shared.try_emplace({sp, doc});
          if (inserted) fresh(&it->second, document_blocks[doc]);
          request.hash_ids.insert(request.hash_ids.end(), it->second.begin(), it->second.end());
        }
        const auto message = static_cast<std::uint32_t>(std::min(32768.0, draw.LogNormal(600, 1.3)));
        request.input_length =
            static_cast<std::uint32_t>(request.hash_ids.size()) * kTraceBlockTokens + message;
        fresh(&request.hash_ids, (request.input_length + kTraceBlockTokens - 1) / kTraceBlockTokens);
        session.turns_left = static_cast<std::uint32_t>(std::floor(draw.Exponential(2.5)));
      }
    }
    if (session.turns_left > 0 && request.input_length < 100'000) {
      session.ids = request.hash_ids;
      session.tokens = request.input_length;
      --session.turns_left;
      due.push({request.timestamp_ms + draw.LogNormal(60'000, 1.0), order++, std::move(session)});
    }
    trace.push_back(std::move(request));
  }
  return trace;
}

}  // namespace cxlkv::cli
