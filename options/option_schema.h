// OptionSchema: a table that describes each option of an options struct once (its key, type,
// range, doc, and how it reads and sets the struct's field), so that every way of giving
// options (the TOML file of `cxlkv serve`, its flags, the Python binding, LMCache's settings)
// parses through the same table: one key list, one set of ranges, one wording of errors.
//
// A route reads its own syntax (TOML tables, "key=value" items, Python dicts) into OptionValues
// and hands them to Apply, which refuses unknown keys by name, converts and range-checks each
// value, and sets the field. Text routes (flags, strings from LMCache's YAML) give strings; the
// schema parses them for the option's type, so "3" is accepted for an integer and "2M" for a size.
//
// The tables themselves live beside the structs they set: options/store_schema.h (store, tier,
// spill) and server/server_schema.h (the lm:// server).
//
// Thread-safety: functions only; all are thread-safe. Tables are constant.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cxlkv/status.h"

namespace cxlkv::options {

enum class OptionType {
  kString,
  kBool,
  kInteger,   // a whole number within [min, max]
  kBytes,     // a size: an integer (bytes) or a string with binary units ("2M", "1.5GiB")
  kFraction,  // a number from 0 to 1
  kSizeList,  // sizes: a list, or a string "2M,4M"
};

// A value as a route read it, before the schema converts it for an option.
struct OptionValue {
  std::variant<bool, std::int64_t, double, std::string, std::vector<OptionValue>> v;
};

// A value converted to its option's type and checked against its range: the one member the
// type names is set.
struct CheckedValue {
  std::string text;                  // kString
  bool flag = false;                 // kBool
  std::int64_t integer = 0;          // kInteger
  std::uint64_t bytes = 0;           // kBytes
  double fraction = 0;               // kFraction
  std::vector<std::uint64_t> sizes;  // kSizeList
};

// What a table says of an option, apart from how it reaches the struct.
struct OptionInfo {
  std::string_view key;
  OptionType type;
  std::string_view doc;
  std::int64_t min = 0;  // kInteger: the range; kBytes: min and, when max > 0, max
  std::int64_t max = 0;
  bool required = false;
  // kString: the values accepted, '|'-separated; empty: any (the store checks).
  std::string_view choices = {};
  // The command-line flag, where it is not "--" and the key with dashes ("--unix" for
  // unix_socket): the name `cxlkv serve` had before the schema, kept so scripts still work.
  std::string_view flag = {};
};

// One row: the option and its field. `get` gives the field's value (nullopt while it is left
// to the store to choose), for help text and for DescribeOptions.
template <typename Target>
struct OptionSpec {
  OptionInfo info;
  void (*set)(Target&, const CheckedValue&);
  std::optional<OptionValue> (*get)(const Target&);
};

template <typename Target>
using Schema = std::span<const OptionSpec<Target>>;

// One key and its value, as a route read them; `name` is what errors call it ("tier[0].copy",
// "--tier dram,1G: copy", "cxlkv.slab_size"): the key as the user wrote it, where it was.
struct NamedValue {
  std::string key;
  OptionValue value;
  std::string name;
};

// Converts and checks `value` for `info`; errors name `name` and say what was expected.
Result<CheckedValue> Check(const OptionInfo& info, const OptionValue& value,
                           const std::string& name);

// "key=value" (an item of a flag) as a NamedValue with a string value, named
// "`where`: key".
Result<NamedValue> ParseKeyValue(std::string_view item, const std::string& where);

// Whether `value` is one of info.choices ('|'-separated).
bool IsChoice(const OptionInfo& info, std::string_view value);

// "unknown key NAME (known: a, b, c)".
Status UnknownKey(const std::string& name, std::span<const std::string_view> known);
// "NAME is required".
Status Required(const std::string& name);

// The value as TOML writes it: true, 42, 0.5, "text", [1, 2].
std::string ToToml(const OptionValue& value);

// One line per option: key, type and range, default (from `defaults`), doc.
std::string HelpLines(std::span<const OptionInfo> infos,
                      std::span<const std::optional<OptionValue>> defaults);

template <typename Target>
std::vector<std::string_view> Keys(Schema<Target> schema) {
  std::vector<std::string_view> keys;
  for (const OptionSpec<Target>& o : schema) keys.push_back(o.info.key);
  return keys;
}

template <typename Target>
const OptionSpec<Target>* Find(Schema<Target> schema, std::string_view key) {
  for (const OptionSpec<Target>& o : schema) {
    if (o.info.key == key) return &o;
  }
  return nullptr;
}

// Sets every value on `target` in order, then checks that the required options were given.
// `prefix` goes before the name of a missing required key ("tier[0]." -> "tier[0].source").
template <typename Target>
Status Apply(Schema<Target> schema, std::span<const NamedValue> values, const std::string& prefix,
             Target& target) {
  std::vector<std::string_view> given;
  for (const NamedValue& nv : values) {
    const OptionSpec<Target>* spec = Find(schema, nv.key);
    if (spec == nullptr) return UnknownKey(nv.name, Keys(schema));
    CXLKV_ASSIGN_OR_RETURN(CheckedValue checked, Check(spec->info, nv.value, nv.name));
    spec->set(target, checked);
    given.push_back(spec->info.key);
  }
  for (const OptionSpec<Target>& o : schema) {
    if (!o.info.required) continue;
    bool found = false;
    for (std::string_view g : given) found = found || g == o.info.key;
    if (!found) {
      return Required(prefix + std::string(o.info.key));
    }
  }
  return Status::Ok();
}

// The options of `target` that are set, as TOML "key = value" lines.
template <typename Target>
std::string Describe(Schema<Target> schema, const Target& target) {
  std::string out;
  for (const OptionSpec<Target>& o : schema) {
    if (std::optional<OptionValue> v = o.get(target)) {
      out += std::string(o.info.key) + " = " + ToToml(*v) + "\n";
    }
  }
  return out;
}

// Help for every option of the table, defaults taken from a default-constructed Target.
template <typename Target>
std::string Help(Schema<Target> schema) {
  std::vector<OptionInfo> infos;
  std::vector<std::optional<OptionValue>> defaults;
  const Target fresh{};
  for (const OptionSpec<Target>& o : schema) {
    infos.push_back(o.info);
    defaults.push_back(o.get(fresh));
  }
  return HelpLines(infos, defaults);
}

}  // namespace cxlkv::options
