#include "server/config.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "options/store_schema.h"
#include "server/server_schema.h"

namespace cxlkv::serve {
namespace {

using options::NamedValue;
using options::OptionValue;

Result<OptionValue> ValueOf(const toml::node& n, const std::string& name) {
  if (const auto* b = n.as_boolean()) return OptionValue{**b};
  if (const auto* i = n.as_integer()) return OptionValue{**i};
  if (const auto* d = n.as_floating_point()) return OptionValue{**d};
  if (const auto* s = n.as_string()) return OptionValue{**s};
  if (const auto* a = n.as_array()) {
    std::vector<OptionValue> list;
    for (const toml::node& e : *a) {
      CXLKV_ASSIGN_OR_RETURN(OptionValue v,
                             ValueOf(e, name + "[" + std::to_string(list.size()) + "]"));
      list.push_back(std::move(v));
    }
    return OptionValue{std::move(list)};
  }
  return Status::InvalidArgument(name + " must be a value, not a table");
}

// One TOML table through its schema; `where` names it in errors ("server", "tier[0]").
template <typename Target>
Status ApplyTable(options::Schema<Target> schema, const toml::table& t, const std::string& where,
                  Target& target) {
  std::vector<NamedValue> values;
  for (const auto& [k, v] : t) {
    const std::string name = where + "." + std::string(k.str());
    CXLKV_ASSIGN_OR_RETURN(OptionValue value, ValueOf(v, name));
    values.push_back({std::string(k.str()), std::move(value), name});
  }
  return options::Apply(schema, values, where + ".", target);
}

Status ParseRoot(const toml::table& root, ServeConfig& c) {
  for (const auto& [k, v] : root) {
    const std::string_view key = k.str();
    if (key == "tier") {
      if (!v.is_array_of_tables()) {
        return Status::InvalidArgument("tier must be a list of tables: write [[tier]]");
      }
      c.store.tiers.clear();
      for (const toml::node& n : *v.as_array()) {
        TierOptions tier;
        CXLKV_RETURN_IF_ERROR(ApplyTable(options::TierSchema(), *n.as_table(),
                                         "tier[" + std::to_string(c.store.tiers.size()) + "]",
                                         tier));
        c.store.tiers.push_back(std::move(tier));
      }
      continue;
    }
    if (key != "server" && key != "store" && key != "spill") {
      return Status::InvalidArgument("unknown key " + std::string(key) +
                                     " (known: [server], [store], [[tier]], [spill])");
    }
    if (!v.is_table()) return Status::InvalidArgument("[" + std::string(key) + "] must be a table");
    const toml::table& t = *v.as_table();
    const std::string where(key);
    if (key == "server") CXLKV_RETURN_IF_ERROR(ApplyTable(ServerSchema(), t, where, c.server));
    if (key == "store")
      CXLKV_RETURN_IF_ERROR(ApplyTable(options::StoreSchema(), t, where, c.store));
    if (key == "spill")
      CXLKV_RETURN_IF_ERROR(ApplyTable(options::SpillSchema(), t, where, c.store.spill));
  }
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

std::string DescribeServeConfig(const ServeConfig& config) {
  return "[server]\n" + options::Describe(ServerSchema(), config.server) + "\n" +
         options::DescribeStoreOptions(config.store);
}

}  // namespace cxlkv::serve
