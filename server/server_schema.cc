#include "server/server_schema.h"

#include <chrono>
#include <cstdint>

namespace cxlkv::serve {
namespace {

using options::CheckedValue;
using options::OptionSpec;
using options::OptionValue;
using T = options::OptionType;

std::optional<OptionValue> Int(std::int64_t n) { return OptionValue{n}; }
std::optional<OptionValue> Text(const std::string& s) { return OptionValue{s}; }

constexpr std::int64_t kDayMs = std::int64_t{24} * 3600 * 1000;
constexpr std::int64_t kMaxConnections = std::int64_t{1} << 20;

// Setters and getters of the millisecond and byte-count fields, one instance per field.
template <std::chrono::milliseconds ServerOptions::*Field>
void SetMs(ServerOptions& s, const CheckedValue& v) {
  s.*Field = std::chrono::milliseconds(v.integer);
}
template <std::chrono::milliseconds ServerOptions::*Field>
std::optional<OptionValue> GetMs(const ServerOptions& s) {
  return Int((s.*Field).count());
}
template <std::size_t ServerOptions::*Field>
void SetBytes(ServerOptions& s, const CheckedValue& v) {
  s.*Field = static_cast<std::size_t>(v.bytes);
}
template <std::size_t ServerOptions::*Field>
std::optional<OptionValue> GetBytes(const ServerOptions& s) {
  return Int(static_cast<std::int64_t>(s.*Field));
}

const OptionSpec<ServerOptions> kServer[] = {
    {{"host", T::kString, "TCP address to bind (\"\" for none)"},
     [](ServerOptions& s, const CheckedValue& v) { s.host = v.text; },
     [](const ServerOptions& s) { return Text(s.host); }},
    {{"port", T::kInteger, "TCP port (0: a free one, printed)", 0, 65535},
     [](ServerOptions& s, const CheckedValue& v) { s.port = static_cast<int>(v.integer); },
     [](const ServerOptions& s) { return Int(s.port); }},
    {{.key = "unix_socket",
      .type = T::kString,
      .doc = "also listen on this Unix domain socket",
      .flag = "unix"},
     [](ServerOptions& s, const CheckedValue& v) { s.unix_path = v.text; },
     [](const ServerOptions& s) { return Text(s.unix_path); }},
    {{"threads", T::kInteger, "event-loop threads", 1, 64},
     [](ServerOptions& s, const CheckedValue& v) { s.threads = static_cast<unsigned>(v.integer); },
     [](const ServerOptions& s) { return Int(s.threads); }},
    {{"receive_buffer", T::kBytes,
      "SO_RCVBUF of each connection: a fixed receive window, so that a new connection's PUTs "
      "start at full speed (default: 4M where net.core.rmem_max allows it, else the kernel's "
      "autotuning; 0: autotuning; above rmem_max: autotuning, with a warning)",
      0, std::int64_t{1} << 30},
     [](ServerOptions& s, const CheckedValue& v) { s.receive_buffer = static_cast<int>(v.bytes); },
     [](const ServerOptions& s) -> std::optional<OptionValue> {
       if (s.receive_buffer < 0) return std::nullopt;  // chosen at start from rmem_max
       return Int(s.receive_buffer);
     }},
    {{"max_payload", T::kBytes, "the largest PUT accepted"},
     SetBytes<&ServerOptions::max_payload>,
     GetBytes<&ServerOptions::max_payload>},
    {{"metrics_port", T::kInteger,
      "serve Prometheus metrics over HTTP on this port (0: a free one; -1: none)", -1, 65535},
     [](ServerOptions& s, const CheckedValue& v) { s.metrics_port = static_cast<int>(v.integer); },
     [](const ServerOptions& s) { return Int(s.metrics_port); }},
    {{"metrics_host", T::kString, "address the metrics endpoint binds"},
     [](ServerOptions& s, const CheckedValue& v) { s.metrics_host = v.text; },
     [](const ServerOptions& s) { return Text(s.metrics_host); }},
    {{"quiet", T::kBool, "log only bad input and cut connections"},
     [](ServerOptions& s, const CheckedValue& v) { s.quiet = v.flag; },
     [](const ServerOptions& s) { return std::optional<OptionValue>(OptionValue{s.quiet}); }},
    {{"request_timeout_ms", T::kInteger,
      "a request's header and PUT payload must arrive within this (0: no deadline); a stalled "
      "PUT is aborted and its slot freed",
      0, kDayMs},
     SetMs<&ServerOptions::request_timeout>,
     GetMs<&ServerOptions::request_timeout>},
    {{"reply_timeout_ms", T::kInteger,
      "a reply must be read within this (0: no deadline); else its chunk is unpinned and the "
      "connection closed",
      0, kDayMs},
     SetMs<&ServerOptions::reply_timeout>,
     GetMs<&ServerOptions::reply_timeout>},
    {{"idle_timeout_ms", T::kInteger,
      "close connections idle this long between requests (0: never; LMCache keeps its "
      "connection open)",
      0, kDayMs},
     SetMs<&ServerOptions::idle_timeout>,
     GetMs<&ServerOptions::idle_timeout>},
    {{"min_transfer_rate", T::kBytes,
      "bytes/s a PUT payload or a reply must average after its first second (0: none)"},
     SetBytes<&ServerOptions::min_transfer_rate>,
     GetBytes<&ServerOptions::min_transfer_rate>},
    {{.key = "max_reserved_bytes",
      .type = T::kBytes,
      .doc = "slot bytes that PUTs being received may reserve at once; a PUT over it is "
             "dropped (0: a quarter of the first tier; past half of it, only for connections "
             "that have already moved half as many bytes)",
      .flag = "max-reserved"},
     SetBytes<&ServerOptions::max_reserved_bytes>,
     GetBytes<&ServerOptions::max_reserved_bytes>},
    {{"max_reply_bytes", T::kBytes,
      "bytes that unread replies (pinned chunks, LIST copies) may hold at once; a GET over it "
      "is answered as a miss (0: a quarter of the first tier; past half of it, as for "
      "max_reserved_bytes)"},
     SetBytes<&ServerOptions::max_reply_bytes>,
     GetBytes<&ServerOptions::max_reply_bytes>},
    {{"max_connections", T::kInteger,
      "connections (lm://) at once (lowered to fit ulimit -n); at the limit a new one replaces "
      "one idle for over 1 s, else is closed",
      1, kMaxConnections},
     [](ServerOptions& s, const CheckedValue& v) {
       s.max_connections = static_cast<unsigned>(v.integer);
     },
     [](const ServerOptions& s) { return Int(s.max_connections); }},
    {{"max_connections_per_peer", T::kInteger,
      "connections (lm://) per client address or Unix uid (0: no limit)", 0, kMaxConnections},
     [](ServerOptions& s, const CheckedValue& v) {
       s.max_connections_per_peer = static_cast<unsigned>(v.integer);
     },
     [](const ServerOptions& s) { return Int(s.max_connections_per_peer); }},
    {{"max_list_bytes", T::kBytes, "LIST replies are cut at this size"},
     SetBytes<&ServerOptions::max_list_bytes>,
     GetBytes<&ServerOptions::max_list_bytes>},
    {{.key = "log_lines_per_second",
      .type = T::kInteger,
      .doc = "log lines per second; more are dropped and counted (0: no limit)",
      .max = 1000000,
      .flag = "log-rate"},
     [](ServerOptions& s, const CheckedValue& v) {
       s.log_lines_per_second = static_cast<double>(v.integer);
     },
     [](const ServerOptions& s) { return Int(static_cast<std::int64_t>(s.log_lines_per_second)); }},
};

}  // namespace

options::Schema<ServerOptions> ServerSchema() { return kServer; }

}  // namespace cxlkv::serve
