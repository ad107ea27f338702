// History: what clients asked of the database and what they were told.
//
// A history is the record a checker judges: one `Operation` per client
// request, with the simulated time the client sent it (`call_ns`), the time
// it got its answer or gave up (`return_ns`), and how it ended:
//   - kOk:      the database answered; the output fields hold the answer;
//   - kFail:    the database said no, so the operation is known NOT to have
//               taken effect (a rejected request, an INCR of a non-integer);
//   - kUnknown: the client gave up (a timeout, a lost connection); the
//               operation may have taken effect at any time after its call,
//               even after `return_ns`, or never.
// Every operation touches one key. Ids are unique within a history.
//
// On disk and between tools a history is JSON lines: one object per
// operation (docs/history.md gives every field), so outside checkers such as
// Knossos, Porcupine or Elle can read it. Reading is strict and bounded:
// every field is checked, unknown fields are refused, and a bad line is
// reported with its number.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace synod::sim {

enum class OpKind : uint8_t { kGet, kSet, kCas, kIncr };
enum class Outcome : uint8_t { kOk, kFail, kUnknown };

// Bounds on what a history may hold. A value must fit a line even when every
// byte is escaped, so it is capped well below the line length.
inline constexpr size_t kHistoryLineBytesMax = 1024 * 1024;
inline constexpr size_t kHistoryKeyBytesMax = 64 * 1024;
inline constexpr size_t kHistoryValueBytesMax = 128 * 1024;
inline constexpr size_t kHistoryOperationsMax = 10'000'000;

struct Operation {
  uint64_t id = 0;
  uint64_t client = 0;
  OpKind kind = OpKind::kGet;
  std::string key;

  // Inputs. Fields a kind does not use stay at their defaults.
  std::string value;                    // set: the value written; cas: the new value
  std::optional<std::string> expected;  // cas: the value expected; nullopt: "absent"
  int64_t delta = 0;                    // incr

  // Outputs, only when outcome == kOk; otherwise they stay at their defaults.
  std::optional<std::string> read;  // get: the value read; nullopt: absent
  bool swapped = false;             // cas: whether it swapped
  int64_t result = 0;               // incr: the value after the increment

  uint64_t call_ns = 0;
  uint64_t return_ns = 0;  // for kUnknown: when the client gave up
  Outcome outcome = Outcome::kOk;

  friend bool operator==(const Operation&, const Operation&) = default;
};

using History = std::vector<Operation>;

std::string_view op_kind_name(OpKind kind);
std::string_view outcome_name(Outcome outcome);

// Checks one operation: the fields its kind uses, defaults elsewhere, outputs
// only when ok, call_ns <= return_ns, keys and values within the bounds.
base::Status validate_operation(const Operation& op);
// Every operation valid, ids unique, at most kHistoryOperationsMax of them.
base::Status validate_history(const History& history);

// For a person: `#7 client 3 cas("a" -> "b") swapped [1.000000200s, 1.000000900s] ok`.
// Long values are shortened.
std::string describe(const Operation& op);
// A value as a person reads it: quoted, escaped, shortened past `bytes_max`.
std::string quote_value(std::string_view value, size_t bytes_max = 40);
std::string quote_optional(const std::optional<std::string>& value);
// Simulated nanoseconds as seconds: 1500000000 -> "1.500000000s".
std::string format_time_ns(uint64_t time_ns);

// One operation as one JSON object, without the newline. Refuses an invalid
// operation, and keys or values that are not UTF-8 (JSON strings must be).
base::Result<std::string> to_json_line(const Operation& op);
// Parses and validates one JSON object.
base::Result<Operation> parse_json_line(std::string_view line);

// JSON lines, one operation per line, in the order given.
base::Status write_history(const History& history, std::ostream& out);
// Reads until the end of `in` (or `text`); blank lines are skipped. Errors
// name the line: "line 12: field \"kind\": expected one of get, set, cas, incr".
// The history as a whole is validated too (unique ids).
base::Result<History> read_history(std::istream& in);
base::Result<History> parse_history(std::string_view text);

}  // namespace synod::sim
