#include "sim/history.h"

#include <array>
#include <cstdio>
#include <istream>
#include <limits>
#include <ostream>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

namespace synod::sim {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;
using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 4> kKindNames = {"get", "set", "cas", "incr"};
constexpr std::array<std::string_view, 3> kOutcomeNames = {"ok", "fail", "unknown"};

Error invalid(std::string message) { return Error(Errc::kInvalidArgument, std::move(message)); }

std::string join_names(std::span<const std::string_view> names) {
  std::string text;
  for (std::string_view name : names) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

// Reads the fields of one JSON object, remembering which were read so that
// any other field can be refused, and keeping only the first error: the
// caller reads every field it expects and asks `error()` once at the end.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  uint64_t unsigned_field(const char* name) {
    const json* field = find(name);
    if (field == nullptr) return 0;
    if (!field->is_number_unsigned()) {
      fail(name, "expected an unsigned integer");
      return 0;
    }
    return field->get<uint64_t>();
  }

  int64_t signed_field(const char* name) {
    const json* field = find(name);
    if (field == nullptr) return 0;
    if (field->is_number_unsigned()) {
      const uint64_t value = field->get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(name, "out of the 64-bit signed range");
        return 0;
      }
      return static_cast<int64_t>(value);
    }
    if (!field->is_number_integer()) {
      fail(name, "expected an integer");
      return 0;
    }
    return field->get<int64_t>();
  }

  bool bool_field(const char* name) {
    const json* field = find(name);
    if (field == nullptr) return false;
    if (!field->is_boolean()) {
      fail(name, "expected true or false");
      return false;
    }
    return field->get<bool>();
  }

  std::string string_field(const char* name, size_t bytes_max) {
    const json* field = find(name);
    if (field == nullptr) return {};
    return checked_string(name, *field, bytes_max);
  }

  // A string, or null for "absent".
  std::optional<std::string> optional_string_field(const char* name, size_t bytes_max) {
    const json* field = find(name);
    if (field == nullptr || field->is_null()) return std::nullopt;
    return checked_string(name, *field, bytes_max);
  }

  // The index of the field's value in `names`.
  size_t choice_field(const char* name, std::span<const std::string_view> names) {
    const json* field = find(name);
    if (field == nullptr) return 0;
    if (field->is_string()) {
      const std::string& text = field->get_ref<const std::string&>();
      for (size_t i = 0; i < names.size(); ++i) {
        if (text == names[i]) return i;
      }
    }
    fail(name, "expected one of " + join_names(names));
    return 0;
  }

  // Refuses any field that was not read: a misspelt field must not pass as
  // an absent one.
  void refuse_unread(std::string_view context) {
    for (const auto& [name, value] : object_.items()) {
      if (!read_.contains(name)) {
        record("unexpected field \"" + name + "\" " + std::string(context));
        return;
      }
    }
  }

  const std::optional<Error>& error() const { return error_; }

 private:
  const json* find(const char* name) {
    read_.emplace(name);
    const auto it = object_.find(name);
    if (it == object_.end()) {
      record("missing field \"" + std::string(name) + "\"");
      return nullptr;
    }
    return &*it;
  }

  std::string checked_string(const char* name, const json& field, size_t bytes_max) {
    if (!field.is_string()) {
      fail(name, "expected a string");
      return std::string();
    }
    const std::string& text = field.get_ref<const std::string&>();
    if (text.size() > bytes_max) {
      fail(name, "longer than " + std::to_string(bytes_max) + " bytes");
      return std::string();
    }
    return text;
  }

  void fail(const char* name, std::string_view why) {
    record("field \"" + std::string(name) + "\": " + std::string(why));
  }
  void record(std::string message) {
    if (!error_) error_ = invalid(std::move(message));
  }

  const json& object_;
  std::unordered_set<std::string> read_;
  std::optional<Error> error_;
};

// Our objects are flat. nlohmann's parser nests without a bound of its own,
// so a line of a million '[' is refused before it reaches the parser.
bool nesting_within(std::string_view text, int depth_max) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > depth_max) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::string_view strip_exception_prefix(std::string_view what) {
  // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
  const size_t end = what.find("] ");
  return end == std::string_view::npos ? what : what.substr(end + 2);
}

Status check(bool condition, const Operation& op, std::string_view why) {
  if (condition) return Status();
  return invalid("operation #" + std::to_string(op.id) + ": " + std::string(why));
}

// Collects parsed lines into a history, numbering lines and checking ids.
class HistoryCollector {
 public:
  Status add_line(std::string_view line) {
    ++line_number_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return Status();
    if (line.size() > kHistoryLineBytesMax) return too_long();
    if (history_.size() == kHistoryOperationsMax) {
      return at_line("more than " + std::to_string(kHistoryOperationsMax) + " operations");
    }
    Result<Operation> op = parse_json_line(line);
    if (!op.ok()) return at_line(op.error().message());
    const auto [it, inserted] = line_by_id_.emplace(op->id, line_number_);
    if (!inserted) {
      return at_line("id " + std::to_string(op->id) + " is already used on line " +
                     std::to_string(it->second));
    }
    history_.push_back(std::move(op).value());
    return Status();
  }

  // For a line refused before it was whole (after `begin_line`).
  Status too_long() const {
    return Error(Errc::kInvalidArgument, "line " + std::to_string(line_number_) +
                                             ": longer than " +
                                             std::to_string(kHistoryLineBytesMax) + " bytes");
  }
  void begin_line() { ++line_number_; }

  History take() { return std::move(history_); }

 private:
  Status at_line(std::string_view why) const {
    return invalid("line " + std::to_string(line_number_) + ": " + std::string(why));
  }

  History history_;
  size_t line_number_ = 0;
  std::unordered_map<uint64_t, size_t> line_by_id_;
};

}  // namespace

std::string_view op_kind_name(OpKind kind) {
  const auto index = static_cast<size_t>(kind);
  return index < kKindNames.size() ? kKindNames[index] : "invalid";
}

std::string_view outcome_name(Outcome outcome) {
  const auto index = static_cast<size_t>(outcome);
  return index < kOutcomeNames.size() ? kOutcomeNames[index] : "invalid";
}

Status validate_operation(const Operation& op) {
  const bool ok = op.outcome == Outcome::kOk;
  const std::pair<bool, std::string_view> rules[] = {
      {static_cast<size_t>(op.kind) < kKindNames.size(), "kind out of range"},
      {static_cast<size_t>(op.outcome) < kOutcomeNames.size(), "outcome out of range"},
      {op.call_ns <= op.return_ns, "returns before it is called"},
      {op.key.size() <= kHistoryKeyBytesMax, "key too long"},
      {op.value.size() <= kHistoryValueBytesMax, "value too long"},
      {!op.expected || op.expected->size() <= kHistoryValueBytesMax, "expected value too long"},
      {!op.read || op.read->size() <= kHistoryValueBytesMax, "value read too long"},
      {op.kind == OpKind::kSet || op.kind == OpKind::kCas || op.value.empty(),
       "only set and cas carry a value"},
      {op.kind == OpKind::kCas || !op.expected, "only cas carries an expected value"},
      {op.kind == OpKind::kIncr || op.delta == 0, "only incr carries a delta"},
      {(ok && op.kind == OpKind::kGet) || !op.read, "only an ok get carries a value read"},
      {(ok && op.kind == OpKind::kCas) || !op.swapped, "only an ok cas says it swapped"},
      {(ok && op.kind == OpKind::kIncr) || op.result == 0, "only an ok incr carries a result"},
  };
  for (const auto& [holds, why] : rules) {
    if (Status status = check(holds, op, why); !status.ok()) return status;
  }
  return Status();
}

Status validate_history(const History& history) {
  if (history.size() > kHistoryOperationsMax) {
    return invalid("more than " + std::to_string(kHistoryOperationsMax) + " operations");
  }
  std::unordered_map<uint64_t, size_t> index_by_id;
  index_by_id.reserve(history.size());
  for (size_t i = 0; i < history.size(); ++i) {
    if (Status status = validate_operation(history[i]); !status.ok()) return status;
    if (!index_by_id.emplace(history[i].id, i).second) {
      return invalid("operation id " + std::to_string(history[i].id) + " is used twice");
    }
  }
  return Status();
}

std::string quote_value(std::string_view value, size_t bytes_max) {
  std::string text = "\"";
  for (char c : value.substr(0, bytes_max)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      text += '\\';
      text += c;
    } else if (byte < 0x20 || byte >= 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      text += escaped;
    } else {
      text += c;
    }
  }
  text += '"';
  if (value.size() > bytes_max) text += "...(" + std::to_string(value.size()) + " bytes)";
  return text;
}

std::string quote_optional(const std::optional<std::string>& value) {
  return value ? quote_value(*value) : "absent";
}

std::string format_time_ns(uint64_t time_ns) {
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, "%09llu",
                static_cast<unsigned long long>(time_ns % 1'000'000'000));
  return std::to_string(time_ns / 1'000'000'000) + "." + fraction + "s";
}

std::string describe(const Operation& op) {
  const bool ok = op.outcome == Outcome::kOk;
  std::string text = "#" + std::to_string(op.id) + " client " + std::to_string(op.client) + " " +
                     std::string(op_kind_name(op.kind)) + "(" + quote_value(op.key);
  switch (op.kind) {
    case OpKind::kGet:
      text += ")";
      if (ok) text += " -> " + quote_optional(op.read);
      break;
    case OpKind::kSet:
      text += ", " + quote_value(op.value) + ")";
      break;
    case OpKind::kCas:
      text += ", " + quote_optional(op.expected) + ", " + quote_value(op.value) + ")";
      if (ok) text += op.swapped ? " -> swapped" : " -> not swapped";
      break;
    case OpKind::kIncr:
      text += ", " + std::string(op.delta >= 0 ? "+" : "") + std::to_string(op.delta) + ")";
      if (ok) text += " -> " + std::to_string(op.result);
      break;
  }
  text += " [" + format_time_ns(op.call_ns) + ", " + format_time_ns(op.return_ns) + "] " +
          std::string(outcome_name(op.outcome));
  return text;
}

Result<std::string> to_json_line(const Operation& op) {
  if (Status status = validate_operation(op); !status.ok()) return status.error();
  // ordered_json keeps the fields in the order docs/history.md lists them.
  nlohmann::ordered_json object;
  object["id"] = op.id;
  object["client"] = op.client;
  object["kind"] = op_kind_name(op.kind);
  object["key"] = op.key;
  if (op.kind == OpKind::kCas) {
    object["expected"] = op.expected ? json(*op.expected) : json(nullptr);
  }
  if (op.kind == OpKind::kSet || op.kind == OpKind::kCas) object["value"] = op.value;
  if (op.kind == OpKind::kIncr) object["delta"] = op.delta;
  object["outcome"] = outcome_name(op.outcome);
  if (op.outcome == Outcome::kOk) {
    if (op.kind == OpKind::kGet) object["read"] = op.read ? json(*op.read) : json(nullptr);
    if (op.kind == OpKind::kCas) object["swapped"] = op.swapped;
    if (op.kind == OpKind::kIncr) object["result"] = op.result;
  }
  object["call_ns"] = op.call_ns;
  object["return_ns"] = op.return_ns;
  try {
    return object.dump();
  } catch (const json::type_error& error) {
    // JSON strings are Unicode: a key or value that is not UTF-8 cannot be written.
    return check(false, op, strip_exception_prefix(error.what())).error();
  }
}

Result<Operation> parse_json_line(std::string_view line) {
  if (line.size() > kHistoryLineBytesMax) {
    return invalid("longer than " + std::to_string(kHistoryLineBytesMax) + " bytes");
  }
  if (!nesting_within(line, 1)) return invalid("not a flat JSON object");
  json object;
  try {
    object = json::parse(line);
  } catch (const json::parse_error& error) {
    return invalid("not valid JSON: " + std::string(strip_exception_prefix(error.what())));
  }
  if (!object.is_object()) return invalid("not a JSON object");

  FieldReader reader(object);
  Operation op;
  op.id = reader.unsigned_field("id");
  op.client = reader.unsigned_field("client");
  op.kind = static_cast<OpKind>(reader.choice_field("kind", kKindNames));
  op.key = reader.string_field("key", kHistoryKeyBytesMax);
  op.outcome = static_cast<Outcome>(reader.choice_field("outcome", kOutcomeNames));
  op.call_ns = reader.unsigned_field("call_ns");
  op.return_ns = reader.unsigned_field("return_ns");
  if (op.kind == OpKind::kCas) {
    op.expected = reader.optional_string_field("expected", kHistoryValueBytesMax);
  }
  if (op.kind == OpKind::kSet || op.kind == OpKind::kCas) {
    op.value = reader.string_field("value", kHistoryValueBytesMax);
  }
  if (op.kind == OpKind::kIncr) op.delta = reader.signed_field("delta");
  if (op.outcome == Outcome::kOk) {
    if (op.kind == OpKind::kGet) op.read = reader.optional_string_field("read", kHistoryValueBytesMax);
    if (op.kind == OpKind::kCas) op.swapped = reader.bool_field("swapped");
    if (op.kind == OpKind::kIncr) op.result = reader.signed_field("result");
  }
  reader.refuse_unread("for " + std::string(op_kind_name(op.kind)) + " with outcome " +
                       std::string(outcome_name(op.outcome)));
  if (reader.error()) return *reader.error();
  if (Status status = validate_operation(op); !status.ok()) return status.error();
  return op;
}

Status write_history(const History& history, std::ostream& out) {
  if (Status status = validate_history(history); !status.ok()) return status;
  for (const Operation& op : history) {
    Result<std::string> line = to_json_line(op);
    if (!line.ok()) return line.error();
    out << *line << '\n';
  }
  out.flush();
  if (!out) return Error(Errc::kIo, "writing the history failed");
  return Status();
}

Result<History> parse_history(std::string_view text) {
  HistoryCollector collector;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    if (Status status = collector.add_line(line); !status.ok()) return status.error();
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return collector.take();
}

Result<History> read_history(std::istream& in) {
  std::streambuf* buffer = in.rdbuf();
  if (buffer == nullptr) return invalid("no stream to read the history from");
  HistoryCollector collector;
  std::string line;
  for (;;) {
    line.clear();
    int c = buffer->sbumpc();
    if (c == std::char_traits<char>::eof()) break;
    // A line is read only up to the bound: a huge line is refused, not held.
    for (; c != std::char_traits<char>::eof() && c != '\n'; c = buffer->sbumpc()) {
      if (line.size() > kHistoryLineBytesMax) {
        collector.begin_line();
        return collector.too_long().error();
      }
      line.push_back(static_cast<char>(c));
    }
    if (Status status = collector.add_line(line); !status.ok()) return status.error();
  }
  return collector.take();
}

}  // namespace synod::sim
