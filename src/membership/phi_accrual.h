// Phi-accrual failure detection (Hayashibara, Defago, Yared and Katayama,
// "The phi accrual failure detector", 2004; the form Cassandra and Akka use).
//
// Instead of a yes/no timeout, the detector learns how a peer's heartbeats
// arrive (the mean and spread of the gaps between them, over a sliding
// window) and turns the silence since the last one into a suspicion level:
//   phi = -log10(P(a gap at least this long)),
// under a normal distribution of gaps. phi 1 means a 10% chance the peer is
// merely slow, phi 8 one in 10^8. A steady peer is suspected soon after it
// stops; a jittery one (or a jittery network) is given proportionally more
// time, without anyone tuning a timeout per deployment.
//
// Suspicion is local: it feeds logs, metrics and this node's own view.
// Declaring a node dead (and moving its replicas) is the meta group's
// decision. Pure: the caller passes the time of every arrival and query.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace synod::membership {

struct PhiOptions {
  double threshold = 8.0;        // suspected at or above
  size_t window = 1000;          // gaps remembered
  double min_stddev_ms = 50.0;   // a floor, so a perfectly regular peer is not
                                 // suspected one jitter after its usual gap
  double acceptable_pause_ms = 0.0;  // added to the mean gap (e.g. GC pauses)
};

class PhiAccrualDetector {
 public:
  explicit PhiAccrualDetector(PhiOptions options = {}) : options_(options) {}

  // A heartbeat (any frame) arrived at `now_ms`.
  void heartbeat(uint64_t now_ms);
  // The suspicion level at `now_ms`: 0 until two heartbeats have been seen
  // (no history, no opinion); grows without bound with silence.
  double phi(uint64_t now_ms) const;
  bool suspected(uint64_t now_ms) const { return phi(now_ms) >= options_.threshold; }

  size_t samples() const { return gaps_.size(); }
  double mean_gap_ms() const;
  double stddev_gap_ms() const;
  const PhiOptions& options() const { return options_; }

 private:
  PhiOptions options_;
  bool seen_ = false;
  uint64_t last_ms_ = 0;
  std::deque<double> gaps_;
  double sum_ = 0;
  double sum_squares_ = 0;
};

}  // namespace synod::membership
