// The checker on generated histories: registers that are linearizable by
// construction must pass, and one stale read planted in them must not.
// Also the size the issue asks for: a 100,000-operation history.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>

#include "sim/linearizability.h"
#include "sim/register_workload.h"

namespace synod::sim::testing {
namespace {

CheckReport check(const History& history) {
  base::Result<CheckReport> report = check_linearizability(history);
  EXPECT_TRUE(report.ok()) << report.error().to_string();
  return report.ok() ? std::move(report).value() : CheckReport{};
}

// Accepts the history, then plants a stale read and rejects it, naming the
// key of the read that was changed.
void expect_accepted_then_rejected(const RegisterWorkload& workload) {
  History history = generate_register_history(workload);
  const CheckReport accepted = check(history);
  ASSERT_EQ(accepted.verdict, Verdict::kOk)
      << "seed " << workload.seed << ":\n" << accepted.explanation;

  base::Rng rng(workload.seed);
  const std::optional<size_t> changed = make_stale_read(history, rng);
  ASSERT_TRUE(changed.has_value()) << "seed " << workload.seed << ": no get to change";
  const CheckReport rejected = check(history);
  ASSERT_EQ(rejected.verdict, Verdict::kViolation)
      << "seed " << workload.seed << ", changed #" << history[*changed].id << "\n"
      << rejected.explanation;
  EXPECT_EQ(rejected.key, history[*changed].key);
}

TEST(LinearizabilityGenerated, LinearizableRegistersPassAndAStaleReadIsCaught) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    expect_accepted_then_rejected({.seed = seed, .operations = 400, .clients = 10, .keys = 3});
  }
}

TEST(LinearizabilityGenerated, ManyUnknownOutcomesStillDecide) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    expect_accepted_then_rejected(
        {.seed = seed, .operations = 300, .clients = 10, .keys = 2, .unknown_percent = 20});
  }
}

TEST(LinearizabilityGenerated, OneHotKeyWithLongOverlappingOperations) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    expect_accepted_then_rejected({.seed = seed, .operations = 300, .clients = 10, .keys = 1,
                                   .duration_ns_max = 10000});
  }
}

TEST(LinearizabilityGenerated, CheckingIsDeterministic) {
  History history = generate_register_history({.seed = 7, .operations = 500});
  base::Rng rng(7);
  ASSERT_TRUE(make_stale_read(history, rng).has_value());
  const CheckReport first = check(history);
  const CheckReport second = check(history);
  EXPECT_EQ(first.explanation, second.explanation);
  EXPECT_EQ(first.operation_ids, second.operation_ids);
  EXPECT_EQ(first.stats.steps, second.stats.steps);
  EXPECT_EQ(first.stats.configurations, second.stats.configurations);
}

TEST(LinearizabilityGenerated, GeneratedHistoryRoundTripsThroughJsonLines) {
  const History history = generate_register_history({.seed = 3, .operations = 2000});
  std::stringstream stream;
  ASSERT_TRUE(write_history(history, stream).ok());
  const base::Result<History> back = read_history(stream);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(*back, history);
}

// The issue's goal: 100,000 operations checked in under 10 s on this
// machine. Timing is printed, not asserted (machines differ).
TEST(LinearizabilityGenerated, HundredThousandOperations) {
  const RegisterWorkload workload{.seed = 42, .operations = 100'000, .clients = 10, .keys = 4,
                                  .unknown_percent = 2, .fail_percent = 1};
  History history = generate_register_history(workload);

  const auto timed_check = [&](const char* what, const CheckOptions& options) {
    const auto start = std::chrono::steady_clock::now();
    base::Result<CheckReport> result = check_linearizability(history, options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(result.ok());
    const CheckReport report = result.ok() ? std::move(result).value() : CheckReport{};
    const CheckStats& stats = report.stats;
    std::printf(
        "[ timing   ] %s: %zu operations, %llu keys: %s in %.3f s (%llu keys searched, "
        "%llu operations checked of which %llu unknown, %llu configurations, %llu steps)\n",
        what, history.size(), static_cast<unsigned long long>(stats.keys),
        std::string(verdict_name(report.verdict)).c_str(), seconds,
        static_cast<unsigned long long>(stats.keys_checked),
        static_cast<unsigned long long>(stats.operations_checked),
        static_cast<unsigned long long>(stats.operations_unknown),
        static_cast<unsigned long long>(stats.configurations),
        static_cast<unsigned long long>(stats.steps));
    return report;
  };
  const CheckReport accepted = timed_check("linearizable history", {});
  ASSERT_EQ(accepted.verdict, Verdict::kOk) << accepted.explanation;

  base::Rng rng(workload.seed);
  ASSERT_TRUE(make_stale_read(history, rng).has_value());
  const CheckReport rejected = timed_check("with one stale read", {});
  EXPECT_EQ(rejected.verdict, Verdict::kViolation) << rejected.explanation;

  // The search alone must prove it by trying every order before the read,
  // which unknown outcomes make costly: on a budget it may give up, but it
  // must never accept.
  CheckOptions search_alone;
  search_alone.overwritten_read_check = false;
  search_alone.steps_max_per_key = 20'000'000;
  const CheckReport searched = timed_check("with one stale read, search alone", search_alone);
  EXPECT_NE(searched.verdict, Verdict::kOk);
}

}  // namespace
}  // namespace synod::sim::testing
