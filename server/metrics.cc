#include "server/metrics.h"

#include <cinttypes>
#include <cstdio>
#include <span>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "cxlkv/store_counters.h"

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

using S = ServerStats;
constexpr CounterType kCounter = CounterType::kCounter;
constexpr CounterType kGauge = CounterType::kGauge;
constexpr CounterUnit kCount = CounterUnit::kCount;
constexpr CounterUnit kBytes = CounterUnit::kBytes;
// Rows of one family follow one another; its first row's help is the family's.
constexpr Counter<ServerStats> kServerCounters[] = {
    {{"requests_put", "PUT requests", "cxlkv_requests_total", kCounter, kCount,
      "lm:// requests by command", "command=\"PUT\""}, ReadField<&S::requests_put>},
    {{"requests_get", "GET requests", "cxlkv_requests_total", kCounter, kCount, "",
      "command=\"GET\""}, ReadField<&S::requests_get>},
    {{"requests_exist", "EXIST requests", "cxlkv_requests_total", kCounter, kCount, "",
      "command=\"EXIST\""}, ReadField<&S::requests_exist>},
    {{"requests_list", "LIST requests", "cxlkv_requests_total", kCounter, kCount, "",
      "command=\"LIST\""}, ReadField<&S::requests_list>},
    {{"requests_health", "HEALTH requests", "cxlkv_requests_total", kCounter, kCount, "",
      "command=\"HEALTH\""}, ReadField<&S::requests_health>},
    {{"get_hits", "GET hits", "cxlkv_get_total", kCounter, kCount, "lm:// GETs by result",
      "result=\"hit\""}, ReadField<&S::get_hits>},
    {{"get_misses", "GET misses", "cxlkv_get_total", kCounter, kCount, "", "result=\"miss\""},
     ReadField<&S::get_misses>},
    {{"gets_over_budget", "GETs over budget", "cxlkv_get_total", kCounter, kCount, "",
      "result=\"over_budget\""}, ReadField<&S::gets_over_budget>},
    {{"gets_pinned_off_loop", "GETs pinned off the loop", "cxlkv_gets_pinned_off_loop_total",
      kCounter, kCount, "lm:// GETs pinned by a reader thread: their chunk was in a tier read through I/O"},
     ReadField<&S::gets_pinned_off_loop>},
    {{"exist_hits", "EXIST hits", "cxlkv_exist_total", kCounter, kCount, "lm:// EXISTs by result",
      "result=\"hit\""}, ReadField<&S::exist_hits>},
    {{"exist_misses", "EXIST misses", "cxlkv_exist_total", kCounter, kCount, "", "result=\"miss\""},
     ReadField<&S::exist_misses>},
    {{"puts_stored", "PUTs stored", "cxlkv_put_total", kCounter, kCount, "lm:// PUTs by result",
      "result=\"stored\""}, ReadField<&S::puts_stored>},
    {{"puts_already_stored", "PUTs already stored", "cxlkv_put_total", kCounter, kCount, "",
      "result=\"already_stored\""}, ReadField<&S::puts_already_stored>},
    {{"puts_refused", "PUTs refused", "cxlkv_put_total", kCounter, kCount, "",
      "result=\"refused\""}, ReadField<&S::puts_refused>},
    {{"puts_over_budget", "PUTs over budget", "cxlkv_put_total", kCounter, kCount, "",
      "result=\"over_budget\""}, ReadField<&S::puts_over_budget>},
    {{"bytes_received", "bytes received", "cxlkv_network_bytes_total", kCounter, kBytes,
      "payload bytes over lm:// connections", "direction=\"in\""},
     ReadField<&S::bytes_received>},
    {{"bytes_sent", "bytes sent", "cxlkv_network_bytes_total", kCounter, kBytes, "",
      "direction=\"out\""}, ReadField<&S::bytes_sent>},
    {{"connections_accepted", "connections accepted", "cxlkv_connections_accepted_total",
      kCounter, kCount, "lm:// connections accepted"}, ReadField<&S::connections_accepted>},
    {{"connections_open", "connections open", "cxlkv_connections_open", kGauge, kCount,
      "lm:// connections open now"}, ReadField<&S::connections_open>},
    {{"connections_max", "connection limit", "cxlkv_connections_max", kGauge, kCount,
      "the connection limit in force"}, ReadField<&S::max_connections>},
    {{"connections_closed_bad_input", "closed for bad input",
      "cxlkv_connections_closed_bad_input_total", kCounter, kCount,
      "connections closed for a malformed request or a payload cut short"},
     ReadField<&S::connections_closed_bad_input>},
    // Bad input again, under the family that counts every reason.
    {{"connections_closed_bad_input_reason", "closed (bad input)",
      "cxlkv_connections_closed_total", kCounter, kCount,
      "lm:// connections the server closed, by reason (bad input is counted above too)",
      "reason=\"bad_input\""}, ReadField<&S::connections_closed_bad_input>},
    {{"connections_closed_timeout", "closed (timeout)", "cxlkv_connections_closed_total",
      kCounter, kCount, "", "reason=\"timeout\""}, ReadField<&S::connections_closed_timeout>},
    {{"connections_closed_idle", "closed (idle)", "cxlkv_connections_closed_total", kCounter,
      kCount, "", "reason=\"idle\""}, ReadField<&S::connections_closed_idle>},
    {{"connections_replaced", "closed (replaced)", "cxlkv_connections_closed_total", kCounter,
      kCount, "", "reason=\"replaced\""}, ReadField<&S::connections_replaced>},
    {{"connections_refused", "connections refused", "cxlkv_connections_refused_total", kCounter,
      kCount, "lm:// connections closed at once: max_connections or max_connections_per_peer"},
     ReadField<&S::connections_refused>},
    {{"accept_failures", "accept failures", "cxlkv_accept_failures_total", kCounter, kCount,
      "accept() failures (out of descriptors: accepting pauses, backing off)"},
     ReadField<&S::accept_failures>},
    {{"reserved_bytes", "reserved by PUTs", "cxlkv_put_reserved_bytes", kGauge, kBytes,
      "slot bytes reserved by PUTs being received"}, ReadField<&S::reserved_bytes>},
    {{"max_reserved_bytes", "max reserved", "cxlkv_put_reserved_bytes_max", kGauge, kBytes,
      "max_reserved_bytes"}, ReadField<&S::max_reserved_bytes>},
    {{"reply_bytes", "held by replies", "cxlkv_reply_held_bytes", kGauge, kBytes,
      "bytes held by replies not yet sent: pinned chunks and LIST copies"},
     ReadField<&S::reply_bytes>},
    {{"max_reply_bytes", "max held", "cxlkv_reply_held_bytes_max", kGauge, kBytes,
      "max_reply_bytes"}, ReadField<&S::max_reply_bytes>},
    {{"lists_truncated", "LISTs truncated", "cxlkv_list_total", kCounter, kCount,
      "LIST replies cut at max_list_bytes or refused", "result=\"truncated\""},
     ReadField<&S::lists_truncated>},
    {{"lists_over_budget", "LISTs over budget", "cxlkv_list_total", kCounter, kCount, "",
      "result=\"over_budget\""}, ReadField<&S::lists_over_budget>},
    {{"log_lines_dropped", "log lines dropped", "cxlkv_log_lines_dropped_total", kCounter,
      kCount, "log lines dropped: over the log rate, or stderr not keeping up"},
     ReadField<&S::log_lines_dropped>},
    {{"metrics_clients_dropped", "metrics clients dropped",
      "cxlkv_metrics_clients_dropped_total", kCounter, kCount,
      "metrics requests closed unanswered: too slow, or too many at once"},
     ReadField<&S::metrics_clients_dropped>},
};

// One struct's numbers, with the labels that say whose they are (`tier="dram"`, or none).
template <typename Stats>
struct Labelled {
  std::string labels;
  const Stats* stats;
};

// A sample in Prometheus' units: seconds for durations, 0 or 1 for a flag.
void CounterSample(Writer& w, std::string_view name, const std::string& labels,
                   const CounterInfo& info, CounterValue value) {
  std::visit(
      [&](auto v) {
        if (info.unit == CounterUnit::kNanoseconds) {
          w.Sample(name, labels, static_cast<double>(v) * 1e-9);
        } else if constexpr (std::is_same_v<decltype(v), bool>) {
          w.Sample(name, labels, std::uint64_t{v});
        } else {
          w.Sample(name, labels, v);
        }
      },
      value);
}

// The latency quantiles as one summary per operation, with its _sum and _count.
void LatencySummaries(Writer& w, const CounterInfo& first,
                      std::span<const Labelled<LatencySummary>> ops) {
  w.Help(first.metric, "summary", first.help);
  const std::string name(first.metric);
  for (const Labelled<LatencySummary>& op : ops) {
    const std::string sep = op.labels.empty() ? "" : ",";
    for (const Counter<LatencySummary>& c : Counters<LatencySummary>()) {
      if (c.info.type != CounterType::kQuantile || c.info.metric != first.metric) continue;
      CounterSample(w, name, op.labels + sep + std::string(c.info.labels), c.info,
                    c.read(*op.stats));
    }
    const LatencySummary& l = *op.stats;
    w.Sample(name + "_sum", op.labels, l.mean_ns * static_cast<double>(l.count) * 1e-9);
    w.Sample(name + "_count", op.labels, l.count);
  }
}

// The families of the rows of Counters<Stats>() (rows of one family follow one another; the
// quantile rows make one summary), with a sample for each of items.
template <typename Stats>
void Families(Writer& w, std::span<const Labelled<Stats>> items) {
  std::string_view summary;  // the quantiles' family, once written
  std::string_view family;   // the family being written: its rows follow one another
  for (const Counter<Stats>& c : Counters<Stats>()) {
    if (c.info.type == CounterType::kQuantile) {
      if constexpr (std::is_same_v<Stats, LatencySummary>) {
        if (c.info.metric != summary) LatencySummaries(w, c.info, items);
        summary = c.info.metric;
      }
      continue;
    }
    if (c.info.metric != family) {
      w.Help(c.info.metric, c.info.type == CounterType::kCounter ? "counter" : "gauge",
             c.info.help);
      family = c.info.metric;
    }
    for (const Labelled<Stats>& item : items) {
      const std::string sep = item.labels.empty() || c.info.labels.empty() ? "" : ",";
      CounterSample(w, c.info.metric, item.labels + sep + std::string(c.info.labels), c.info,
                    c.read(*item.stats));
    }
  }
}

}  // namespace

ServerStats ServerMetrics::Snapshot(const ServerGauges& g) const {
  ServerStats s;
  s.requests_put = requests[Index(Command::kPut)].load();
  s.requests_get = requests[Index(Command::kGet)].load();
  s.requests_exist = requests[Index(Command::kExist)].load();
  s.requests_list = requests[Index(Command::kList)].load();
  s.requests_health = requests[Index(Command::kHealth)].load();
  s.get_hits = get_hits.load();
  s.get_misses = get_misses.load();
  s.gets_over_budget = gets_over_budget.load();
  s.gets_pinned_off_loop = gets_pinned_off_loop.load();
  s.exist_hits = exist_hits.load();
  s.exist_misses = exist_misses.load();
  s.puts_stored = puts_stored.load();
  s.puts_already_stored = puts_already_stored.load();
  s.puts_refused = puts_refused.load();
  s.puts_over_budget = puts_over_budget.load();
  s.bytes_received = bytes_received.load();
  s.bytes_sent = bytes_sent.load();
  s.connections_accepted = connections_accepted.load();
  s.connections_open = connections_open.load();
  s.connections_closed_bad_input = connections_closed_bad_input.load();
  s.connections_closed_timeout = connections_closed_timeout.load();
  s.connections_closed_idle = connections_closed_idle.load();
  s.connections_replaced = connections_replaced.load();
  s.connections_refused = connections_refused.load();
  s.max_connections = g.max_connections;
  s.accept_failures = accept_failures.load();
  s.reserved_bytes = g.reserved_bytes;
  s.max_reserved_bytes = g.max_reserved_bytes;
  s.reply_bytes = g.reply_bytes;
  s.max_reply_bytes = g.max_reply_bytes;
  s.lists_truncated = lists_truncated.load();
  s.lists_over_budget = lists_over_budget.load();
  s.log_lines_dropped = g.log_lines_dropped;
  s.metrics_clients_dropped = metrics_clients_dropped.load();
  return s;
}

std::string ServerStats::ToString() const { return CountersLine("server", *this); }

std::string ServerMetrics::RenderPrometheus(const Store& store, const ServerGauges& g) const {
  return RenderServerPrometheus(g) + RenderStorePrometheus(store.Stats());
}

std::string ServerMetrics::RenderServerPrometheus(const ServerGauges& g) const {
  Writer w;
  const ServerStats stats = Snapshot(g);
  const Labelled<ServerStats> server[] = {{"", &stats}};
  Families<ServerStats>(w, server);
  w.Help("cxlkv_request_duration_seconds", "histogram",
         "lm:// request latency, header received to reply sent (PUT: payload stored)");
  for (Command c : {Command::kPut, Command::kGet, Command::kExist, Command::kList,
                    Command::kHealth}) {
    Histogram(w, "cxlkv_request_duration_seconds", Label("command", CommandName(c)),
              latency[Index(c)]);
  }
  return w.Take();
}

std::string RenderStorePrometheus(const StoreStats& st) {
  Writer w;
  w.Help("cxlkv_tier_info", "gauge", "1 for each tier, labelled with what it is made of");
  for (const TierStats& t : st.tiers) {
    std::string labels;
    for (const TierLabel& label : TierLabels()) {
      labels += (labels.empty() ? "" : ",") +
                Label(label.key == "name" ? "tier" : label.key, t.*label.field);
    }
    w.Sample("cxlkv_tier_info", labels, std::uint64_t{1});
  }
  std::vector<Labelled<TierStats>> tiers;
  for (const TierStats& t : st.tiers) tiers.push_back({Label("tier", t.name), &t});
  Families<TierStats>(w, tiers);
  const Labelled<StoreStats> store[] = {{"", &st}};
  Families<StoreStats>(w, store);
  const Labelled<PrefetchStats> prefetch[] = {{"", &st.prefetch}};
  Families<PrefetchStats>(w, prefetch);
  std::vector<Labelled<LatencySummary>> ops;
  for (const TimedOperation& op : TimedOperations()) {
    ops.push_back({Label("op", op.name), &(st.*op.summary)});
  }
  Families<LatencySummary>(w, ops);
  return w.Take();
}

}  // namespace cxlkv::serve

namespace cxlkv {
template <>
std::span<const Counter<serve::ServerStats>> Counters<serve::ServerStats>() {
  return serve::kServerCounters;
}
}  // namespace cxlkv
