#include "options/option_schema.h"

#include <charconv>
#include <cstdio>

#include "util/format.h"

namespace cxlkv::options {
namespace {

const std::string* AsText(const OptionValue& v) { return std::get_if<std::string>(&v.v); }

std::optional<std::int64_t> ParseInteger(std::string_view text) {
  std::int64_t out = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return out;
}

std::optional<double> ParseNumber(std::string_view text) {
  double out = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return out;
}

Result<std::uint64_t> Size(const OptionValue& v, const std::string& name) {
  if (const auto* n = std::get_if<std::int64_t>(&v.v); n != nullptr && *n >= 0) {
    return static_cast<std::uint64_t>(*n);
  }
  if (const std::string* text = AsText(v)) {
    Result<std::uint64_t> bytes = ParseBytes(*text);
    if (!bytes.ok()) return Status::InvalidArgument(name + ": " + bytes.status().message());
    return bytes;
  }
  return Status::InvalidArgument(name + " must be a size: bytes, or a string like \"2M\"");
}

}  // namespace

Result<CheckedValue> Check(const OptionInfo& info, const OptionValue& value,
                           const std::string& name) {
  CheckedValue out;
  const std::string* text = AsText(value);
  switch (info.type) {
    case OptionType::kString:
      if (text == nullptr) return Status::InvalidArgument(name + " must be a string");
      if (!info.choices.empty() && !IsChoice(info, *text)) {
        std::string list(info.choices);
        for (char& c : list) c = c == '|' ? ',' : c;
        return Status::InvalidArgument(name + " is '" + *text + "'; it must be one of " + list);
      }
      out.text = *text;
      return out;
    case OptionType::kBool:
      if (const bool* b = std::get_if<bool>(&value.v)) {
        out.flag = *b;
      } else if (text != nullptr && (*text == "true" || *text == "false")) {
        out.flag = *text == "true";
      } else {
        return Status::InvalidArgument(name + " must be true or false");
      }
      return out;
    case OptionType::kInteger: {
      std::optional<std::int64_t> n;
      if (const auto* i = std::get_if<std::int64_t>(&value.v)) n = *i;
      if (text != nullptr) n = ParseInteger(*text);
      if (!n) return Status::InvalidArgument(name + " must be an integer");
      if (*n < info.min || *n > info.max) {
        return Status::InvalidArgument(name + " is " + std::to_string(*n) + "; it must be " +
                                       std::to_string(info.min) + " to " +
                                       std::to_string(info.max));
      }
      out.integer = *n;
      return out;
    }
    case OptionType::kBytes: {
      CXLKV_ASSIGN_OR_RETURN(out.bytes, Size(value, name));
      const auto min = static_cast<std::uint64_t>(info.min);
      const auto max = static_cast<std::uint64_t>(info.max);
      if (out.bytes < min || (max > 0 && out.bytes > max)) {
        return Status::InvalidArgument(name + " is " + FormatBytes(out.bytes) + "; it must be " +
                                       FormatBytes(min) + " to " + FormatBytes(max));
      }
      return out;
    }
    case OptionType::kFraction: {
      std::optional<double> x;
      if (const auto* d = std::get_if<double>(&value.v)) x = *d;
      if (const auto* i = std::get_if<std::int64_t>(&value.v)) x = static_cast<double>(*i);
      if (text != nullptr) x = ParseNumber(*text);
      if (!x || !(*x >= 0 && *x <= 1)) return Status::InvalidArgument(name + " must be 0 to 1");
      out.fraction = *x;
      return out;
    }
    case OptionType::kSizeList: {
      std::vector<OptionValue> items;
      if (const auto* list = std::get_if<std::vector<OptionValue>>(&value.v)) {
        items = *list;
      } else if (text != nullptr) {
        std::size_t start = 0;
        for (;;) {
          const std::size_t comma = text->find(',', start);
          items.push_back({text->substr(start, comma - start)});
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      } else {
        return Status::InvalidArgument(name + " must be a list of sizes");
      }
      for (std::size_t i = 0; i < items.size(); ++i) {
        CXLKV_ASSIGN_OR_RETURN(const std::uint64_t size,
                               Size(items[i], name + "[" + std::to_string(i) + "]"));
        out.sizes.push_back(size);
      }
      return out;
    }
  }
  return Status::InvalidArgument(name + ": unknown option type");
}

Result<NamedValue> ParseKeyValue(std::string_view item, const std::string& where) {
  const std::size_t eq = item.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Status::InvalidArgument(where + ": '" + std::string(item) + "' is not KEY=VALUE");
  }
  std::string key(item.substr(0, eq));
  return NamedValue{key, {std::string(item.substr(eq + 1))}, where + ": " + key};
}

bool IsChoice(const OptionInfo& info, std::string_view value) {
  std::string_view rest = info.choices;
  for (;;) {
    const std::size_t bar = rest.find('|');
    if (rest.substr(0, bar) == value) return true;
    if (bar == std::string_view::npos) return false;
    rest.remove_prefix(bar + 1);
  }
}

Status UnknownKey(const std::string& name, std::span<const std::string_view> known) {
  std::string list;
  for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
  return Status::InvalidArgument("unknown key " + name + " (known: " + list + ")");
}

Status Required(const std::string& name) { return Status::InvalidArgument(name + " is required"); }

std::string ToToml(const OptionValue& value) {
  struct Writer {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t n) const { return std::to_string(n); }
    std::string operator()(double d) const {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", d);
      std::string s = buf;
      // TOML tells a float from an integer by its point.
      if (s.find_first_of(".en") == std::string::npos) s += ".0";
      return s;
    }
    std::string operator()(const std::string& s) const {
      std::string out = "\"";
      for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      return out + "\"";
    }
    std::string operator()(const std::vector<OptionValue>& list) const {
      std::string out = "[";
      for (const OptionValue& v : list) out += (out.size() > 1 ? ", " : "") + ToToml(v);
      return out + "]";
    }
  };
  return std::visit(Writer{}, value.v);
}

std::string HelpLines(std::span<const OptionInfo> infos,
                      std::span<const std::optional<OptionValue>> defaults) {
  std::string out;
  for (std::size_t i = 0; i < infos.size(); ++i) {
    const OptionInfo& o = infos[i];
    std::string kind;
    switch (o.type) {
      case OptionType::kString:
        kind = o.choices.empty() ? "string" : std::string(o.choices);
        break;
      case OptionType::kBool:
        kind = "true|false";
        break;
      case OptionType::kInteger:
        kind = std::to_string(o.min) + ".." + std::to_string(o.max);
        break;
      case OptionType::kBytes:
        kind = o.max > 0 ? "size " + FormatBytes(static_cast<std::uint64_t>(o.min)) + ".." +
                               FormatBytes(static_cast<std::uint64_t>(o.max))
                         : "size";
        break;
      case OptionType::kFraction:
        kind = "0..1";
        break;
      case OptionType::kSizeList:
        kind = "sizes";
        break;
    }
    out += "  " + std::string(o.key) + " (" + kind;
    if (o.required) {
      out += ", required";
    } else if (i < defaults.size() && defaults[i]) {
      out += ", default " + ToToml(*defaults[i]);
    }
    out += "): " + std::string(o.doc) + "\n";
  }
  return out;
}

}  // namespace cxlkv::options
