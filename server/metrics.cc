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
      CounterSample(w, name, op.labels + sep + "quantile=\"" + std::string(c.info.quantile) + "\"",
                    c.info, c.read(*op.stats));
    }
    const LatencySummary& l = *op.stats;
    w.Sample(name + "_sum", op.labels, l.mean_ns * static_cast<double>(l.count) * 1e-9);
    w.Sample(name + "_count", op.labels, l.count);
  }
}

// A family for each row of Counters<Stats>() (the quantile rows make one summary), with a
// sample for each of items.
template <typename Stats>
void Families(Writer& w, std::span<const Labelled<Stats>> items) {
  std::string_view summary;  // the quantiles' family, once written
  for (const Counter<Stats>& c : Counters<Stats>()) {
    if (c.info.type == CounterType::kQuantile) {
      if constexpr (std::is_same_v<Stats, LatencySummary>) {
        if (c.info.metric != summary) LatencySummaries(w, c.info, items);
        summary = c.info.metric;
      }
      continue;
    }
    w.Help(c.info.metric, c.info.type == CounterType::kCounter ? "counter" : "gauge",
           c.info.help);
    for (const Labelled<Stats>& item : items) {
      CounterSample(w, c.info.metric, item.labels, c.info, c.read(*item.stats));
    }
  }
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

  return w.Take() + RenderStorePrometheus(store.Stats());
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
