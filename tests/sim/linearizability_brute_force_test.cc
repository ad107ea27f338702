// The checker against a brute-force oracle on many tiny random histories.
//
// The checker prunes its search (minimal-call order, Lowe's cache with
// subsumption, chains of unknown steps only where they can matter, classes
// of interchangeable unknown operations, one state for every value nothing
// reads). The oracle prunes nothing: it tries every subset of the unknown
// operations and every order of them and the ok ones that respects real
// time, straight from the definition. On every history the two must agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/rng.h"
#include "sim/linearizability.h"

namespace synod::sim::testing {
namespace {

using Register = std::optional<std::string>;

// docs/history.md: an optional '-', digits without a leading zero ("0"
// alone is fine, "-0" is not), within 64 bits.
std::optional<int64_t> integer_of(const Register& value) {
  if (!value) return 0;
  const std::string& text = *value;
  const size_t first_digit = !text.empty() && text[0] == '-' ? 1 : 0;
  if (first_digit >= text.size() || text.size() > 20) return std::nullopt;
  if (text[first_digit] == '0' && text.size() > 1) return std::nullopt;
  if (text[first_digit] < '0' || text[first_digit] > '9') return std::nullopt;
  int64_t result = 0;
  const char* end = text.data() + text.size();
  const auto [at, error] = std::from_chars(text.data(), end, result);
  if (error != std::errc() || at != end) return std::nullopt;
  return result;
}

// The register's semantics, written again from docs/history.md.
bool apply(const Operation& op, Register& value) {
  const bool check_output = op.outcome == Outcome::kOk;
  switch (op.kind) {
    case OpKind::kGet: return !check_output || op.read == value;
    case OpKind::kSet: value = op.value; return true;
    case OpKind::kCas: {
      const bool match = value == op.expected;
      if (check_output && match != op.swapped) return false;
      if (match) value = op.value;
      return true;
    }
    case OpKind::kIncr: {
      const std::optional<int64_t> current = integer_of(value);
      int64_t sum = 0;
      const bool fits = current && !__builtin_add_overflow(*current, op.delta, &sum);
      if (!check_output) {
        if (fits) value = std::to_string(sum);
        return true;
      }
      if (!fits || sum != op.result) return false;
      value = std::to_string(sum);
      return true;
    }
  }
  return false;
}

bool precedes(const Operation& a, const Operation& b) {
  return a.outcome != Outcome::kUnknown && a.return_ns < b.call_ns;
}

// Every order of `ops` in which no operation comes after one it precedes.
bool some_order_works(std::vector<const Operation*>& ops, std::map<std::string, Register> registers,
                      std::vector<bool>& used, size_t placed) {
  if (placed == ops.size()) return true;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (used[i]) continue;
    bool minimal = true;
    for (size_t j = 0; j < ops.size() && minimal; ++j) {
      minimal = used[j] || j == i || !precedes(*ops[j], *ops[i]);
    }
    if (!minimal) continue;
    std::map<std::string, Register> next = registers;
    if (!apply(*ops[i], next[ops[i]->key])) continue;
    used[i] = true;
    const bool works = some_order_works(ops, std::move(next), used, placed + 1);
    used[i] = false;
    if (works) return true;
  }
  return false;
}

bool oracle(const History& history) {
  std::vector<const Operation*> ok, unknown;
  for (const Operation& op : history) {
    if (op.outcome == Outcome::kOk) ok.push_back(&op);
    if (op.outcome == Outcome::kUnknown) unknown.push_back(&op);
  }
  for (uint64_t subset = 0; subset < (uint64_t{1} << unknown.size()); ++subset) {
    std::vector<const Operation*> ops = ok;
    for (size_t i = 0; i < unknown.size(); ++i) {
      if ((subset >> i) & 1) ops.push_back(unknown[i]);
    }
    std::vector<bool> used(ops.size(), false);
    if (some_order_works(ops, {}, used, 0)) return true;
  }
  return false;
}

// Tiny histories over a few values, so that values repeat, integers meet
// increments, and unknown operations crowd together.
History random_history(base::Rng& rng, size_t operations, size_t keys) {
  static const Register kValues[] = {std::nullopt, "a", "b", "0", "1", "2", "01"};
  const auto pick = [&]() -> Register { return kValues[rng.uniform(std::size(kValues))]; };
  const auto pick_present = [&] { return *kValues[1 + rng.uniform(std::size(kValues) - 1)]; };
  History history;
  for (size_t i = 0; i < operations; ++i) {
    Operation op;
    op.id = i + 1;
    op.client = rng.uniform(3) + 1;
    op.key = "k" + std::to_string(rng.uniform(keys));
    op.kind = static_cast<OpKind>(rng.uniform(4));
    op.call_ns = rng.uniform(30);
    op.return_ns = op.call_ns + rng.uniform(15);
    const uint64_t outcome = rng.uniform(10);
    op.outcome = outcome < 6 ? Outcome::kOk : outcome < 9 ? Outcome::kUnknown : Outcome::kFail;
    const bool ok = op.outcome == Outcome::kOk;
    switch (op.kind) {
      case OpKind::kGet:
        if (ok) op.read = pick();
        break;
      case OpKind::kSet: op.value = pick_present(); break;
      case OpKind::kCas:
        op.expected = pick();
        op.value = pick_present();
        op.swapped = ok && rng.chance(1, 2);
        break;
      case OpKind::kIncr:
        op.delta = static_cast<int64_t>(rng.uniform(4)) - 1;
        if (ok) op.result = static_cast<int64_t>(rng.uniform(5)) - 1;
        break;
    }
    history.push_back(op);
  }
  return history;
}

TEST(LinearizabilityOracle, AgreesWithBruteForceOnTinyHistories) {
  base::Rng rng(2024);
  int linearizable = 0;
  int histories = 0;
  for (; histories < 60000; ++histories) {
    const History history = random_history(rng, 2 + rng.uniform(8), 1 + rng.uniform(2));
    const bool expected = oracle(history);
    const base::Result<CheckReport> report = check_linearizability(history);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    ASSERT_NE(report->verdict, Verdict::kInconclusive);
    const bool actual = report->verdict == Verdict::kOk;
    if (actual != expected) {
      std::string text;
      for (const Operation& op : history) text += describe(op) + "\n";
      FAIL() << "history " << histories << ": oracle says "
             << (expected ? "linearizable" : "not linearizable") << ", checker says "
             << verdict_name(report->verdict) << "\n"
             << text << report->explanation;
    }
    linearizable += expected;
  }
  std::printf("%d of %d linearizable\n", linearizable, histories);
  // Both answers must be common, or the comparison proves little.
  EXPECT_GT(linearizable, histories / 10);
  EXPECT_LT(linearizable, histories * 9 / 10);
}

}  // namespace
}  // namespace synod::sim::testing
