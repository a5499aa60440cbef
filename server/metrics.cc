#include "server/metrics.h"

#include <cinttypes>
#include <cstdio>
#include <string_view>

namespace cxlkv::serve {
namespace {

// Bucket bounds of the request latency histograms, in seconds (from 10 us to 1 s: a 2 MiB
// GET over loopback takes about 0.2 ms, a 32 MiB one a few ms).
constexpr double kLatencyBounds[] = {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                     2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0};

class Writer {
 public:
  void Help(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // name{labels} value; labels is "" or `tier="dram"`.
  void Sample(std::string_view name, std::string_view labels, double value) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.17g", value);
    Line(name, labels, buf);
  }
  void Sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%" PRIu64, value);
    Line(name, labels, buf);
  }
  std::string Take() { return std::move(out_); }

 private:
  void Line(std::string_view name, std::string_view labels, const char* value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string out_;
};

// A label value with the characters Prometheus escapes escaped.
std::string Label(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

void Histogram(Writer& w, std::string_view name, const std::string& labels,
               const internal::LatencyHistogram& h) {
  const std::string sep = labels.empty() ? "" : ",";
  for (double bound : kLatencyBounds) {
    char le[32];
    std::snprintf(le, sizeof(le), "le=\"%g\"", bound);
    w.Sample(std::string(name) + "_bucket", labels + sep + le,
             h.CountAtMost(static_cast<std::uint64_t>(bound * 1e9)));
  }
  const std::uint64_t count = h.CountAtMost(UINT64_MAX);
  w.Sample(std::string(name) + "_bucket", labels + sep + "le=\"+Inf\"", count);
  w.Sample(std::string(name) + "_sum", labels, static_cast<double>(h.Sum()) * 1e-9);
  w.Sample(std::string(name) + "_count", labels, count);
}

}  // namespace

std::string ServerMetrics::RenderPrometheus(const Store& store, const ServerGauges& g) const {
  Writer w;
  w.Help("cxlkv_requests_total", "counter", "lm:// requests by command");
  for (Command c : {Command::kPut, Command::kGet, Command::kExist, Command::kList,
                    Command::kHealth}) {
    w.Sample("cxlkv_requests_total", Label("command", CommandName(c)), requests[Index(c)].load());
  }
  w.Help("cxlkv_request_duration_seconds", "histogram",
         "lm:// request latency, header received to reply sent (PUT: payload stored)");
  for (Command c : {Command::kPut, Command::kGet, Command::kExist, Command::kList,
                    Command::kHealth}) {
    Histogram(w, "cxlkv_request_duration_seconds", Label("command", CommandName(c)),
              latency[Index(c)]);
  }
  w.Help("cxlkv_get_total", "counter", "lm:// GETs by result");
  w.Sample("cxlkv_get_total", "result=\"hit\"", get_hits.load());
  w.Sample("cxlkv_get_total", "result=\"miss\"", get_misses.load());
  w.Sample("cxlkv_get_total", "result=\"over_budget\"", gets_over_budget.load());
  w.Help("cxlkv_exist_total", "counter", "lm:// EXISTs by result");
  w.Sample("cxlkv_exist_total", "result=\"hit\"", exist_hits.load());
  w.Sample("cxlkv_exist_total", "result=\"miss\"", exist_misses.load());
  w.Help("cxlkv_put_total", "counter", "lm:// PUTs by result");
  w.Sample("cxlkv_put_total", "result=\"stored\"", puts_stored.load());
  w.Sample("cxlkv_put_total", "result=\"already_stored\"", puts_already_stored.load());
  w.Sample("cxlkv_put_total", "result=\"refused\"", puts_refused.load());
  w.Sample("cxlkv_put_total", "result=\"over_budget\"", puts_over_budget.load());
  w.Help("cxlkv_network_bytes_total", "counter", "payload bytes over lm:// connections");
  w.Sample("cxlkv_network_bytes_total", "direction=\"in\"", bytes_received.load());
  w.Sample("cxlkv_network_bytes_total", "direction=\"out\"", bytes_sent.load());
  w.Help("cxlkv_connections_accepted_total", "counter", "lm:// connections accepted");
  w.Sample("cxlkv_connections_accepted_total", "", connections_accepted.load());
  w.Help("cxlkv_connections_open", "gauge", "lm:// connections open now");
  w.Sample("cxlkv_connections_open", "", connections_open.load());
  w.Help("cxlkv_connections_closed_bad_input_total", "counter",
         "connections closed for a malformed request or a payload cut short");
  w.Sample("cxlkv_connections_closed_bad_input_total", "", connections_closed_bad_input.load());
  w.Help("cxlkv_connections_closed_total", "counter",
         "lm:// connections the server closed, by reason (bad input is counted above too)");
  w.Sample("cxlkv_connections_closed_total", "reason=\"bad_input\"",
           connections_closed_bad_input.load());
  w.Sample("cxlkv_connections_closed_total", "reason=\"timeout\"",
           connections_closed_timeout.load());
  w.Sample("cxlkv_connections_closed_total", "reason=\"idle\"", connections_closed_idle.load());
  w.Sample("cxlkv_connections_closed_total", "reason=\"replaced\"",
           connections_replaced.load());
  w.Help("cxlkv_connections_refused_total", "counter",
         "lm:// connections closed at once: max_connections or max_connections_per_peer");
  w.Sample("cxlkv_connections_refused_total", "", connections_refused.load());
  w.Help("cxlkv_connections_max", "gauge", "the connection limit in force");
  w.Sample("cxlkv_connections_max", "", static_cast<std::uint64_t>(g.max_connections));
  w.Help("cxlkv_accept_failures_total", "counter",
         "accept() failures (out of descriptors: accepting pauses, backing off)");
  w.Sample("cxlkv_accept_failures_total", "", accept_failures.load());
  w.Help("cxlkv_put_reserved_bytes", "gauge", "slot bytes reserved by PUTs being received");
  w.Sample("cxlkv_put_reserved_bytes", "", static_cast<std::uint64_t>(g.reserved_bytes));
  w.Help("cxlkv_put_reserved_bytes_max", "gauge", "max_reserved_bytes");
  w.Sample("cxlkv_put_reserved_bytes_max", "", static_cast<std::uint64_t>(g.max_reserved_bytes));
  w.Help("cxlkv_reply_held_bytes", "gauge",
         "bytes held by replies not yet sent: pinned chunks and LIST copies");
  w.Sample("cxlkv_reply_held_bytes", "", static_cast<std::uint64_t>(g.reply_bytes));
  w.Help("cxlkv_reply_held_bytes_max", "gauge", "max_reply_bytes");
  w.Sample("cxlkv_reply_held_bytes_max", "", static_cast<std::uint64_t>(g.max_reply_bytes));
  w.Help("cxlkv_list_total", "counter", "LIST replies cut at max_list_bytes or refused");
  w.Sample("cxlkv_list_total", "result=\"truncated\"", lists_truncated.load());
  w.Sample("cxlkv_list_total", "result=\"over_budget\"", lists_over_budget.load());
  w.Help("cxlkv_log_lines_dropped_total", "counter",
         "log lines dropped: over the log rate, or stderr not keeping up");
  w.Sample("cxlkv_log_lines_dropped_total", "", g.log_lines_dropped);
  w.Help("cxlkv_metrics_clients_dropped_total", "counter",
         "metrics requests closed unanswered: too slow, or too many at once");
  w.Sample("cxlkv_metrics_clients_dropped_total", "", metrics_clients_dropped.load());

  const StoreStats st = store.Stats();
  struct TierCounter {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t (*get)(const TierStats&);
  };
  const TierCounter tier_counters[] = {
      {"cxlkv_tier_hits_total", "counter", "reads served from the tier",
       [](const TierStats& t) -> std::uint64_t { return t.hits; }},
      {"cxlkv_tier_chunks", "gauge", "chunks held by the tier",
       [](const TierStats& t) -> std::uint64_t { return t.chunks; }},
      {"cxlkv_tier_used_bytes", "gauge", "slot bytes held by chunks and their headers",
       [](const TierStats& t) -> std::uint64_t { return t.used_bytes; }},
      {"cxlkv_tier_capacity_bytes", "gauge", "bytes mapped for the tier",
       [](const TierStats& t) -> std::uint64_t { return t.capacity; }},
      {"cxlkv_tier_evictions_total", "counter", "chunks that left the tier to make room",
       [](const TierStats& t) -> std::uint64_t { return t.evictions; }},
      {"cxlkv_tier_demotions_total", "counter", "evicted chunks copied into a lower tier",
       [](const TierStats& t) -> std::uint64_t { return t.demotions; }},
      {"cxlkv_tier_promotions_total", "counter", "chunks moved up to the first tier",
       [](const TierStats& t) -> std::uint64_t { return t.promotions; }},
      {"cxlkv_tier_expirations_total", "counter", "chunks freed when their TTL passed",
       [](const TierStats& t) -> std::uint64_t { return t.expirations; }},
      {"cxlkv_tier_bytes_in_total", "counter", "chunk bytes written into the tier",
       [](const TierStats& t) -> std::uint64_t { return t.bytes_in; }},
      {"cxlkv_tier_bytes_out_total", "counter", "chunk bytes read out of the tier",
       [](const TierStats& t) -> std::uint64_t { return t.bytes_out; }},
      {"cxlkv_tier_recovered_chunks", "gauge",
       "chunks a durable tier or the spill log found when the store opened (warm restart)",
       [](const TierStats& t) -> std::uint64_t { return t.recovered; }},
      {"cxlkv_tier_corrupt_dropped_total", "counter",
       "chunks dropped because their bytes, header or record on the media were damaged",
       [](const TierStats& t) -> std::uint64_t { return t.corrupt_dropped; }},
  };
  for (const TierCounter& c : tier_counters) {
    w.Help(c.name, c.type, c.help);
    for (const TierStats& t : st.tiers) w.Sample(c.name, Label("tier", t.name), c.get(t));
  }
  w.Help("cxlkv_tier_recovery_seconds", "gauge", "time the tier took to open and recover");
  for (const TierStats& t : st.tiers) {
    w.Sample("cxlkv_tier_recovery_seconds", Label("tier", t.name), t.recovery_seconds);
  }
  w.Help("cxlkv_store_misses_total", "counter", "store reads that found no chunk");
  w.Sample("cxlkv_store_misses_total", "", st.misses);
  w.Help("cxlkv_store_index_entries", "gauge", "chunks in the store's index");
  w.Sample("cxlkv_store_index_entries", "", static_cast<std::uint64_t>(st.index_entries));
  const std::pair<const char*, const LatencySummary*> store_latencies[] = {
      {"put", &st.put_latency}, {"get", &st.get_latency}, {"batch_get", &st.batch_get_latency}};
  w.Help("cxlkv_store_latency_seconds", "summary", "store operation latency (within 12.5%)");
  for (const auto& [op, l] : store_latencies) {
    const std::string lop = Label("op", op);
    w.Sample("cxlkv_store_latency_seconds", lop + ",quantile=\"0.5\"", double(l->p50_ns) * 1e-9);
    w.Sample("cxlkv_store_latency_seconds", lop + ",quantile=\"0.99\"", double(l->p99_ns) * 1e-9);
    w.Sample("cxlkv_store_latency_seconds_sum", lop,
             l->mean_ns * static_cast<double>(l->count) * 1e-9);
    w.Sample("cxlkv_store_latency_seconds_count", lop, l->count);
  }
  return w.Take();
}

}  // namespace cxlkv::serve
