#include "sim/overwritten_read.h"


#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <utility>

#include "base/decimal.h"
#include "base/assert.h"

namespace synod::sim {

namespace {

using Register = std::optional<std::string>;
constexpr size_t kNone = std::numeric_limits<size_t>::max();

// The value an acknowledged operation certainly leaves in the register.
Register value_left(const Operation& op) {
  if (op.outcome != Outcome::kOk) return std::nullopt;
  switch (op.kind) {
    case OpKind::kGet: return std::nullopt;
    case OpKind::kSet: return op.value;
    case OpKind::kCas: return op.swapped ? Register(op.value) : std::nullopt;
    case OpKind::kIncr: return std::to_string(op.result);
  }
  return std::nullopt;
}

// What an incr could leave: only integers in to_string's form.
bool is_canonical_integer(const std::string& text) {
  const std::optional<int64_t> value = base::parse_decimal_int64(text);
  return value && std::to_string(*value) == text;
}

// Acknowledged operations that certainly change the register, by call time,
// with for every suffix the one that returns first and the one that returns
// first among those leaving another value than that one: enough to find,
// for any value, one leaving a different value that returns first.
class OverwriteIndex {
 public:
  explicit OverwriteIndex(const std::vector<const Operation*>& ops) {
    for (const Operation* op : ops) {
      if (Register left = value_left(*op)) changers_.push_back({op, std::move(*left)});
    }
    std::sort(changers_.begin(), changers_.end(), [](const Changer& a, const Changer& b) {
      return std::pair(a.op->call_ns, a.op->id) < std::pair(b.op->call_ns, b.op->id);
    });
    first_.assign(changers_.size() + 1, kNone);
    second_.assign(changers_.size() + 1, kNone);
    for (size_t i = changers_.size(); i-- > 0;) {
      const size_t first = first_[i + 1];
      const size_t second = second_[i + 1];
      if (first == kNone || returns_before(i, first)) {
        first_[i] = i;
        second_[i] = first != kNone && changers_[first].value != changers_[i].value ? first : second;
      } else {
        first_[i] = first;
        const bool better = changers_[i].value != changers_[first].value &&
                            (second == kNone || returns_before(i, second));
        second_[i] = better ? i : second;
      }
    }
  }

  // An acknowledged operation called after `after_ns` (nullopt: from the
  // start), returned before `before_ns`, leaving something other than
  // `value`; nullptr if there is none.
  const Operation* find(std::optional<uint64_t> after_ns, uint64_t before_ns,
                        const Register& value) const {
    size_t from = 0;
    if (after_ns) {
      from = static_cast<size_t>(
          std::upper_bound(changers_.begin(), changers_.end(), *after_ns,
                           [](uint64_t time, const Changer& c) { return time < c.op->call_ns; }) -
          changers_.begin());
    }
    size_t pick = first_[from];
    if (pick != kNone && value == changers_[pick].value) pick = second_[from];
    if (pick == kNone || changers_[pick].op->return_ns >= before_ns) return nullptr;
    return changers_[pick].op;
  }

 private:
  struct Changer {
    const Operation* op;
    std::string value;
  };
  bool returns_before(size_t a, size_t b) const {
    return changers_[a].op->return_ns < changers_[b].op->return_ns;
  }

  std::vector<Changer> changers_;
  std::vector<size_t> first_;
  std::vector<size_t> second_;
};

// The value a read needs at its point, for a get or a cas that swapped.
std::optional<Register> value_needed(const Operation& op) {
  if (op.outcome != Outcome::kOk) return std::nullopt;
  if (op.kind == OpKind::kGet) return op.read;
  if (op.kind == OpKind::kCas && op.swapped) return op.expected;
  return std::nullopt;
}

}  // namespace

std::optional<OverwrittenRead> find_overwritten_read(const std::vector<const Operation*>& ops,
                                                     size_t writers_max) {
  const OverwriteIndex overwrites(ops);
  std::map<std::string, std::vector<const Operation*>> writers_by_value;
  std::vector<const Operation*> unknown_increments;
  std::vector<const Operation*> reads;
  for (const Operation* op : ops) {
    SYNOD_ASSERT(op->outcome != Outcome::kFail, "failed operations are left out");
    const bool unknown = op->outcome == Outcome::kUnknown;
    if (op->kind == OpKind::kSet || (op->kind == OpKind::kCas && (unknown || op->swapped))) {
      writers_by_value[op->value].push_back(op);
    } else if (op->kind == OpKind::kIncr) {
      if (unknown) unknown_increments.push_back(op);
      else writers_by_value[std::to_string(op->result)].push_back(op);
    }
    if (value_needed(*op)) reads.push_back(op);
  }
  std::sort(reads.begin(), reads.end(), [](const Operation* a, const Operation* b) {
    return std::pair(a->call_ns, a->id) < std::pair(b->call_ns, b->id);
  });

  for (const Operation* read : reads) {
    const Register value = *value_needed(*read);
    std::vector<const Operation*> writers;
    if (value) {
      if (const auto it = writers_by_value.find(*value); it != writers_by_value.end()) {
        writers = it->second;
      }
      if (is_canonical_integer(*value)) {
        writers.insert(writers.end(), unknown_increments.begin(), unknown_increments.end());
      }
    } else {
      writers.push_back(nullptr);  // the initial state
    }
    if (writers.size() > writers_max) continue;
    OverwrittenRead violation{read, {}};
    for (const Operation* writer : writers) {
      if (writer != nullptr && writer->call_ns > read->return_ns) {
        violation.writers.emplace_back(writer, nullptr);
        continue;
      }
      // An unknown write may take effect any time after its call, so no
      // overwrite is sure to follow it.
      if (writer != nullptr && writer->outcome == Outcome::kUnknown) break;
      const std::optional<uint64_t> after_ns =
          writer == nullptr ? std::nullopt : std::optional(writer->return_ns);
      const Operation* overwrite = overwrites.find(after_ns, read->call_ns, value);
      if (overwrite == nullptr) break;
      violation.writers.emplace_back(writer, overwrite);
    }
    if (violation.writers.size() == writers.size()) return violation;
  }
  return std::nullopt;
}

std::string violation_headline(const Operation& blamed, size_t operations) {
  std::string what;
  switch (blamed.kind) {
    case OpKind::kGet: what = "returned " + quote_optional(blamed.read); break;
    case OpKind::kSet: what = "wrote " + quote_value(blamed.value); break;
    case OpKind::kCas:
      what = std::string(blamed.swapped ? "swapped " : "did not swap ") +
             quote_optional(blamed.expected) + " for " + quote_value(blamed.value);
      break;
    case OpKind::kIncr:
      what = "added " + std::to_string(blamed.delta) + " and returned " + std::to_string(blamed.result);
      break;
  }
  return "not linearizable: " + std::string(op_kind_name(blamed.kind)) + " by client " +
         std::to_string(blamed.client) + " at [" + format_time_ns(blamed.call_ns) + ", " +
         format_time_ns(blamed.return_ns) + "] " + what + ", but no order of the " +
         std::to_string(operations) + " operations on key " + quote_value(blamed.key) +
         " can produce that.\n";
}

std::string explain_overwritten_read(const OverwrittenRead& violation, size_t operations,
                                     std::vector<uint64_t>* ids) {
  const Operation& read = *violation.read;
  const std::string value =
      quote_optional(read.kind == OpKind::kGet ? read.read : read.expected);
  std::string text = violation_headline(read, operations);
  ids->push_back(read.id);
  if (violation.writers.empty()) {
    return text + "Nothing on this key ever wrote " + value + ".\n";
  }
  text += "It needs the register to hold " + value + ", and every write of that value was lost:\n";
  for (const auto& [writer, overwrite] : violation.writers) {
    text += "  " + (writer == nullptr ? std::string("the initial state (absent)") : describe(*writer));
    if (writer != nullptr) ids->push_back(writer->id);
    if (overwrite == nullptr) {
      text += ": called after the read returned\n";
      continue;
    }
    text += ": overwritten by " + describe(*overwrite) + ", which returned before the read was called\n";
    ids->push_back(overwrite->id);
  }
  return text;
}

}  // namespace synod::sim
