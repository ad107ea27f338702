// Decimal 64-bit integers as Redis reads them (its string2ll): an optional
// '-', then digits with no leading zero ("0" alone is fine), nothing else;
// no spaces, no '+', no overflow. Everything that takes a number from a
// client or a stored value uses this, so Synod refuses exactly what Redis
// refuses ("00012", " 12", "+5", "12.5").
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

namespace synod::base {

inline std::optional<int64_t> parse_decimal_int64(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  const size_t digits = text[0] == '-' ? 1 : 0;
  if (digits == text.size()) return std::nullopt;
  if (text[digits] == '0' && text.size() != 1) return std::nullopt;  // "0" only; no "-0", "007"
  if (text[digits] < '0' || text[digits] > '9') return std::nullopt;
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace synod::base
