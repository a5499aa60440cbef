#include "util/format.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

namespace cxlkv {

std::string FormatBytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 5) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string FormatRangeList(const std::vector<int>& ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(ids[i]);
    if (j > i) out += '-' + std::to_string(ids[j]);
    i = j + 1;
  }
  return out;
}

Result<std::uint64_t> ParseBytes(std::string_view text) {
  const std::string original(text);
  auto invalid = [&] {
    return Status::InvalidArgument("'" + original +
                                   "' is not a size (examples: 4096, 64K, 2MiB, 1.5G)");
  };
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  std::size_t digits = 0;
  bool seen_dot = false;
  while (digits < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[digits])) ||
          (text[digits] == '.' && !seen_dot))) {
    seen_dot |= text[digits] == '.';
    ++digits;
  }
  if (digits == 0 || (digits == 1 && text[0] == '.')) return invalid();
  std::string number(text.substr(0, digits));
  std::string unit;
  for (char c : text.substr(digits)) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();       // "KB", "KiB" -> "k", "ki"
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  int shift;
  if (unit.empty()) shift = 0;
  else if (unit == "k") shift = 10;
  else if (unit == "m") shift = 20;
  else if (unit == "g") shift = 30;
  else if (unit == "t") shift = 40;
  else if (unit == "p") shift = 50;
  else return invalid();

  const double value = std::strtod(number.c_str(), nullptr) * std::ldexp(1.0, shift);
  if (!std::isfinite(value) || value >= 18446744073709551615.0) return invalid();
  if (value != std::floor(value)) {
    return Status::InvalidArgument("'" + original + "' is not a whole number of bytes");
  }
  return static_cast<std::uint64_t>(value);
}

}  // namespace cxlkv
