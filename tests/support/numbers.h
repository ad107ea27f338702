// Decimal numbers read from a command line or the environment: the crash
// children's flags and the tests' SYNOD_* knobs.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace synod::test_support {

// The whole of `text` as a decimal number; false (and `value` untouched) for
// anything else: empty, trailing characters, out of range.
inline bool parse_number(const char* text, uint64_t* value) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long parsed = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0') return false;
  *value = parsed;
  return true;
}

// The environment variable `name` as a number, or `fallback` when it is unset,
// empty or not a number.
inline uint64_t env_number(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  uint64_t value = 0;
  if (text == nullptr || !parse_number(text, &value)) return fallback;
  return value;
}

}  // namespace synod::test_support
