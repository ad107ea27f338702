// The phi-accrual detector: how soon a silent peer is suspected, by how
// regular its heartbeats were. Figures are printed ("phi: ...").
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "base/rng.h"
#include "membership/phi_accrual.h"

namespace synod::membership {
namespace {

// Heartbeats every `period_ms` with up to `jitter_ms` either way, for 60 s;
// returns the time of the last one.
uint64_t feed(PhiAccrualDetector& detector, uint64_t period_ms, uint64_t jitter_ms, uint64_t seed) {
  base::Rng rng(seed);
  uint64_t now = 1000;
  for (int i = 0; i < 600; ++i) {
    now += period_ms - jitter_ms + rng.uniform(2 * jitter_ms + 1);
    detector.heartbeat(now);
  }
  return now;
}

// Milliseconds of silence until phi first reaches the threshold.
uint64_t time_to_suspicion(const PhiAccrualDetector& detector, uint64_t last) {
  for (uint64_t silence = 0; silence < 600'000; ++silence) {
    if (detector.suspected(last + silence)) return silence;
  }
  return 600'000;
}

TEST(PhiAccrual, NoHistoryNoOpinion) {
  PhiAccrualDetector detector;
  EXPECT_EQ(detector.phi(5000), 0.0);
  detector.heartbeat(1000);
  EXPECT_EQ(detector.phi(100'000), 0.0) << "one heartbeat is no history";
  detector.heartbeat(1100);
  EXPECT_GT(detector.phi(100'000), 8.0);
}

TEST(PhiAccrual, ASteadyPeerIsTrustedOnTimeAndSuspectedSoonAfterItStops) {
  PhiAccrualDetector detector;
  const uint64_t last = feed(detector, 100, 5, 1);
  EXPECT_LT(detector.phi(last + 100), 1.0);
  EXPECT_LT(detector.phi(last + 150), 2.0);
  const uint64_t suspicion = time_to_suspicion(detector, last);
  EXPECT_GT(suspicion, 150u);
  EXPECT_LT(suspicion, 1000u);
  std::printf("phi: heartbeats every 100 +- 5 ms: phi %.2f at 100 ms of silence, %.2f at 200 ms; "
              "suspected (phi >= 8) after %llu ms\n",
              detector.phi(last + 100), detector.phi(last + 200),
              static_cast<unsigned long long>(suspicion));
}

TEST(PhiAccrual, AJitteryPeerGetsProportionallyLonger) {
  PhiAccrualDetector steady, jittery;
  const uint64_t steady_last = feed(steady, 300, 5, 2);
  const uint64_t jittery_last = feed(jittery, 300, 290, 3);
  const uint64_t steady_after = time_to_suspicion(steady, steady_last);
  const uint64_t jittery_after = time_to_suspicion(jittery, jittery_last);
  EXPECT_GT(jittery_after, steady_after * 3 / 2);
  std::printf("phi: suspected after %llu ms of silence at 300 +- 5 ms, after %llu ms at 300 +- 290 ms "
              "(gap stddev %.1f vs %.1f ms)\n",
              static_cast<unsigned long long>(steady_after),
              static_cast<unsigned long long>(jittery_after), steady.stddev_gap_ms(),
              jittery.stddev_gap_ms());
}

TEST(PhiAccrual, PhiGrowsWithSilenceAndFallsWhenHeartbeatsResume) {
  PhiAccrualDetector detector;
  const uint64_t last = feed(detector, 100, 10, 4);
  double previous = 0;
  for (uint64_t silence = 0; silence <= 60'000; silence += 50) {
    const double phi = detector.phi(last + silence);
    EXPECT_GE(phi, previous) << "at " << silence << " ms";
    EXPECT_TRUE(std::isfinite(phi));
    previous = phi;
  }
  EXPECT_GT(previous, 1000.0) << "a minute of silence after 100 ms heartbeats";
  detector.heartbeat(last + 60'000);
  detector.heartbeat(last + 60'100);
  EXPECT_LT(detector.phi(last + 60'200), 8.0) << "trusted again once heartbeats resume";
}

TEST(PhiAccrual, TheWindowForgetsOldGaps) {
  PhiOptions options;
  options.window = 10;
  PhiAccrualDetector detector(options);
  uint64_t now = feed(detector, 1000, 0, 5);  // once a second
  for (int i = 0; i < 10; ++i) detector.heartbeat(now += 100);  // now every 100 ms
  EXPECT_EQ(detector.samples(), 10u);
  EXPECT_NEAR(detector.mean_gap_ms(), 100.0, 0.001);
  EXPECT_TRUE(detector.suspected(now + 1000)) << "a second of silence is long for the new rhythm";
}

}  // namespace
}  // namespace synod::membership
