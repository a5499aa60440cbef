#include "server/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <initializer_list>
#include <optional>
#include <sstream>

#include "util/format.h"

namespace cxlkv::serve {
namespace {

// Reads typed values out of one TOML table and remembers which keys it knew, so that
// anything else (a typo) is reported.
class Table {
 public:
  Table(const toml::table& t, std::string where) : t_(t), where_(std::move(where)) {}

  Status Unknown(std::initializer_list<std::string_view> known) const {
    for (const auto& [k, v] : t_) {
      bool ok = false;
      for (std::string_view name : known) ok = ok || k.str() == name;
      if (!ok) return Status::InvalidArgument("unknown key " + Name(k.str()));
    }
    return Status::Ok();
  }
  Status String(std::string_view key, std::string& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_string()) return Status::InvalidArgument(Name(key) + " must be a string");
    out = **n->as_string();
    return Status::Ok();
  }
  Status Bool(std::string_view key, bool& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_boolean()) return Status::InvalidArgument(Name(key) + " must be true or false");
    out = **n->as_boolean();
    return Status::Ok();
  }
  template <typename Int>
  Status Integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return Status::Ok();
    if (!n->is_integer()) return Status::InvalidArgument(Name(key) + " must be an integer");
    const std::int64_t v = **n->as_integer();
    if (v < min || v > max) {
      return Status::InvalidArgument(Name(key) + " is " + std::to_string(v) + "; it must be " +
                                     std::to_string(min) + " to " + std::to_string(max));
    }
    out = static_cast<Int>(v);
    return Status::Ok();
  }
  Status Fraction(std::string_view key, std::optional<double>& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return Status::Ok();
    const std::optional<double> v = n->value<double>();  // integers convert too
    if (!v || *v < 0 || *v > 1) return Status::InvalidArgument(Name(key) + " must be 0 to 1");
    out = *v;
    return Status::Ok();
  }
  template <typename Size>
  Status Bytes(std::string_view key, Size& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return Status::Ok();
    return BytesOf(*n, Name(key), out);
  }
  template <typename Size>
  static Status BytesOf(const toml::node& n, const std::string& name, Size& out) {
    if (n.is_integer() && **n.as_integer() >= 0) {
      out = static_cast<Size>(**n.as_integer());
      return Status::Ok();
    }
    if (n.is_string()) {
      Result<std::uint64_t> v = ParseBytes(**n.as_string());
      if (!v.ok()) return Status::InvalidArgument(name + ": " + v.status().message());
      out = static_cast<Size>(*v);
      return Status::Ok();
    }
    return Status::InvalidArgument(name + " must be a size: bytes, or a string like \"2M\"");
  }
  std::string Name(std::string_view key) const {
    return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
  }

 private:
  const toml::table& t_;
  std::string where_;
};

Status ParseServer(const Table& t, ServerOptions& s) {
  CXLKV_RETURN_IF_ERROR(t.Unknown({"host", "port", "unix_socket", "threads", "max_payload",
                                   "metrics_port", "metrics_host", "request_timeout_ms",
                                   "reply_timeout_ms", "idle_timeout_ms", "min_transfer_rate",
                                   "max_reserved_bytes", "max_reply_bytes", "max_connections",
                                   "max_connections_per_peer", "max_list_bytes",
                                   "log_lines_per_second"}));
  CXLKV_RETURN_IF_ERROR(t.String("host", s.host));
  CXLKV_RETURN_IF_ERROR(t.Integer("port", s.port, 0, 65535));
  CXLKV_RETURN_IF_ERROR(t.String("unix_socket", s.unix_path));
  CXLKV_RETURN_IF_ERROR(t.Integer("threads", s.threads, 1, 64));
  CXLKV_RETURN_IF_ERROR(t.Bytes("max_payload", s.max_payload));
  CXLKV_RETURN_IF_ERROR(t.Integer("metrics_port", s.metrics_port, -1, 65535));
  CXLKV_RETURN_IF_ERROR(t.String("metrics_host", s.metrics_host));
  for (auto [key, out] : {std::pair{"request_timeout_ms", &s.request_timeout},
                          std::pair{"reply_timeout_ms", &s.reply_timeout},
                          std::pair{"idle_timeout_ms", &s.idle_timeout}}) {
    std::int64_t ms = out->count();
    CXLKV_RETURN_IF_ERROR(t.Integer(key, ms, 0, std::int64_t{24} * 3600 * 1000));
    *out = std::chrono::milliseconds(ms);
  }
  CXLKV_RETURN_IF_ERROR(t.Bytes("min_transfer_rate", s.min_transfer_rate));
  CXLKV_RETURN_IF_ERROR(t.Bytes("max_reserved_bytes", s.max_reserved_bytes));
  CXLKV_RETURN_IF_ERROR(t.Bytes("max_reply_bytes", s.max_reply_bytes));
  CXLKV_RETURN_IF_ERROR(t.Integer("max_connections", s.max_connections, 1, 1 << 20));
  CXLKV_RETURN_IF_ERROR(t.Integer("max_connections_per_peer", s.max_connections_per_peer, 0, 1 << 20));
  CXLKV_RETURN_IF_ERROR(t.Bytes("max_list_bytes", s.max_list_bytes));
  std::int64_t rate = static_cast<std::int64_t>(s.log_lines_per_second);
  CXLKV_RETURN_IF_ERROR(t.Integer("log_lines_per_second", rate, 0, 1000000));
  s.log_lines_per_second = static_cast<double>(rate);
  return Status::Ok();
}

Status ParseStore(const Table& t, const toml::table& raw, StoreOptions& o) {
  CXLKV_RETURN_IF_ERROR(t.Unknown({"slab_size", "chunk_sizes", "ttl_seconds", "copy_threads"}));
  CXLKV_RETURN_IF_ERROR(t.Bytes("slab_size", o.slab_size));
  std::int64_t ttl = o.ttl.count();
  CXLKV_RETURN_IF_ERROR(t.Integer("ttl_seconds", ttl, 0, INT32_MAX));
  o.ttl = std::chrono::seconds(ttl);
  CXLKV_RETURN_IF_ERROR(t.Integer("copy_threads", o.copy_threads, 1, 64));
  if (const toml::node* n = raw.get("chunk_sizes")) {
    if (!n->is_array()) return Status::InvalidArgument(t.Name("chunk_sizes") + " must be a list");
    o.chunk_sizes.clear();
    std::size_t i = 0;
    for (const toml::node& e : *n->as_array()) {
      std::size_t v = 0;
      CXLKV_RETURN_IF_ERROR(
          Table::BytesOf(e, t.Name("chunk_sizes") + "[" + std::to_string(i++) + "]", v));
      o.chunk_sizes.push_back(v);
    }
  }
  return Status::Ok();
}

Status ParseTier(const Table& t, TierOptions& tier) {
  CXLKV_RETURN_IF_ERROR(t.Unknown({"name", "source", "capacity", "eviction", "high_watermark",
                                   "low_watermark", "promote_after_hits", "copy", "durability",
                                   "format", "flush_interval_ms"}));
  CXLKV_RETURN_IF_ERROR(t.String("name", tier.name));
  CXLKV_RETURN_IF_ERROR(t.String("source", tier.source_spec));
  if (tier.source_spec.empty()) return Status::InvalidArgument(t.Name("source") + " is required");
  CXLKV_RETURN_IF_ERROR(t.Bytes("capacity", tier.capacity));
  if (tier.capacity == 0) return Status::InvalidArgument(t.Name("capacity") + " is required");
  CXLKV_RETURN_IF_ERROR(t.String("eviction", tier.eviction));
  CXLKV_RETURN_IF_ERROR(t.Fraction("high_watermark", tier.high_watermark));
  CXLKV_RETURN_IF_ERROR(t.Fraction("low_watermark", tier.low_watermark));
  int promote = -1;
  CXLKV_RETURN_IF_ERROR(t.Integer("promote_after_hits", promote, 0, 255));
  if (promote >= 0) tier.promote_after_hits = promote;
  CXLKV_RETURN_IF_ERROR(t.String("copy", tier.copy));
  CXLKV_RETURN_IF_ERROR(t.String("durability", tier.durability));
  CXLKV_RETURN_IF_ERROR(t.Bool("format", tier.format));
  int flush_ms = -1;
  CXLKV_RETURN_IF_ERROR(t.Integer("flush_interval_ms", flush_ms, 1, 3600000));
  if (flush_ms > 0) tier.flush_interval = std::chrono::milliseconds(flush_ms);
  return Status::Ok();
}

Status ParseSpill(const Table& t, SpillOptions& s) {
  CXLKV_RETURN_IF_ERROR(t.Unknown({"path", "capacity", "segment_size", "queue_depth", "direct_io",
                                   "eviction", "promote_after_hits"}));
  CXLKV_RETURN_IF_ERROR(t.String("path", s.path));
  if (s.path.empty()) return Status::InvalidArgument(t.Name("path") + " is required");
  CXLKV_RETURN_IF_ERROR(t.Bytes("capacity", s.capacity));
  CXLKV_RETURN_IF_ERROR(t.Bytes("segment_size", s.segment_size));
  CXLKV_RETURN_IF_ERROR(t.Integer("queue_depth", s.queue_depth, 1, 4096));
  CXLKV_RETURN_IF_ERROR(t.Bool("direct_io", s.direct_io));
  CXLKV_RETURN_IF_ERROR(t.String("eviction", s.eviction));
  CXLKV_RETURN_IF_ERROR(t.Integer("promote_after_hits", s.promote_after_hits, 0, 255));
  return Status::Ok();
}

Status ParseRoot(const toml::table& root, ServeConfig& c) {
  CXLKV_RETURN_IF_ERROR(Table(root, "").Unknown({"server", "store", "tier", "spill"}));
  auto table_of = [&](std::string_view key) -> Result<const toml::table*> {
    const toml::node* n = root.get(key);
    if (n == nullptr) return static_cast<const toml::table*>(nullptr);
    if (!n->is_table()) return Status::InvalidArgument("[" + std::string(key) + "] must be a table");
    return n->as_table();
  };
  CXLKV_ASSIGN_OR_RETURN(const toml::table* server, table_of("server"));
  if (server != nullptr) CXLKV_RETURN_IF_ERROR(ParseServer(Table(*server, "server"), c.server));
  CXLKV_ASSIGN_OR_RETURN(const toml::table* store, table_of("store"));
  if (store != nullptr) CXLKV_RETURN_IF_ERROR(ParseStore(Table(*store, "store"), *store, c.store));
  if (const toml::node* tiers = root.get("tier")) {
    if (!tiers->is_array_of_tables()) {
      return Status::InvalidArgument("tier must be a list of tables: write [[tier]]");
    }
    c.store.tiers.clear();
    std::size_t i = 0;
    for (const toml::node& n : *tiers->as_array()) {
      TierOptions tier;
      CXLKV_RETURN_IF_ERROR(ParseTier(Table(*n.as_table(), "tier[" + std::to_string(i++) + "]"), tier));
      c.store.tiers.push_back(std::move(tier));
    }
  }
  CXLKV_ASSIGN_OR_RETURN(const toml::table* spill, table_of("spill"));
  if (spill != nullptr) CXLKV_RETURN_IF_ERROR(ParseSpill(Table(*spill, "spill"), c.store.spill));
  return Status::Ok();
}

}  // namespace

Result<ServeConfig> ParseServeConfig(std::string_view text, const std::string& origin,
                                     ServeConfig defaults) {
  // toml++ reports syntax errors by exception; none crosses this function.
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Status::InvalidArgument(origin + ": " + std::string(e.description()) + " at " +
                                   where.str());
  }
  Status s = ParseRoot(root, defaults);
  if (!s.ok()) return s.WithContext(origin);
  return defaults;
}

Result<ServeConfig> LoadServeConfig(const std::string& path, ServeConfig defaults) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open config file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IOError("cannot read config file " + path);
  return ParseServeConfig(text.str(), path, std::move(defaults));
}

}  // namespace cxlkv::serve
