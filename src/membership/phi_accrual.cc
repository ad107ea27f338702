#include "membership/phi_accrual.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace synod::membership {

void PhiAccrualDetector::heartbeat(uint64_t now_ms) {
  if (seen_ && now_ms >= last_ms_) {
    const double gap = static_cast<double>(now_ms - last_ms_);
    gaps_.push_back(gap);
    sum_ += gap;
    sum_squares_ += gap * gap;
    if (gaps_.size() > std::max<size_t>(options_.window, 1)) {
      const double old = gaps_.front();
      gaps_.pop_front();
      sum_ -= old;
      sum_squares_ -= old * old;
    }
  }
  if (!seen_ || now_ms >= last_ms_) last_ms_ = now_ms;
  seen_ = true;
}

double PhiAccrualDetector::mean_gap_ms() const {
  return gaps_.empty() ? 0.0 : sum_ / static_cast<double>(gaps_.size());
}

double PhiAccrualDetector::stddev_gap_ms() const {
  if (gaps_.empty()) return 0.0;
  const double mean = mean_gap_ms();
  const double variance = sum_squares_ / static_cast<double>(gaps_.size()) - mean * mean;
  return std::sqrt(std::max(variance, 0.0));
}

double PhiAccrualDetector::phi(uint64_t now_ms) const {
  if (gaps_.empty() || now_ms <= last_ms_) return 0.0;
  const double silence = static_cast<double>(now_ms - last_ms_);
  const double mean = mean_gap_ms() + options_.acceptable_pause_ms;
  const double stddev = std::max(stddev_gap_ms(), options_.min_stddev_ms);
  // P(gap >= silence) = Q(z), the normal distribution's upper tail.
  const double z = (silence - mean) / stddev;
  if (z < 8.0) {
    return std::max(0.0, -std::log10(0.5 * std::erfc(z / std::sqrt(2.0))));
  }
  // Far out, erfc underflows: Q(z) ~ exp(-z^2/2) / (z sqrt(2 pi)).
  return (z * z / 2.0 + std::log(z * std::sqrt(2.0 * std::numbers::pi))) / std::numbers::ln10;
}

}  // namespace synod::membership
