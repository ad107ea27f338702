// PropertyRun: a seeded five-node run of partitions, crashes and proposals
// for tests of the Figure 3 properties.
#pragma once

#include <functional>
#include <random>
#include <set>
#include <string>

#include "raft/test_cluster.h"

namespace synod::raft::testing {

// Random partitions, crashes and proposals over five nodes, with a check run
// after every step: the Figure 3 properties in scenario tests.
struct PropertyRunOptions {
  // Per step, a proposal with probability (propose_below - 15)%.
  uint64_t propose_below = 45;
  // Propose at random nodes too (followers, cut-off leaders), so uncommitted
  // entries pile up on the wrong side of a partition; else at the leader.
  bool propose_anywhere = false;
};

class PropertyRun {
 public:
  explicit PropertyRun(uint64_t seed, PropertyRunOptions options = {})
      : options_(options), rng_(seed), cluster_({1, 2, 3, 4, 5}) {}

  void run(int steps, const std::function<void(TestCluster&)>& check) {
    for (int step = 0; step < steps; ++step) {
      const uint64_t r = rng_() % 100;
      const uint64_t lead = cluster_.leader();
      if (r < 4) {
        cluster_.heal();
        if (lead != 0) cluster_.isolate(lead);
      } else if (r < 8) {
        cluster_.heal();
        const int cuts = 1 + static_cast<int>(rng_() % 4);
        for (int i = 0; i < cuts; ++i) {
          const uint64_t a = 1 + rng_() % 5;
          const uint64_t b = 1 + rng_() % 5;
          if (a != b) cluster_.cut(a, b);
        }
      } else if (r < 10) {
        cluster_.heal();
      } else if (r < 12) {
        const uint64_t victim = (lead != 0 && rng_() % 2 == 0) ? lead : 1 + rng_() % 5;
        if (down_.size() < 2 && !down_.count(victim)) {
          cluster_.crash(victim);
          down_.insert(victim);
        }
      } else if (r < 15 && !down_.empty()) {
        const uint64_t back = *down_.begin();
        cluster_.restart(back);
        down_.erase(back);
      } else if (r < options_.propose_below) {
        if (options_.propose_anywhere) {
          const uint64_t at = (lead != 0 && rng_() % 2 == 0) ? lead : 1 + rng_() % 5;
          if (!down_.count(at)) (void)cluster_.node(at).propose(Bytes("v" + std::to_string(step)));
        } else if (lead != 0) {
          (void)cluster_.node(lead).propose(Bytes("v" + std::to_string(step)));
        }
      }
      cluster_.tick_all();
      cluster_.deliver_all();
      check(cluster_);
    }
  }

  bool is_down(uint64_t id) const { return down_.count(id) > 0; }

 private:
  PropertyRunOptions options_;
  std::mt19937_64 rng_;
  TestCluster cluster_;
  std::set<uint64_t> down_;
};

}  // namespace synod::raft::testing
