// Placement's promises, measured: how much moves when a node comes or goes,
// how even the load is, and that zones are kept apart. Each test prints its
// figures ("placement: ...") so a run shows them, not only pass or fail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "placement/placement.h"

namespace synod::placement {
namespace {

constexpr uint32_t kPartitions = 1024;
constexpr uint32_t kReplicas = 3;

std::vector<Member> members(uint64_t count, uint64_t zones) {
  std::vector<Member> out;
  for (uint64_t id = 1; id <= count; ++id) out.push_back({id, "zone-" + std::to_string(id % zones)});
  return out;
}

Placement must_place(const std::vector<Member>& nodes, const Placement& previous,
                     uint32_t partitions = kPartitions, uint32_t replicas = kReplicas) {
  auto placed = place(nodes, partitions, replicas, previous);
  EXPECT_TRUE(placed.ok()) << placed.error().to_string();
  return placed.ok() ? *placed : Placement{};
}

// Busiest member's replicas over the mean.
double busiest_over_mean(const Placement& placement, const std::vector<Member>& nodes) {
  uint64_t total = 0, busiest = 0;
  for (const auto& [id, load] : loads(placement, nodes)) {
    total += load;
    busiest = std::max(busiest, load);
  }
  return static_cast<double>(busiest) / (static_cast<double>(total) / nodes.size());
}

// Partitions whose replicas share a zone.
size_t zone_clashes(const Placement& placement, const std::vector<Member>& nodes) {
  std::map<uint64_t, std::string> zone;
  for (const Member& m : nodes) zone[m.id] = m.zone;
  size_t clashes = 0;
  for (const auto& replicas : placement.replicas) {
    std::set<std::string> zones;
    for (uint64_t id : replicas) zones.insert(zone[id]);
    clashes += zones.size() < replicas.size() ? 1 : 0;
  }
  return clashes;
}

TEST(Placement, GrowingFrom3To100NodesEachNewNodeTakesAbout1OverNPlus1AndNothingElseMoves) {
  std::vector<Member> nodes = members(3, 5);
  Placement current = must_place(nodes, {});
  double worst_ratio = 1.0, worst_balance = 0;
  for (uint64_t n = 3; n < 100; ++n) {
    nodes.push_back({n + 1, "zone-" + std::to_string((n + 1) % 5)});
    const Placement next = must_place(nodes, current);
    const uint64_t moved = replicas_moved(current, next);
    const double ideal = static_cast<double>(kPartitions * kReplicas) / static_cast<double>(n + 1);
    const double ratio = static_cast<double>(moved) / ideal;
    EXPECT_NEAR(ratio, 1.0, 0.25) << n << " -> " << n + 1 << " nodes moved " << moved;
    // Every replica that moved went to the new node.
    for (uint32_t p = 0; p < kPartitions; ++p) {
      for (uint64_t id : next.replicas[p]) {
        const bool kept = std::count(current.replicas[p].begin(), current.replicas[p].end(), id) > 0;
        ASSERT_TRUE(kept || id == n + 1)
            << "partition " << p << " moved a replica to node " << id << ", which stayed";
      }
    }
    const double balance = busiest_over_mean(next, nodes);
    EXPECT_EQ(zone_clashes(next, nodes), 0u) << n + 1 << " nodes in 5 zones";
    if (n + 1 >= 10) {
      EXPECT_LE(balance, 1.15) << n + 1 << " nodes";
      worst_balance = std::max(worst_balance, balance);
    }
    if (std::abs(ratio - 1) > std::abs(worst_ratio - 1)) worst_ratio = ratio;
    if ((n + 1) % 10 == 0 || n + 1 == 4) {
      std::printf("placement: %llu -> %llu nodes: moved %llu of %u replicas (ideal %.1f, %.3fx), "
                  "busiest node %.3fx the mean\n",
                  static_cast<unsigned long long>(n), static_cast<unsigned long long>(n + 1),
                  static_cast<unsigned long long>(moved), kPartitions * kReplicas, ideal, ratio,
                  balance);
    }
    current = next;
  }
  std::printf("placement: growing 3 -> 100 nodes one at a time: the move count furthest from "
              "1/(n+1) of the replicas was %.3fx of it (bound 0.75-1.25x), busiest node at most %.3fx the mean from 10 nodes on (bound 1.15x), "
              "no replica ever moved between two nodes that both stayed\n",
              worst_ratio, worst_balance);
}

TEST(Placement, From10To100NodesTheBusiestHoldsAtMost1Point15TimesTheMean) {
  for (uint64_t n : {10, 16, 20, 33, 50, 64, 75, 100}) {
    const std::vector<Member> nodes = members(n, 5);
    const Placement placement = must_place(nodes, {});
    const double balance = busiest_over_mean(placement, nodes);
    EXPECT_LE(balance, 1.15) << n << " nodes";
    EXPECT_EQ(zone_clashes(placement, nodes), 0u);
    std::printf("placement: %u partitions x %u replicas over %llu nodes in 5 zones: busiest node "
                "%.3fx the mean, no two replicas of a partition in one zone\n",
                kPartitions, kReplicas, static_cast<unsigned long long>(n), balance);
  }
}

TEST(Placement, NoPartitionHasTwoReplicasInOneZoneWhileThereAreEnoughZones) {
  // Uneven zones: 2, 3 and 5 nodes.
  std::vector<Member> nodes;
  for (uint64_t id = 1; id <= 10; ++id) {
    nodes.push_back({id, id <= 2 ? "a" : id <= 5 ? "b" : "c"});
  }
  Placement placement = must_place(nodes, {});
  EXPECT_EQ(zone_clashes(placement, nodes), 0u);
  std::printf("placement: zones of 2, 3 and 5 nodes: every partition in 3 zones; busiest node "
              "%.3fx the mean (zone a's 2 nodes must hold a replica of every partition)\n",
              busiest_over_mean(placement, nodes));
  // Two zones for three replicas: both zones in every partition.
  const std::vector<Member> two = members(6, 2);
  placement = must_place(two, {});
  std::map<uint64_t, std::string> zone;
  for (const Member& m : two) zone[m.id] = m.zone;
  for (const auto& replicas : placement.replicas) {
    std::set<std::string> zones;
    for (uint64_t id : replicas) zones.insert(zone[id]);
    EXPECT_EQ(zones.size(), 2u);
  }
}

TEST(Placement, RemovingANodeMovesOnlyItsReplicas) {
  std::vector<Member> nodes = members(20, 5);
  const Placement before = must_place(nodes, {});
  uint64_t held = 0;
  for (const auto& [id, load] : loads(before, nodes)) held += id == 7 ? load : 0;
  nodes.erase(std::find_if(nodes.begin(), nodes.end(), [](const Member& m) { return m.id == 7; }));
  const Placement after = must_place(nodes, before);
  EXPECT_EQ(replicas_moved(before, after), held);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    for (uint64_t id : before.replicas[p]) {
      if (id == 7) continue;
      EXPECT_TRUE(std::count(after.replicas[p].begin(), after.replicas[p].end(), id) > 0)
          << "partition " << p << " lost its replica on node " << id;
    }
  }
  EXPECT_EQ(zone_clashes(after, nodes), 0u);
  EXPECT_LE(busiest_over_mean(after, nodes), 1.15);
  std::printf("placement: removing 1 of 20 nodes moved %llu replicas, exactly the %llu it held\n",
              static_cast<unsigned long long>(replicas_moved(before, after)),
              static_cast<unsigned long long>(held));
}

TEST(Placement, TheSameInputsGiveTheSamePlacementInAnyMemberOrder) {
  std::vector<Member> nodes = members(12, 4);
  const Placement one = must_place(nodes, {});
  std::reverse(nodes.begin(), nodes.end());
  EXPECT_EQ(must_place(nodes, {}), one);
  EXPECT_EQ(must_place(nodes, one), one) << "a placement that is already right stays as it is";
}

TEST(Placement, FewerMembersThanReplicasPutsOneOnEachAndBadInputIsRefused) {
  const Placement placement = must_place(members(2, 2), {}, 8, 3);
  for (const auto& replicas : placement.replicas) EXPECT_EQ(replicas.size(), 2u);
  EXPECT_FALSE(place({}, 8, 3, {}).ok());
  EXPECT_FALSE(place(members(3, 1), 0, 3, {}).ok());
  EXPECT_FALSE(place({{1, "a"}, {1, "b"}}, 8, 3, {}).ok());
  EXPECT_FALSE(place({{0, "a"}}, 8, 1, {}).ok());
}

}  // namespace
}  // namespace synod::placement
