// The linearizability checker on hand-written histories, legal and not.
// Histories are scripts (tests/sim/history_builder.h): one operation per
// line, `<client> <kind> <key> <inputs> [-> <output>] <call> <return>
// [unknown|fail]`, times in simulated nanoseconds. Intervals that share an
// instant overlap.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>

#include "sim/history_builder.h"
#include "sim/linearizability.h"

namespace synod::sim::testing {
namespace {

CheckReport check(const History& history, const CheckOptions& options = {}) {
  base::Result<CheckReport> report = check_linearizability(history, options);
  EXPECT_TRUE(report.ok()) << report.error().to_string();
  return report.ok() ? std::move(report).value() : CheckReport{};
}

CheckReport check(std::string_view script, const CheckOptions& options = {}) {
  return check(HistoryBuilder().script(script).history(), options);
}

void expect_linearizable(std::string_view script) {
  const CheckReport report = check(script);
  EXPECT_EQ(report.verdict, Verdict::kOk) << script << "\n" << report.explanation;
}

// Returns the report so a test can look at the explanation.
CheckReport expect_violation(std::string_view script) {
  CheckReport report = check(script);
  EXPECT_EQ(report.verdict, Verdict::kViolation) << script;
  EXPECT_FALSE(report.explanation.empty());
  return report;
}

bool names(const CheckReport& report, uint64_t id) {
  return std::find(report.operation_ids.begin(), report.operation_ids.end(), id) !=
         report.operation_ids.end();
}

bool mentions(const CheckReport& report, std::string_view text) {
  return report.explanation.find(text) != std::string::npos;
}

TEST(Linearizability, EmptyHistoryIsLinearizable) { expect_linearizable(""); }

TEST(Linearizability, SequentialHistoryOfEveryKindIsLinearizable) {
  expect_linearizable(R"(
    1 get k -> absent               0  10
    1 set k 5                      20  30
    2 incr k 2 -> 7                40  50
    3 get k -> 7                   60  70
    1 cas k 7 x -> swapped         80  90
    2 cas k 7 y -> kept           100 110
    3 get k -> x                  120 130
    1 incr fresh -3 -> -3         140 150
    2 cas other absent a -> swapped 160 170
    3 cas other absent b -> kept  180 190)");
}

TEST(Linearizability, ConcurrentSetAndGetMayTakeEffectInEitherOrder) {
  for (const char* seen : {"a", "b"}) {
    expect_linearizable(std::string(R"(
      1 set k a        0 10
      1 set k b       20 40
      2 get k -> )") + seen + " 25 35");
  }
}

TEST(Linearizability, IntervalsThatShareAnInstantOverlap) {
  expect_linearizable(R"(
    1 set k a            0 10
    2 get k -> absent   10 20)");
}

TEST(Linearizability, StaleReadIsAViolation) {
  const CheckReport report = expect_violation(R"(
    1 set k a        0 10
    1 set k b       20 30
    3 get k -> a    40 50)");
  EXPECT_EQ(report.key, "k");
  EXPECT_TRUE(names(report, 3));
  EXPECT_TRUE(mentions(report, "get by client 3")) << report.explanation;
  EXPECT_TRUE(mentions(report, "returned \"a\"")) << report.explanation;
}

TEST(Linearizability, LostWriteIsAViolation) {
  expect_violation(R"(
    1 set k a            0 10
    2 get k -> absent   20 30)");
}

TEST(Linearizability, WriteSeenThenUnseenIsAViolation) {
  const CheckReport report = expect_violation(R"(
    1 set k a        0  10
    1 set k b       20 100
    2 get k -> b    30  40
    3 get k -> a    50  60)");
  EXPECT_TRUE(names(report, 4)) << report.explanation;
}

TEST(Linearizability, OldThenNewDuringAWriteIsLinearizable) {
  expect_linearizable(R"(
    1 set k a        0  10
    1 set k b       20 100
    2 get k -> a    30  40
    3 get k -> b    50  60)");
}

TEST(Linearizability, TwoCasFromTheSameValueCannotBothSwap) {
  expect_violation(R"(
    1 set k a                   0 10
    2 cas k a b -> swapped     20 40
    3 cas k a c -> swapped     25 45)");
}

TEST(Linearizability, OneOfTwoConcurrentCasSwaps) {
  expect_linearizable(R"(
    1 set k a                   0 10
    2 cas k a b -> kept        20 40
    3 cas k a c -> swapped     25 45
    1 get k -> c               50 60)");
}

TEST(Linearizability, CasThatSaysItDidNotSwapMustHaveSeenAnotherValue) {
  expect_violation(R"(
    1 set k a                   0 10
    2 cas k a b -> kept        20 30)");
}

TEST(Linearizability, CasExpectingAbsentSwapsOnlyOnce) {
  expect_violation(R"(
    1 cas k absent x -> swapped   0 10
    2 cas k absent y -> swapped  20 30)");
}

TEST(Linearizability, TwoIncrementsAreNotLost) {
  expect_violation(R"(
    1 incr k 1 -> 1     0 10
    2 incr k 1 -> 2     5 15
    3 get k -> 1       20 30)");
}

TEST(Linearizability, ConcurrentIncrementsMayReturnInEitherOrder) {
  expect_linearizable(R"(
    1 incr k 1 -> 2     0 10
    2 incr k 1 -> 1     5 15
    3 get k -> 2       20 30)");
}

TEST(Linearizability, TwoIncrementsCannotReturnTheSameValue) {
  expect_violation(R"(
    1 incr k 1 -> 1     0 10
    2 incr k 1 -> 1     5 15)");
}

TEST(Linearizability, IncrementOfANonIntegerCannotSucceed) {
  expect_violation(R"(
    1 set k x           0 10
    2 incr k 1 -> 1    20 30)");
}

TEST(Linearizability, FailedIncrementOfANonIntegerIsIgnored) {
  expect_linearizable(R"(
    1 set k x           0 10
    2 incr k 1         20 30 fail
    3 get k -> x       40 50)");
}

TEST(Linearizability, FailedWriteNeverTakesEffect) {
  expect_linearizable(R"(
    1 set k a           0 10
    2 set k b          20 30 fail
    3 get k -> a       40 50)");
  expect_violation(R"(
    1 set k a           0 10
    2 set k b          20 30 fail
    3 get k -> b       40 50)");
}

TEST(Linearizability, UnknownWriteThatALaterReadObservesIsLinearizable) {
  expect_linearizable(R"(
    1 set k a           0 10
    2 set k b          20 30 unknown
    3 get k -> b       40 50)");
}

TEST(Linearizability, UnknownWriteThatNobodyObservesIsLinearizable) {
  expect_linearizable(R"(
    1 set k a           0 10
    2 set k b          20 30 unknown
    3 get k -> a       40 50
    3 get k -> a       60 70)");
}

TEST(Linearizability, UnknownWriteMayTakeEffectLongAfterItsClientGaveUp) {
  expect_linearizable(R"(
    1 set k a             0   10
    2 set k b            20   30 unknown
    3 get k -> a         40   50
    3 get k -> b       1000 1010)");
}

TEST(Linearizability, UnknownWriteCannotExplainAValueItDidNotWrite) {
  expect_violation(R"(
    1 set k a           0 10
    2 set k b          20 30 unknown
    3 get k -> c       40 50)");
}

TEST(Linearizability, UnknownWriteCannotTakeEffectBeforeItsCall) {
  expect_violation(R"(
    3 get k -> b        0 10
    2 set k b          20 30 unknown)");
}

TEST(Linearizability, UnknownWriteTakesEffectAtMostOnce) {
  expect_violation(R"(
    2 set k b           0 10 unknown
    3 get k -> b       20 30
    1 set k c          40 50
    3 get k -> b       60 70)");
}

TEST(Linearizability, UnknownIncrementMayOrMayNotCount) {
  for (const char* seen : {"1", "2"}) {
    expect_linearizable(std::string(R"(
      1 incr k 1 -> 1    0 10
      2 incr k 1        20 30 unknown
      3 get k -> )") + seen + " 40 50");
  }
}

TEST(Linearizability, ChainOfUnknownOperationsExplainsARead) {
  // 12 needs the unknown set to 10 and then both unknown increments; 13
  // cannot be made of them.
  const char* const kWrites = R"(
    1 set k 0           0 10
    2 set k 10         20 30 unknown
    3 incr k 1         22 32 unknown
    4 incr k 1         24 34 unknown)";
  expect_linearizable(std::string(kWrites) + "\n5 get k -> 12 40 50");
  expect_violation(std::string(kWrites) + "\n5 get k -> 13 40 50");
}

TEST(Linearizability, UnknownCasMaySwapOrNot) {
  expect_linearizable(R"(
    1 set k a                   0 10
    2 cas k a b                20 30 unknown
    3 get k -> b               40 50
    1 cas k b c -> swapped     60 70
    3 get k -> c               80 90)");
}

TEST(Linearizability, UnknownWriteExplainsAFailedCas) {
  // Only the unknown write can make the cas see something other than "a".
  expect_linearizable(R"(
    1 set k a                   0 10
    2 set k z                  20 30 unknown
    3 cas k a b -> kept        40 50)");
}

TEST(Linearizability, KeysAreCheckedOnTheirOwn) {
  const CheckReport report = expect_violation(R"(
    1 set x 1             0 10
    2 set y 1             0 10
    1 get x -> 1         20 30
    2 get y -> absent    20 30)");
  EXPECT_EQ(report.key, "y");
  EXPECT_EQ(report.stats.keys, 2u);
  EXPECT_EQ(report.stats.operations, 4u);
}

TEST(Linearizability, ExplanationOfAnOverwrittenReadNamesWhatOverwroteIt) {
  const CheckReport report = expect_violation(R"(
    1 set account 100          0 10
    2 set account 200         20 30
    3 get account -> 100      40 50
    4 get account -> 200      45 55)");
  std::printf("%s", report.explanation.c_str());
  EXPECT_TRUE(mentions(report,
                       "get by client 3 at [0.000000040s, 0.000000050s] returned \"100\", but no "
                       "order of the 4 operations on key \"account\" can produce that"));
  EXPECT_TRUE(mentions(report,
                       "#1 client 1 set(\"account\", \"100\") [0.000000000s, 0.000000010s] ok: "
                       "overwritten by #2 client 2 set(\"account\", \"200\")"));
  EXPECT_TRUE(names(report, 1) && names(report, 2) && names(report, 3));
}

TEST(Linearizability, ExplanationOfAFailedSearchShowsThePrefixAndWhatCouldGoNext) {
  const CheckReport report = expect_violation(R"(
    1 set k a        0  10
    1 set k b       20 100
    2 get k -> b    30  40
    3 get k -> a    50  60)");
  std::printf("%s", report.explanation.c_str());
  EXPECT_TRUE(mentions(report, "get by client 3 at [0.000000050s, 0.000000060s] returned \"a\""));
  EXPECT_TRUE(mentions(report, "The longest linearizable prefix places 3 of the 4"));
  EXPECT_TRUE(mentions(report, "#2 client 1 set(\"k\", \"b\")"));
  EXPECT_TRUE(mentions(report, "returned \"a\", but the register holds \"b\""));
  EXPECT_TRUE(names(report, 2) && names(report, 3) && names(report, 4));
}

TEST(Linearizability, ReadOfAValueNeverWrittenIsAViolation) {
  const CheckReport report = expect_violation(R"(
    1 set k a         0 10
    2 get k -> z     20 30)");
  EXPECT_TRUE(mentions(report, "Nothing on this key ever wrote \"z\"")) << report.explanation;
}

// Twenty concurrent writes, then reads of two of them in turn: only one can
// be last, but proving it means trying every order of the twenty.
HistoryBuilder hard_violation(const std::string& key) {
  HistoryBuilder h;
  for (uint64_t i = 0; i < 20; ++i) h.set(i, key, std::to_string(i), 0, 100);
  h.get(98, key, "3", 200, 300);
  h.get(99, key, "4", 400, 500);
  return h;
}

TEST(Linearizability, ExhaustedBudgetIsInconclusive) {
  CheckOptions options;
  options.steps_max_per_key = 50;
  const CheckReport report = check(hard_violation("k").history(), options);
  EXPECT_EQ(report.verdict, Verdict::kInconclusive) << report.explanation;
  EXPECT_TRUE(mentions(report, "inconclusive"));
  EXPECT_EQ(report.key, "k");
}

TEST(Linearizability, ViolationOnALaterKeyOutranksAnInconclusiveOne) {
  HistoryBuilder h = hard_violation("a");
  h.script(R"(
    1 set b x         0 10
    2 get b -> y     20 30)");
  CheckOptions options;
  options.steps_max_per_key = 50;
  const CheckReport report = check(h.history(), options);
  EXPECT_EQ(report.verdict, Verdict::kViolation);
  EXPECT_EQ(report.key, "b");
}

TEST(Linearizability, InvalidHistoryIsAnError) {
  History history = HistoryBuilder().script("1 set k a 0 10").history();
  history.push_back(history.back());  // the same id twice
  const base::Result<CheckReport> report = check_linearizability(history);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.code(), base::Errc::kInvalidArgument);

  CheckOptions options;
  options.steps_max_per_key = 0;
  EXPECT_FALSE(check_linearizability(HistoryBuilder().history(), options).ok());
}

}  // namespace
}  // namespace synod::sim::testing
