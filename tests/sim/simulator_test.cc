// The whole-cluster simulator: many seeds with every fault class pass, the
// same seed replays byte for byte, and every injectable protocol bug is
// caught within a bounded number of seeds (so the checks have teeth).
//
// Knobs: SYNOD_SIM_SEEDS (default 200) seeds per configuration,
// SYNOD_SIM_DURATION_S (default 10) simulated seconds of faults per seed.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "base/bugs.h"
#include "sim/simulator.h"
#include "support/numbers.h"

namespace synod::sim {
namespace {

SimOptions options_for(uint64_t seed, int nodes = 5, double duration_s = 10) {
  SimOptions options;
  options.seed = seed;
  options.nodes = nodes;
  options.clients = 10;
  options.duration_ns = static_cast<uint64_t>(duration_s * 1e9);
  options.faults = FaultSet::all();
  return options;
}

std::string failure(const SimResult& result) {
  std::string text = "seed " + std::to_string(result.seed) + ": " + result.violation +
                     "\nlast trace lines:\n";
  const size_t shown = std::min<size_t>(result.trace.size(), 25);
  for (size_t i = result.trace.size() - shown; i < result.trace.size(); ++i) {
    text += "  " + result.trace[i] + "\n";
  }
  return text;
}

void add(SimStats& total, const SimStats& s) {
  total.simulated_ns += s.simulated_ns;
  total.operations += s.operations;
  total.operations_ok += s.operations_ok;
  total.operations_fail += s.operations_fail;
  total.operations_unknown += s.operations_unknown;
  total.leaders_elected += s.leaders_elected;
  total.crashes += s.crashes;
  total.torn_writes += s.torn_writes;
  total.pauses += s.pauses;
  total.partitions += s.partitions;
  total.slow_disks += s.slow_disks;
  total.clock_jumps += s.clock_jumps;
  total.snapshots_installed += s.snapshots_installed;
  total.compactions += s.compactions;
  total.messages_delivered += s.messages_delivered;
}

uint64_t seeds() { return test_support::env_number("SYNOD_SIM_SEEDS", 200); }
double duration_s() {
  return static_cast<double>(test_support::env_number("SYNOD_SIM_DURATION_S", 10));
}

void run_seeds(int nodes) {
  SimStats total;
  const uint64_t count = seeds();
  for (uint64_t seed = 1; seed <= count; ++seed) {
    const SimResult result = run_simulation(options_for(seed, nodes, duration_s()));
    ASSERT_TRUE(result.passed) << failure(result);
    add(total, result.stats);
  }
  std::printf("%d nodes, %llu seeds: %s\n", nodes, static_cast<unsigned long long>(count),
              describe_stats(total).c_str());
  // The runs must exercise what they claim to.
  if (count >= 100) {
    EXPECT_GT(total.crashes, count);
    EXPECT_GT(total.torn_writes, 10u);
    EXPECT_GT(total.pauses, count / 2);
    EXPECT_GT(total.partitions, count / 2);
    EXPECT_GT(total.slow_disks, count / 2);
    EXPECT_GT(total.clock_jumps, 10u);
    EXPECT_GT(total.snapshots_installed, 10u);
    EXPECT_GT(total.operations_unknown, 10u);
    EXPECT_GT(total.operations_ok, 100 * count);
  }
}

TEST(Simulator, FiveNodesPassEverySeedUnderEveryFaultClass) { run_seeds(5); }

TEST(Simulator, ThreeNodesPassEverySeedUnderEveryFaultClass) { run_seeds(3); }

TEST(Simulator, TheSameSeedReplaysByteForByte) {
  const SimResult first = run_simulation(options_for(42, 5, 5));
  const SimResult again = run_simulation(options_for(42, 5, 5));
  ASSERT_TRUE(first.passed) << failure(first);
  EXPECT_EQ(first.digest, again.digest);
  EXPECT_EQ(first.history, again.history);
  EXPECT_EQ(first.trace, again.trace);
  const SimResult other = run_simulation(options_for(43, 5, 5));
  EXPECT_NE(first.digest, other.digest);
}

TEST(Simulator, FaultListParses) {
  auto parsed = parse_faults("partition,crash");
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->has(Fault::kPartition));
  EXPECT_TRUE(parsed->has(Fault::kCrash));
  EXPECT_FALSE(parsed->has(Fault::kPause));
  EXPECT_EQ(parsed->to_string(), "partition,crash");
  EXPECT_EQ(parse_faults("all")->to_string(), FaultSet::all().to_string());
  EXPECT_TRUE(parse_faults("none")->empty());
  auto bad = parse_faults("partition,meteor");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("meteor"), std::string::npos);
}

// Seeds that once found a real bug, with what they found.
struct Regression {
  uint64_t seed;
  double duration_s;
  int nodes;
  const char* found;
};
const Regression kRegressions[] = {
    {3, 60, 5, "a torn WAL batch kept a snapshot marker but lost its hard state: restart refused"},
    {20, 60, 5, "the same, with commit 1733 below a log starting at 1829"},
    {58, 60, 5, "the same, with commit 239 below a log starting at 328"},
    {56, 30, 5,
     "a restarted node's Raft lost configuration changes its engine had applied (Raft started "
     "from the engine's applied index, so they were never delivered again): as the new leader "
     "of a moved partition it re-added a voter as a learner and replicas diverged"},
    {36, 10, 5,
     "a replica added by a move crashed before its snapshot arrived; on restart its log (no "
     "configuration yet) was taken for a removed replica's, so it never came back and the "
     "partition never became fully replicated"},
};

TEST(Simulator, RegressionSeedsPass) {
  for (const Regression& regression : kRegressions) {
    const SimResult result =
        run_simulation(options_for(regression.seed, regression.nodes, regression.duration_s));
    EXPECT_TRUE(result.passed) << "(once: " << regression.found << ")\n" << failure(result);
  }
}

// Each bug must be caught within this many seeds of 30 simulated seconds.
// Measured (seeds 1..60): ack-before-fsync and skip-dedupe fail every seed,
// double-vote 59 in 60, commit-prior-term about 1 in 3; stale-leader-read,
// which needs a deposed leader to serve a read after a newer write was
// acknowledged elsewhere, about 1 in 8; skip-catalog-wait, which needs a
// node lagging behind a keyspace's creation to take a write of its keys,
// about 1 in 9 (missing either in 200 seeds has odds below 1e-9). The hunt stops at the first catch, so a generous bound costs
// nothing while the checks work.
constexpr uint64_t kSeedsToCatchABug = 200;
constexpr double kBugHuntDurationS = 30;

TEST(Simulator, EveryInjectedBugIsCaught) {
  if (!base::kBugsCompiledIn) GTEST_SKIP() << "built with SYNOD_INJECTABLE_BUGS=OFF";
  for (const base::BugInfo& bug : base::kBugs) {
    bool caught = false;
    for (uint64_t seed = 1; seed <= kSeedsToCatchABug && !caught; ++seed) {
      SimOptions options = options_for(seed, 5, kBugHuntDurationS);
      options.bugs = base::BugSet::of(bug.bug);
      const SimResult result = run_simulation(options);
      if (!result.passed) {
        caught = true;
        std::printf("%-18s caught at seed %llu: %s\n", std::string(bug.name).c_str(),
                    static_cast<unsigned long long>(seed), result.violation.substr(0, 160).c_str());
      }
    }
    EXPECT_TRUE(caught) << "bug " << bug.name << " (" << bug.description
                        << ") survived seeds 1.." << kSeedsToCatchABug;
  }
}

}  // namespace
}  // namespace synod::sim
