// The log-bucketed histogram: percentiles within its 1/64 bucket width of
// the exact ones, never below them, and merging equals recording together.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "base/histogram.h"
#include "base/rng.h"

namespace synod::base {
namespace {

TEST(LogHistogram, PercentilesAreWithinTheBucketWidthAndNeverUnderestimate) {
  Rng rng(7);
  LogHistogram h;
  std::vector<uint64_t> values;
  for (int i = 0; i < 100000; ++i) {
    // Latencies from 1 µs to 100 ms, log-uniformly.
    const uint64_t v = uint64_t{1000} << rng.uniform(17);
    const uint64_t jittered = v + rng.uniform(v);
    values.push_back(jittered);
    h.record(jittered);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const uint64_t exact =
        values[std::min(values.size() - 1, static_cast<size_t>(q * static_cast<double>(values.size())))];
    const uint64_t reported = h.percentile(q);
    EXPECT_GE(reported, exact) << "q " << q;
    EXPECT_LE(static_cast<double>(reported), static_cast<double>(exact) * (1.0 + 1.0 / 32)) << "q " << q;
  }
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
}

TEST(LogHistogram, SmallValuesAreExactAndMergingAddsUp) {
  LogHistogram a, b, both;
  for (uint64_t v = 0; v < 64; ++v) {
    a.record(v);
    both.record(v);
  }
  for (uint64_t v = 1000; v < 2000; ++v) {
    b.record(v);
    both.record(v);
  }
  EXPECT_EQ(a.percentile(0.5), 32u);
  a.merge(b);
  for (double q : {0.1, 0.5, 0.99}) EXPECT_EQ(a.percentile(q), both.percentile(q));
  EXPECT_EQ(a.count(), both.count());
  EXPECT_EQ(a.min(), 0u);
  EXPECT_EQ(a.max(), 1999u);
  EXPECT_EQ(LogHistogram().percentile(0.5), 0u);
}

}  // namespace
}  // namespace synod::base
