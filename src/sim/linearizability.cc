#include "sim/linearizability.h"


#include <algorithm>
#include <charconv>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "base/decimal.h"
#include "base/assert.h"
#include "sim/overwritten_read.h"

namespace synod::sim {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;

namespace {

constexpr uint32_t kAbsent = 0;  // the register's value id before any write
constexpr uint32_t kUnread = 1;  // stands for every value that nothing reads (see ValueTable)
constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kEnd = std::numeric_limits<uint32_t>::max();  // past a list's last node
constexpr uint32_t kHead = 0;                                    // a list's sentinel node

// As the state machine parses a stored value (base/decimal.h).
std::optional<int64_t> parse_int64(std::string_view text) { return base::parse_decimal_int64(text); }

// The register's values on one key, interned so that a state is one number.
// Id kAbsent is "no value"; incr reads it as 0.
//
// Id kUnread stands for every written value that no operation can tell
// apart from another: not an integer (so no incr can use it), never
// returned by a get, never expected by a cas. Every operation behaves the
// same on any two such values, so they are one state to the search: a
// history full of writes nobody reads does not multiply its configurations,
// and unknown writes of such values form one class (see KeySearch).
// Values that are read must be interned (`intern`) before written ones
// (`intern_written`).
class ValueTable {
 public:
  ValueTable() {
    texts_.emplace_back();
    integers_.push_back(0);
    texts_.emplace_back();
    integers_.push_back(std::nullopt);
  }

  uint32_t intern_written(const std::string& text) {
    const auto it = ids_.find(text);
    if (it != ids_.end()) return it->second;
    return parse_int64(text) ? intern(text) : kUnread;
  }

  uint32_t intern(const std::string& text) {
    const auto [it, inserted] = ids_.emplace(text, static_cast<uint32_t>(texts_.size()));
    if (inserted) {
      texts_.push_back(text);
      integers_.push_back(parse_int64(text));
    }
    return it->second;
  }
  uint32_t intern(const std::optional<std::string>& text) { return text ? intern(*text) : kAbsent; }

  const std::optional<int64_t>& integer(uint32_t id) const { return integers_[id]; }
  std::string describe(uint32_t id) const {
    if (id == kAbsent) return "absent";
    if (id == kUnread) return "a value nothing reads";
    return quote_value(texts_[id]);
  }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<std::string> texts_;
  std::vector<std::optional<int64_t>> integers_;
};

// One operation of the key under check, with its values interned.
struct KeyOp {
  const Operation* op = nullptr;
  OpKind kind = OpKind::kGet;
  bool unknown = false;
  uint32_t value = kAbsent;     // set: written; cas: new; ok incr: its result; ok get: read
  uint32_t expected = kAbsent;  // cas
  uint64_t call_ns = 0;
  uint64_t return_ns = 0;  // +infinity (max) for unknown operations
};

enum class StepError : uint8_t { kNone, kMismatch, kNotInteger, kOverflow };

// The register's transition. For an ok operation, what it returned must be
// what the register gives; for an unknown one any effect the register allows
// is taken (an incr that would fail leaves the register as it is).
struct Step {
  uint32_t next = kAbsent;
  StepError error = StepError::kNone;
  bool ok() const { return error == StepError::kNone; }
};

Step step(const KeyOp& op, uint32_t state, ValueTable& values) {
  switch (op.kind) {
    case OpKind::kGet:
      return {state, state == op.value ? StepError::kNone : StepError::kMismatch};
    case OpKind::kSet:
      return {op.value, StepError::kNone};
    case OpKind::kCas: {
      const bool match = state == op.expected;
      if (!op.unknown && match != op.op->swapped) return {state, StepError::kMismatch};
      return {match ? op.value : state, StepError::kNone};
    }
    case OpKind::kIncr: {
      const std::optional<int64_t>& current = values.integer(state);
      int64_t sum = 0;
      StepError error = StepError::kNone;
      if (!current) error = StepError::kNotInteger;
      else if (__builtin_add_overflow(*current, op.op->delta, &sum)) error = StepError::kOverflow;
      if (op.unknown) {
        return {error == StepError::kNone ? values.intern(std::to_string(sum)) : state,
                StepError::kNone};
      }
      if (error == StepError::kNone && sum != op.op->result) error = StepError::kMismatch;
      return {op.value, error};
    }
  }
  SYNOD_UNREACHABLE("operation kind out of range");
}

bool test_bit(const std::vector<uint64_t>& bits, uint32_t i) { return (bits[i / 64] >> (i % 64)) & 1; }
void set_bit(std::vector<uint64_t>& bits, uint32_t i) { bits[i / 64] |= uint64_t{1} << (i % 64); }
void clear_bit(std::vector<uint64_t>& bits, uint32_t i) { bits[i / 64] &= ~(uint64_t{1} << (i % 64)); }

// Lowe's cache, with subsumption: a configuration is the operations placed
// and the register's value (plus the chain context, see KeySearch). Placing
// more unknown operations only takes choices away, so a configuration whose
// placed unknown operations include those of one already explored (all else
// equal) cannot succeed where that one failed, and is not explored again.
class ConfigCache {
 public:
  explicit ConfigCache(size_t unknown_words) : unknown_words_(std::max<size_t>(unknown_words, 1)) {}

  // False when `key` with `placed_unknown` (or a subset of it) is known.
  bool remember(const std::string& key, const std::vector<uint64_t>& placed_unknown) {
    std::vector<uint64_t>& sets = seen_[key];
    for (size_t at = 0; at < sets.size(); at += unknown_words_) {
      if (is_subset(&sets[at], placed_unknown)) return false;
    }
    if (sets.empty()) bytes_ += key.size() + kEntryOverheadBytes;
    sets.insert(sets.end(), placed_unknown.begin(), placed_unknown.end());
    sets.resize(sets.size() + unknown_words_ - placed_unknown.size());
    bytes_ += unknown_words_ * sizeof(uint64_t);
    ++size_;
    return true;
  }
  uint64_t size() const { return size_; }
  // An estimate of the memory held.
  uint64_t bytes() const { return bytes_; }

 private:
  static bool is_subset(const uint64_t* stored, const std::vector<uint64_t>& bits) {
    for (size_t w = 0; w < bits.size(); ++w) {
      if ((stored[w] & ~bits[w]) != 0) return false;
    }
    return true;
  }

  // A hash node, its string and vector headers, and allocator slack.
  static constexpr uint64_t kEntryOverheadBytes = 96;

  size_t unknown_words_;
  std::unordered_map<std::string, std::vector<uint64_t>> seen_;
  uint64_t size_ = 0;
  uint64_t bytes_ = 0;
};

// Where a chain of unknown steps (see KeySearch) can usefully go from the
// current configuration. A chain is only worth trying if it ends on a value
// that a "needy" candidate accepts: an ok candidate, not a set, that cannot
// take effect on the value the chain started from. `leads_somewhere` says
// whether a value is accepted, or whether more unknown steps could still
// reach an accepted one. That second part over-approximates (it ignores
// which operations the chain already used, and the order they need), so it
// never rules out a chain that could succeed; it does stop chains that
// wander away from every value wanted, such as increments past the target.
class ChainTargets {
 public:
  explicit ChainTargets(ValueTable& values) : values_(values) {}

  void clear() {
    reach_min_ = reach_max_ = 0;
    needy_.clear();
    needy_integers_.clear();
    unswapped_expected_.clear();
    cas_.clear();
    changes_from_.clear();
    useful_expected_.clear();
    useful_expected_integers_.clear();
    increments_ = false;
  }
  bool empty() const { return needy_.empty(); }

  void add_needy(const KeyOp& op) {
    needy_.push_back(&op);
    std::optional<int64_t> target;
    switch (op.kind) {
      case OpKind::kGet:
        if (op.value != kAbsent) target = values_.integer(op.value);
        break;
      case OpKind::kSet: break;
      case OpKind::kCas:
        if (!op.op->swapped) unswapped_expected_.push_back(op.expected);
        else if (op.expected != kAbsent) target = values_.integer(op.expected);
        break;
      case OpKind::kIncr: {
        int64_t before = 0;
        if (!__builtin_sub_overflow(op.op->result, op.op->delta, &before)) target = before;
        break;
      }
    }
    if (target) needy_integers_.push_back(*target);
  }

  // An unknown increment not yet placed and called by now.
  void add_increment(int64_t delta) {
    increments_ = true;
    int64_t& reach = delta < 0 ? reach_min_ : reach_max_;
    if (__builtin_add_overflow(reach, delta, &reach)) {
      reach = delta < 0 ? std::numeric_limits<int64_t>::min() : std::numeric_limits<int64_t>::max();
    }
  }
  // An unknown cas not yet placed and called by now.
  void add_cas(const KeyOp& op) {
    if (op.value == op.expected) return;  // never changes anything
    cas_.push_back(&op);
    changes_from_.push_back(op.expected);
  }

  // Finds the cas operations worth reaching: those whose new value leads
  // somewhere, until no more are found.
  void finish() {
    sort_unique(needy_integers_);
    sort_unique(changes_from_);
    std::vector<bool> useful(cas_.size(), false);
    for (bool found = true; found;) {
      found = false;
      for (size_t i = 0; i < cas_.size(); ++i) {
        if (useful[i] || !leads_somewhere(cas_[i]->value)) continue;
        useful[i] = found = true;
        useful_expected_.push_back(cas_[i]->expected);
        const std::optional<int64_t>& integer = values_.integer(cas_[i]->expected);
        if (cas_[i]->expected != kAbsent && integer) useful_expected_integers_.push_back(*integer);
      }
      sort_unique(useful_expected_);
      sort_unique(useful_expected_integers_);
    }
  }

  bool leads_somewhere(uint32_t value) {
    for (const KeyOp* op : needy_) {
      if (step(*op, value, values_).ok()) return true;
    }
    const std::optional<int64_t>& integer = values_.integer(value);
    const bool integer_moves = integer && increments_;
    // A cas that did not swap needs anything but its expected value.
    if (contains(unswapped_expected_, value) && (integer_moves || contains(changes_from_, value))) {
      return true;
    }
    if (contains(useful_expected_, value)) return true;
    if (!integer_moves) return false;
    // Increments may move the value anywhere in [low, high] and no further.
    int64_t low = 0, high = 0;
    if (__builtin_add_overflow(*integer, reach_min_, &low)) low = std::numeric_limits<int64_t>::min();
    if (__builtin_add_overflow(*integer, reach_max_, &high)) high = std::numeric_limits<int64_t>::max();
    return any_within(needy_integers_, low, high) || any_within(useful_expected_integers_, low, high);
  }

 private:
  template <class T>
  static void sort_unique(std::vector<T>& values) {
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
  }
  template <class T>
  static bool contains(const std::vector<T>& values, T value) {
    return std::find(values.begin(), values.end(), value) != values.end();
  }
  static bool any_within(const std::vector<int64_t>& sorted, int64_t low, int64_t high) {
    const auto it = std::lower_bound(sorted.begin(), sorted.end(), low);
    return it != sorted.end() && *it <= high;
  }

  ValueTable& values_;
  std::vector<const KeyOp*> needy_;
  std::vector<int64_t> needy_integers_;     // integer values a needy candidate accepts
  std::vector<uint32_t> unswapped_expected_;  // of needy cas that did not swap
  std::vector<const KeyOp*> cas_;           // available unknown cas
  std::vector<uint32_t> changes_from_;      // their expected values
  std::vector<uint32_t> useful_expected_;   // expected values of the useful ones
  std::vector<int64_t> useful_expected_integers_;
  bool increments_ = false;
  int64_t reach_min_ = 0;  // the sum of the negative deltas available
  int64_t reach_max_ = 0;  // and of the positive ones
};

// The depth-first search for one key.
//
// Ok operations are indexed in call order and sit in a doubly linked list of
// call and return events sorted by time (Lowe's list): the operations that
// may go next are the calls before the first return. Placing an operation
// lifts its two events out; backing up puts them back. At each
// configuration the ok candidates are tried first, in list order.
//
// Unknown operations are tried only when every ok candidate has failed, and
// only in "chains" that can matter. A chain is a run of unknown steps
// between two ok operations; any linearization can be rewritten so that
// each of its chains obeys these rules (so a search that keeps to them
// still finds one if any exists):
//   - a chain comes right before a "needy" ok candidate, one that is not a
//     set and cannot take effect on the value the chain started from, and
//     that candidate is what follows the chain (a chain in front of an
//     operation that fits anyway can be moved after it, or dropped);
//   - every step changes the value, and no set follows another unknown step
//     (it would overwrite it, so the step before it could be dropped);
//   - every step leaves a value from which a needy candidate can still be
//     reached (ChainTargets);
//   - unknown operations with the same effect are interchangeable, so they
//     form a class whose members are placed in call order.
// The value a chain started from is part of a chain configuration's cache
// key, since it decides what may follow.
//
// Invariant: every placed ok operation at or past `base_` (the first
// unplaced one) lies before `window_end_[base_]` (it was a candidate while
// `base_` was pending, so it was called before `base_` returned); so
// (base_, the bits of [base_, window_end_[base_]) ) names the placed set.
class KeySearch {
 public:
  KeySearch(const std::vector<const Operation*>& ops, const CheckOptions& options)
      : options_(options) {
    for (const Operation* op : ops) {
      if (op->outcome == Outcome::kOk && op->kind == OpKind::kGet) values_.intern(op->read);
      if (op->kind == OpKind::kCas) values_.intern(op->expected);
    }
    for (const Operation* op : ops) {
      if (op->outcome == Outcome::kOk) ok_.push_back(compile(*op));
      else unknown_.push_back(compile(*op));
    }
    const auto by_call = [](const KeyOp& a, const KeyOp& b) {
      return std::pair(a.call_ns, a.op->id) < std::pair(b.call_ns, b.op->id);
    };
    std::sort(ok_.begin(), ok_.end(), by_call);
    std::sort(unknown_.begin(), unknown_.end(), by_call);
    build_ok_list();
    build_unknown_list();
    placed_ok_.assign((ok_.size() + 63) / 64 + 1, 0);
    placed_unknown_.assign((unknown_.size() + 63) / 64, 0);
    cache_.emplace(placed_unknown_.size());
    remaining_ok_ = static_cast<uint32_t>(ok_.size());
  }

  Verdict run() {
    enum class Phase { kOk, kUnknown } phase = Phase::kOk;
    uint32_t node = next_[kHead];
    uint32_t class_node = kEnd;
    for (;;) {
      if (remaining_ok_ == 0) return Verdict::kOk;
      if (steps_ >= options_.steps_max_per_key ||
          cache_->bytes() >= options_.cache_bytes_max_per_key) {
        return Verdict::kInconclusive;
      }
      if (phase == Phase::kOk) {
        if (is_return_node(node)) {
          phase = Phase::kUnknown;
          class_node = class_next_[kHead];
          scan_candidates();
          continue;
        }
        ++steps_;
        if (try_ok(op_of_node(node))) {
          node = next_[kHead];
        } else {
          node = next_[node];
        }
        continue;
      }
      // Classes are in order of their first call; each offers its first
      // unplaced member.
      if (class_node != kEnd && !targets_.empty() &&
          unknown_[classes_[class_node - 1].members[0]].call_ns <= bound_ns_) {
        const EffectClass& effect_class = classes_[class_node - 1];
        const uint32_t x = effect_class.members[effect_class.placed];
        if (unknown_[x].call_ns <= bound_ns_) {
          ++steps_;
          if (try_unknown(x)) {
            phase = Phase::kOk;
            node = next_[kHead];
            continue;
          }
        }
        class_node = class_next_[class_node];
        continue;
      }
      if (stack_.empty()) return Verdict::kViolation;
      const Frame frame = back_up();
      if (frame.unknown) {
        phase = Phase::kUnknown;
        class_node = class_next_[class_of_[frame.index] + 1];
        scan_candidates();
      } else {
        phase = Phase::kOk;
        node = next_[call_node(frame.index)];
      }
    }
  }

  std::string explain(Verdict verdict, std::string_view key, std::vector<uint64_t>* ids) const;

  uint64_t steps() const { return steps_; }
  uint64_t configurations() const { return cache_->size(); }
  size_t operations() const { return ok_.size() + unknown_.size(); }

 private:
  struct Frame {
    uint32_t index;         // into ok_ or unknown_
    uint32_t state_before;  // the register's value before this step
    uint32_t base_before;
    uint32_t chain_start;  // unknown steps: the value before their chain began
    bool unknown;
  };

  KeyOp compile(const Operation& op) {
    KeyOp key_op{.op = &op, .kind = op.kind, .unknown = op.outcome == Outcome::kUnknown,
                 .call_ns = op.call_ns, .return_ns = op.return_ns};
    if (key_op.unknown) key_op.return_ns = std::numeric_limits<uint64_t>::max();
    switch (op.kind) {
      case OpKind::kGet: key_op.value = values_.intern(op.read); break;
      case OpKind::kSet: key_op.value = values_.intern_written(op.value); break;
      case OpKind::kCas:
        key_op.value = values_.intern_written(op.value);
        key_op.expected = values_.intern(op.expected);
        break;
      case OpKind::kIncr:
        if (!key_op.unknown) key_op.value = values_.intern(std::to_string(op.result));
        break;
    }
    return key_op;
  }

  // Node 0 is the head; op i has call node 2i+1 and return node 2i+2.
  static uint32_t call_node(uint32_t i) { return 2 * i + 1; }
  static uint32_t return_node(uint32_t i) { return 2 * i + 2; }
  static bool is_return_node(uint32_t node) { return node % 2 == 0; }
  static uint32_t op_of_node(uint32_t node) { return (node - 1) / 2; }

  void build_ok_list() {
    const auto count = static_cast<uint32_t>(ok_.size());
    std::vector<std::pair<std::pair<uint64_t, uint32_t>, uint32_t>> events;  // ((time, kind), node)
    events.reserve(2 * count);
    for (uint32_t i = 0; i < count; ++i) {
      // At equal times calls go first: the two operations overlap.
      events.push_back({{ok_[i].call_ns, 0}, call_node(i)});
      events.push_back({{ok_[i].return_ns, 1}, return_node(i)});
    }
    std::sort(events.begin(), events.end());
    next_.assign(2 * count + 1, kEnd);
    prev_.assign(2 * count + 1, kEnd);
    uint32_t last = kHead;
    for (const auto& [order, node] : events) {
      next_[last] = node;
      prev_[node] = last;
      last = node;
    }
    // window_end_[b]: the first op called after b returns.
    window_end_.resize(count + 1, count);
    for (uint32_t b = 0; b < count; ++b) {
      const auto after = std::upper_bound(
          ok_.begin(), ok_.end(), ok_[b].return_ns,
          [](uint64_t time, const KeyOp& op) { return time < op.call_ns; });
      window_end_[b] = static_cast<uint32_t>(after - ok_.begin());
    }
  }

  // Unknown operations with the same effect (kind and inputs) are
  // interchangeable once called, so they form a class placed in call
  // order: only its first unplaced member is ever tried. The list holds the
  // classes not used up, in order of their first call.
  void build_unknown_list() {
    std::map<std::tuple<OpKind, uint32_t, uint32_t, int64_t>, uint32_t> class_by_effect;
    for (uint32_t x = 0; x < unknown_.size(); ++x) {
      const KeyOp& op = unknown_[x];
      const auto effect = std::tuple(op.kind, op.value, op.expected, op.op->delta);
      const auto [it, inserted] =
          class_by_effect.emplace(effect, static_cast<uint32_t>(classes_.size()));
      if (inserted) classes_.emplace_back();
      classes_[it->second].members.push_back(x);
      class_of_.push_back(it->second);
      if (op.kind == OpKind::kCas) cas_unknown_.push_back(x);
      if (op.kind == OpKind::kIncr) incr_unknown_.push_back(x);
    }
    const auto count = static_cast<uint32_t>(classes_.size());
    class_next_.assign(count + 1, kEnd);
    class_prev_.assign(count + 1, kEnd);
    for (uint32_t c = 0; c < count; ++c) {
      class_next_[c] = c + 1;
      class_prev_[c + 1] = c;
    }
  }

  // Lowe's lift and unlift: unlift undoes the last lift exactly.
  void unlink(uint32_t node, std::vector<uint32_t>& next, std::vector<uint32_t>& prev) {
    next[prev[node]] = next[node];
    if (next[node] != kEnd) prev[next[node]] = prev[node];
  }
  void relink(uint32_t node, std::vector<uint32_t>& next, std::vector<uint32_t>& prev) {
    next[prev[node]] = node;
    if (next[node] != kEnd) prev[next[node]] = node;
  }

  // Prepares the unknown phase at the current configuration: the bound on
  // calls (the first return), and where chains may go (ChainTargets) given
  // the ok candidates and the unknown operations available (called by the
  // bound, not placed).
  void scan_candidates() {
    const uint32_t start = chain_start();
    targets_.clear();
    uint32_t node = next_[kHead];
    for (; !is_return_node(node); node = next_[node]) {
      const KeyOp& op = ok_[op_of_node(node)];
      if (op.kind != OpKind::kSet && !step(op, start, values_).ok()) targets_.add_needy(op);
    }
    bound_ns_ = ok_[op_of_node(node)].return_ns;
    if (targets_.empty()) return;
    for (uint32_t y : incr_unknown_) {
      if (unknown_[y].call_ns > bound_ns_) break;
      if (!test_bit(placed_unknown_, y)) targets_.add_increment(unknown_[y].op->delta);
    }
    for (uint32_t y : cas_unknown_) {
      if (unknown_[y].call_ns > bound_ns_) break;
      if (!test_bit(placed_unknown_, y)) targets_.add_cas(unknown_[y]);
    }
    targets_.finish();
  }

  uint32_t chain_start() const {
    return !stack_.empty() && stack_.back().unknown ? stack_.back().chain_start : state_;
  }

  bool try_ok(uint32_t i) {
    const Step result = step(ok_[i], state_, values_);
    if (!result.ok()) return false;
    // A chain is for a needy candidate: whatever else fits after it fitted
    // before it too, and was tried there.
    if (!stack_.empty() && stack_.back().unknown &&
        (ok_[i].kind == OpKind::kSet || step(ok_[i], chain_start(), values_).ok())) {
      return false;
    }
    set_bit(placed_ok_, i);
    uint32_t base = base_;
    if (i == base) {
      while (base < ok_.size() && test_bit(placed_ok_, base)) ++base;
    } else {
      SYNOD_ASSERT(i < window_end_[base_], "an ok candidate lies past the window of the first pending one");
    }
    if (!remember(base, result.next, kNone)) {
      clear_bit(placed_ok_, i);
      return false;
    }
    stack_.push_back({i, state_, base_, kNone, false});
    base_ = base;
    state_ = result.next;
    unlink(call_node(i), next_, prev_);
    unlink(return_node(i), next_, prev_);
    --remaining_ok_;
    note_progress();
    return true;
  }

  bool try_unknown(uint32_t x) {
    const KeyOp& op = unknown_[x];
    const bool in_chain = !stack_.empty() && stack_.back().unknown;
    if (in_chain && op.kind == OpKind::kSet) return false;
    const uint32_t next = step(op, state_, values_).next;
    if (next == state_ || !targets_.leads_somewhere(next)) return false;
    const uint32_t start = chain_start();
    set_bit(placed_unknown_, x);
    if (!remember(base_, next, start)) {
      clear_bit(placed_unknown_, x);
      return false;
    }
    stack_.push_back({x, state_, base_, start, true});
    state_ = next;
    EffectClass& effect_class = classes_[class_of_[x]];
    SYNOD_ASSERT(effect_class.members[effect_class.placed] == x, "a class is placed in call order");
    if (++effect_class.placed == effect_class.members.size()) {
      unlink(class_of_[x] + 1, class_next_, class_prev_);
    }
    return true;
  }

  Frame back_up() {
    const Frame frame = stack_.back();
    stack_.pop_back();
    if (frame.unknown) {
      clear_bit(placed_unknown_, frame.index);
      EffectClass& effect_class = classes_[class_of_[frame.index]];
      if (effect_class.placed-- == effect_class.members.size()) {
        relink(class_of_[frame.index] + 1, class_next_, class_prev_);
      }
    } else {
      clear_bit(placed_ok_, frame.index);
      relink(return_node(frame.index), next_, prev_);
      relink(call_node(frame.index), next_, prev_);
      ++remaining_ok_;
    }
    base_ = frame.base_before;
    state_ = frame.state_before;
    best_agree_ = std::min(best_agree_, stack_.size());
    return frame;
  }

  bool remember(uint32_t base, uint32_t state, uint32_t chain_start) {
    key_.clear();
    const uint32_t header[] = {base, state, chain_start};
    key_.append(reinterpret_cast<const char*>(header), sizeof header);
    const uint32_t end = window_end_[base];
    for (uint32_t at = base; at < end; at += 64) {
      const uint32_t word = at / 64;
      const uint32_t shift = at % 64;
      uint64_t bits = placed_ok_[word] >> shift;
      if (shift != 0 && word + 1 < placed_ok_.size()) bits |= placed_ok_[word + 1] << (64 - shift);
      if (end - at < 64) bits &= (uint64_t{1} << (end - at)) - 1;
      key_.append(reinterpret_cast<const char*>(&bits), sizeof bits);
    }
    return cache_->remember(key_, placed_unknown_);
  }

  // Keeps the deepest prefix found (by ok operations placed) for the
  // explanation. Only the frames pushed since the stack last agreed with it
  // are copied, so this costs O(1) per step amortized.
  void note_progress() {
    const size_t placed = ok_.size() - remaining_ok_;
    if (placed <= best_placed_) return;
    best_placed_ = placed;
    best_path_.resize(best_agree_);
    best_path_.insert(best_path_.end(), stack_.begin() + static_cast<ptrdiff_t>(best_agree_), stack_.end());
    best_agree_ = stack_.size();
  }

  const CheckOptions& options_;
  ValueTable values_;
  std::vector<KeyOp> ok_;
  std::vector<KeyOp> unknown_;
  std::vector<uint32_t> next_, prev_;  // the ok event list
  std::vector<uint32_t> window_end_;
  struct EffectClass {
    std::vector<uint32_t> members;  // into unknown_, in call order
    uint32_t placed = 0;            // its first `placed` members are
  };
  std::vector<EffectClass> classes_;
  std::vector<uint32_t> class_of_;                 // by unknown_ index
  std::vector<uint32_t> class_next_, class_prev_;  // node c+1 is classes_[c]
  std::vector<uint32_t> incr_unknown_;             // unknown incr, in call order
  std::vector<uint32_t> cas_unknown_;              // unknown cas, in call order

  std::vector<uint64_t> placed_ok_;
  std::vector<uint64_t> placed_unknown_;
  uint32_t base_ = 0;
  uint32_t state_ = kAbsent;
  uint32_t remaining_ok_ = 0;
  std::vector<Frame> stack_;
  ChainTargets targets_{values_};
  uint64_t bound_ns_ = 0;
  std::optional<ConfigCache> cache_;
  std::string key_;
  uint64_t steps_ = 0;

  std::vector<Frame> best_path_;
  size_t best_placed_ = 0;
  size_t best_agree_ = 0;
};

// Why `op` cannot take effect on `state`; `shown` is the register's actual
// value for a person (`state` may be kUnread, which stands for many).
std::string explain_step_error(const KeyOp& op, uint32_t state, const std::string& shown,
                               const ValueTable& values) {
  const std::string holds = "the register holds " + shown;
  switch (op.kind) {
    case OpKind::kGet:
      return "returned " + quote_optional(op.op->read) + ", but " + holds;
    case OpKind::kSet:
      break;
    case OpKind::kCas:
      if (op.op->swapped) return "expected " + quote_optional(op.op->expected) + ", but " + holds;
      return "did not swap, but " + holds + ", the value it expected";
    case OpKind::kIncr: {
      const std::optional<int64_t>& current = values.integer(state);
      if (!current) return holds + ", not an integer";
      int64_t sum = 0;
      if (__builtin_add_overflow(*current, op.op->delta, &sum)) return holds + ": it would overflow";
      return "returned " + std::to_string(op.op->result) + ", but " + holds + ", so it would return " +
             std::to_string(sum);
    }
  }
  return "fits here, but no order of what remains works after it";
}

std::string KeySearch::explain(Verdict verdict, std::string_view key,
                               std::vector<uint64_t>* ids) const {
  // Replay the deepest prefix to learn the register's value at its end,
  // both as the search sees it and as it really is.
  ValueTable values = values_;
  uint32_t state = kAbsent;
  std::string shown = "absent";
  std::vector<bool> placed_ok(ok_.size(), false);
  for (const Frame& frame : best_path_) {
    const KeyOp& op = frame.unknown ? unknown_[frame.index] : ok_[frame.index];
    const Step result = step(op, state, values);
    SYNOD_ASSERT(result.ok(), "the deepest prefix replays");
    if (op.kind == OpKind::kSet || (op.kind == OpKind::kCas && state == op.expected)) {
      shown = quote_value(op.op->value);
    } else if (op.kind == OpKind::kIncr && result.next != state) {
      shown = values.describe(result.next);
    }
    state = result.next;
    if (!frame.unknown) placed_ok[frame.index] = true;
  }
  // Where it got stuck: the pending ok operation that returns first, and
  // everything called before that return (what could go next).
  uint32_t stuck = kNone;
  for (uint32_t i = 0; i < ok_.size(); ++i) {
    if (!placed_ok[i] && (stuck == kNone || ok_[i].return_ns < ok_[stuck].return_ns)) stuck = i;
  }
  SYNOD_ASSERT(stuck != kNone, "a failed search leaves an ok operation pending");
  const Operation& blamed = *ok_[stuck].op;

  std::string text;
  if (verdict == Verdict::kViolation) {
    text = violation_headline(blamed, operations());
  } else {
    text = "inconclusive: the search of the " + std::to_string(operations()) +
           " operations on key " + quote_value(key) + " gave up after " +
           std::to_string(steps_) + " steps and " + std::to_string(cache_->size()) +
           " configurations (about " + std::to_string(cache_->bytes() >> 20) +
           " MiB; see CheckOptions).\n";
  }
  text += "The longest linearizable prefix places " + std::to_string(best_placed_) + " of the " +
          std::to_string(ok_.size()) + " acknowledged operations";
  if (unknown_.size() != 0) {
    text += " (" + std::to_string(unknown_.size()) +
            " more, of unknown outcome, may take effect anywhere after their call or not at all)";
  }
  text += best_path_.empty() ? ".\n" : "; it ends:\n";
  const size_t listed = std::min(best_path_.size(), options_.prefix_operations_shown_max);
  if (listed < best_path_.size()) {
    text += "  ... " + std::to_string(best_path_.size() - listed) + " earlier\n";
  }
  for (size_t i = best_path_.size() - listed; i < best_path_.size(); ++i) {
    const Frame& frame = best_path_[i];
    const Operation& op = *(frame.unknown ? unknown_[frame.index] : ok_[frame.index]).op;
    text += "  " + describe(op) + "\n";
    ids->push_back(op.id);
  }
  text += "after which the register holds " + shown +
          ". What could take effect next, and why it cannot:\n";
  for (uint32_t i = 0; i < ok_.size() && ok_[i].call_ns <= blamed.return_ns; ++i) {
    if (placed_ok[i]) continue;
    const Step result = step(ok_[i], state, values);
    text += "  " + describe(*ok_[i].op) + ": " +
            (result.ok() ? "fits here, but no order of what remains works after it"
                         : explain_step_error(ok_[i], state, shown, values)) +
            "\n";
    ids->push_back(ok_[i].op->id);
  }
  return text;
}

}  // namespace

std::string_view verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kOk: return "ok";
    case Verdict::kViolation: return "violation";
    case Verdict::kInconclusive: return "inconclusive";
  }
  return "invalid";
}

Status CheckOptions::validate() const {
  if (steps_max_per_key == 0) return Error(Errc::kInvalidArgument, "steps_max_per_key must be > 0");
  if (cache_bytes_max_per_key == 0) {
    return Error(Errc::kInvalidArgument, "cache_bytes_max_per_key must be > 0");
  }
  return Status();
}

Result<CheckReport> check_linearizability(const History& history, const CheckOptions& options) {
  if (Status status = options.validate(); !status.ok()) return status.error();
  if (Status status = validate_history(history); !status.ok()) return status.error();

  // P-compositionality: each key on its own. Failed operations never took
  // effect, and an unknown get changes nothing and its output is not
  // checked, so neither constrains anything.
  std::map<std::string_view, std::vector<const Operation*>> ops_by_key;
  for (const Operation& op : history) {
    std::vector<const Operation*>& ops = ops_by_key[op.key];
    const bool inert = op.outcome == Outcome::kFail ||
                       (op.outcome == Outcome::kUnknown && op.kind == OpKind::kGet);
    if (!inert) ops.push_back(&op);
  }

  CheckReport report;
  CheckStats& stats = report.stats;
  stats.operations = history.size();
  stats.keys = ops_by_key.size();
  for (const auto& [key, ops] : ops_by_key) {
    ++stats.keys_checked;
    stats.operations_checked += ops.size();
    stats.operations_unknown += static_cast<uint64_t>(std::count_if(
        ops.begin(), ops.end(), [](const Operation* op) { return op->outcome == Outcome::kUnknown; }));
    stats.operations_per_key_max = std::max<uint64_t>(stats.operations_per_key_max, ops.size());
    std::optional<OverwrittenRead> overwritten;
    if (options.overwritten_read_check) overwritten = find_overwritten_read(ops);
    if (overwritten) {
      report.verdict = Verdict::kViolation;
      report.key = std::string(key);
      report.operation_ids.clear();
      report.explanation = explain_overwritten_read(*overwritten, ops.size(), &report.operation_ids);
      break;
    }
    KeySearch search(ops, options);
    const Verdict verdict = search.run();
    stats.configurations += search.configurations();
    stats.steps += search.steps();
    if (verdict == Verdict::kOk) continue;
    // The first inconclusive key is kept, unless a violation comes later.
    if (verdict == Verdict::kInconclusive && report.verdict == Verdict::kInconclusive) continue;
    report.verdict = verdict;
    report.key = std::string(key);
    report.operation_ids.clear();
    report.explanation = search.explain(verdict, key, &report.operation_ids);
    if (verdict == Verdict::kViolation) break;
  }
  return report;
}

}  // namespace synod::sim
