// A log-bucketed latency histogram in the manner of HdrHistogram: values
// (nanoseconds, or any unsigned count) fall into buckets whose width is
// 1/64 of their power of two, so every recorded value is known to within
// about 1.6%, with fixed memory (64 × 64 counters) and O(1) recording.
// Percentiles report the upper edge of the bucket that holds them (never
// an underestimate). Histograms of several workers merge by addition.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace synod::base {

class LogHistogram {
 public:
  static constexpr int kSubBits = 6;  // 64 sub-buckets per power of two
  static constexpr int kSub = 1 << kSubBits;

  void record(uint64_t value) {
    counts_[index(value)]++;
    count_++;
    sum_ += value;
    if (value > max_) max_ = value;
    if (count_ == 1 || value < min_) min_ = value;
  }

  void merge(const LogHistogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    if (other.count_ != 0 && (count_ == 0 || other.min_ < min_)) min_ = other.min_;
    count_ += other.count_;
    sum_ += other.sum_;
    if (other.max_ > max_) max_ = other.max_;
  }

  // The value at quantile q in [0, 1] (0 when empty).
  uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_));
    if (rank >= count_) rank = count_ - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen > rank) {
        const uint64_t upper = upper_edge(i);
        return upper < max_ ? upper : max_;
      }
    }
    return max_;
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  uint64_t min() const { return min_; }
  double mean() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / static_cast<double>(count_); }

 private:
  // Values below 64 get a bucket each; above, (power of two, top 6 bits
  // after the leading one).
  static size_t index(uint64_t value) {
    if (value < kSub) return static_cast<size_t>(value);
    const int power = 63 - std::countl_zero(value);  // >= kSubBits
    const uint64_t sub = (value >> (power - kSubBits)) & (kSub - 1);
    return static_cast<size_t>((power - kSubBits + 1) * kSub + sub);
  }
  static uint64_t upper_edge(size_t i) {
    if (i < kSub) return i;
    const int power = static_cast<int>(i / kSub) - 1 + kSubBits;
    const uint64_t sub = i % kSub;
    const uint64_t base = (uint64_t{1} << power) + (sub << (power - kSubBits));
    return base + (uint64_t{1} << (power - kSubBits)) - 1;
  }

  std::array<uint64_t, (64 - kSubBits + 1) * kSub> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
  uint64_t min_ = 0;
};

}  // namespace synod::base
