// The simulated network (src/sim/network.h): determinism, latency per link
// class, FIFO links, fault rates, each partition's connectivity, in-flight
// drops on a cut, heal, and the in-flight cap.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/rng.h"
#include "sim/network.h"

namespace synod::sim {
namespace {

using Network = SimNetwork<std::string>;

constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kForever = ~uint64_t{0};

SimNetworkOptions quiet_options() {
  SimNetworkOptions options;
  options.latency_same_region.tail_probability = 0.0;
  options.latency_cross_region.tail_probability = 0.0;
  return options;
}

Network make_network(uint64_t seed, SimNetworkOptions options, size_t node_count) {
  Network network(base::Rng(seed), options);
  for (uint64_t id = 1; id <= node_count; ++id) network.add_node(id, "r1");
  return network;
}

// Every delivery as text, so two runs compare byte for byte.
std::string trace(const std::vector<Delivery<std::string>>& deliveries) {
  std::string text;
  for (const auto& d : deliveries) {
    text += std::to_string(d.at) + " " + std::to_string(d.from) + "->" + std::to_string(d.to) +
            " " + d.message + "\n";
  }
  return text;
}

std::string run_busy_network(uint64_t seed) {
  SimNetworkOptions options;
  options.loss_probability = 0.1;
  options.duplicate_probability = 0.1;
  options.reorder_probability = 0.1;
  Network network(base::Rng(seed), options);
  network.add_node(1, "east");
  network.add_node(2, "east");
  network.add_node(3, "west");
  network.add_node(4, "west");
  network.add_node(5, "north");
  base::Rng traffic(seed + 1000);
  std::string text;
  uint64_t now = 0;
  for (int step = 0; step < 2000; ++step) {
    now += traffic.uniform(1'000'000);
    const uint64_t from = traffic.between(1, 5);
    const uint64_t to = traffic.between(1, 5);
    network.send(from, to, "m" + std::to_string(step), now);
    if (step == 500) network.random_halves();
    if (step == 900) network.majorities_ring();
    if (step == 1300) network.heal();
    text += trace(network.deliver_until(now));
  }
  text += trace(network.deliver_until(kForever));
  text += network.describe();
  return text;
}

TEST(SimNetwork, SameSeedGivesSameDeliveriesByteForByte) {
  const std::string first = run_busy_network(7);
  EXPECT_EQ(first, run_busy_network(7));
  EXPECT_NE(first, run_busy_network(8));
  EXPECT_GT(first.size(), 1000u);
}

TEST(SimNetwork, LatencyStaysWithinItsLinkClassBounds) {
  SimNetworkOptions options;  // defaults, tails included
  Network network(base::Rng(3), options);
  network.add_node(1, "east");
  network.add_node(2, "east");
  network.add_node(3, "west");
  const LatencyDistribution slow{.base_ns = 5'000'000, .jitter_ns = 1'000'000,
                                 .tail_probability = 0.5, .tail_ns = 3'000'000};
  network.add_node(4, "mars");
  network.set_latency("east", "mars", slow);
  // Sends a second apart, so FIFO never holds a message back.
  uint64_t now = 0;
  for (int i = 0; i < 3000; ++i, now += kSecond) {
    network.send(1, 2, "same", now);
    network.send(1, 3, "cross", now);
    network.send(4, 2, "override", now);
  }
  const auto deliveries = network.deliver_until(kForever);
  ASSERT_EQ(deliveries.size(), 9000u);
  std::map<std::string, std::pair<uint64_t, uint64_t>> seen;  // min, max
  for (const auto& d : deliveries) {
    const uint64_t latency_ns = d.at - d.sent_at;
    auto [it, fresh] = seen.try_emplace(d.message, latency_ns, latency_ns);
    it->second.first = std::min(it->second.first, latency_ns);
    it->second.second = std::max(it->second.second, latency_ns);
  }
  const std::map<std::string, LatencyDistribution> expected{
      {"same", kLatencySameRegion}, {"cross", kLatencyCrossRegion}, {"override", slow}};
  for (const auto& [name, distribution] : expected) {
    SCOPED_TRACE(name);
    EXPECT_GE(seen[name].first, distribution.base_ns);
    EXPECT_LE(seen[name].second, distribution.max_ns());
    // The tail is drawn sometimes: something exceeds base + jitter.
    EXPECT_GT(seen[name].second, distribution.base_ns + distribution.jitter_ns);
  }
  EXPECT_LT(seen["same"].second, 3'000'000u);  // same region is sub-millisecond-ish
  EXPECT_GE(seen["cross"].first, 20'000'000u);  // WAN is tens of milliseconds
}

TEST(SimNetwork, EachLinkIsFifoWithoutReordering) {
  SimNetworkOptions options;  // jitter and tails on, so raw draws would reorder
  Network network = make_network(11, options, 3);
  uint64_t now = 0;
  for (int i = 0; i < 5000; ++i, now += 1000) {  // far faster than the jitter
    network.send(1, 2, std::to_string(i), now);
    network.send(3, 2, std::to_string(i), now);
  }
  const auto deliveries = network.deliver_until(kForever);
  ASSERT_EQ(deliveries.size(), 10000u);
  std::map<uint64_t, int> next_expected;
  uint64_t last_at = 0;
  for (const auto& d : deliveries) {
    EXPECT_EQ(d.message, std::to_string(next_expected[d.from]++));
    EXPECT_GE(d.at, last_at);  // handed out in time order
    last_at = d.at;
  }
}

TEST(SimNetwork, ReorderingLetsLaterMessagesOvertake) {
  SimNetworkOptions options = quiet_options();
  options.reorder_probability = 0.2;
  Network network = make_network(12, options, 2);
  for (int i = 0; i < 2000; ++i) network.send(1, 2, std::to_string(i), i * 10'000);
  const auto deliveries = network.deliver_until(kForever);
  ASSERT_EQ(deliveries.size(), 2000u);
  int overtaken = 0;
  for (size_t i = 1; i < deliveries.size(); ++i) {
    if (std::stoi(deliveries[i].message) < std::stoi(deliveries[i - 1].message)) overtaken++;
  }
  EXPECT_GT(overtaken, 100);
  EXPECT_GT(network.counters().reordered, 300u);
}

TEST(SimNetwork, LossAndDuplicationHappenRoughlyAtTheirRates) {
  SimNetworkOptions options = quiet_options();
  options.loss_probability = 0.2;
  options.duplicate_probability = 0.1;
  Network network = make_network(13, options, 2);
  constexpr int kMessages = 20000;
  for (int i = 0; i < kMessages; ++i) network.send(1, 2, "x", i * 1000);
  const auto deliveries = network.deliver_until(kForever);
  const SimNetworkCounters& counters = network.counters();
  EXPECT_EQ(counters.sent, uint64_t{kMessages});
  EXPECT_NEAR(static_cast<double>(counters.dropped_by_loss) / kMessages, 0.2, 0.03);
  // Duplicates are drawn only for messages that survive loss.
  EXPECT_NEAR(static_cast<double>(counters.duplicated) / (kMessages - counters.dropped_by_loss),
              0.1, 0.03);
  EXPECT_EQ(deliveries.size(), counters.delivered);
  EXPECT_EQ(counters.delivered, counters.sent - counters.dropped_by_loss + counters.duplicated);
}

// Who reaches whom, for the partition tests.
std::set<std::pair<uint64_t, uint64_t>> reachable(const Network& network) {
  std::set<std::pair<uint64_t, uint64_t>> links;
  for (uint64_t from : network.nodes()) {
    for (uint64_t to : network.nodes()) {
      if (network.connected(from, to)) links.insert({from, to});
    }
  }
  return links;
}

// The set of nodes `from` reaches (itself included).
std::set<uint64_t> sees(const Network& network, uint64_t from) {
  std::set<uint64_t> visible;
  for (uint64_t to : network.nodes()) {
    if (network.connected(from, to)) visible.insert(to);
  }
  return visible;
}

TEST(SimNetwork, RandomHalvesMakesTwoSidesWithNoCrossLinks) {
  for (size_t count : {2u, 3u, 5u, 7u}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      Network network = make_network(seed, quiet_options(), count);
      network.random_halves();
      // Connectivity is an equivalence with exactly two classes.
      std::set<std::set<uint64_t>> sides;
      for (uint64_t node : network.nodes()) sides.insert(sees(network, node));
      ASSERT_EQ(sides.size(), 2u) << network.describe();
      const std::set<uint64_t>& a = *sides.begin();
      const std::set<uint64_t>& b = *sides.rbegin();
      EXPECT_EQ(a.size() + b.size(), count);
      EXPECT_LE(std::max(a.size(), b.size()) - std::min(a.size(), b.size()), 1u);
      for (uint64_t x : a) {
        for (uint64_t y : b) {
          EXPECT_FALSE(network.connected(x, y));
          EXPECT_FALSE(network.connected(y, x));
        }
      }
      EXPECT_NE(network.describe().find(" | "), std::string::npos);
    }
  }
}

TEST(SimNetwork, IsolateCutsOneNodeFromAllOthers) {
  Network network = make_network(1, quiet_options(), 5);
  network.isolate(3);
  EXPECT_EQ(network.describe(), "{1,2,4,5} | {3}");
  EXPECT_EQ(sees(network, 3), (std::set<uint64_t>{3}));
  for (uint64_t node : {1u, 2u, 4u, 5u}) {
    EXPECT_EQ(sees(network, node), (std::set<uint64_t>{1, 2, 4, 5}));
  }
}

TEST(SimNetwork, BridgeNodeReachesBothSidesWhichDoNotReachEachOther) {
  for (size_t count : {3u, 5u, 7u}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      Network network = make_network(seed, quiet_options(), count);
      network.bridge();
      std::vector<uint64_t> bridges;
      for (uint64_t node : network.nodes()) {
        if (sees(network, node).size() == count) bridges.push_back(node);
      }
      ASSERT_EQ(bridges.size(), 1u) << network.describe();
      const uint64_t bridge = bridges.front();
      EXPECT_NE(network.describe().find("bridge " + std::to_string(bridge) + " sees both"),
                std::string::npos);
      std::set<std::set<uint64_t>> sides;
      for (uint64_t node : network.nodes()) {
        if (node == bridge) continue;
        std::set<uint64_t> side = sees(network, node);
        EXPECT_TRUE(side.contains(bridge));
        EXPECT_TRUE(network.connected(bridge, node));
        side.erase(bridge);
        sides.insert(side);
      }
      ASSERT_EQ(sides.size(), 2u);
      EXPECT_EQ(sides.begin()->size() + sides.rbegin()->size(), count - 1);
      for (uint64_t x : *sides.begin()) {
        for (uint64_t y : *sides.rbegin()) EXPECT_FALSE(network.connected(x, y));
      }
    }
  }
}

TEST(SimNetwork, MajoritiesRingGivesEachNodeADistinctMajority) {
  for (size_t count : {4u, 5u, 6u, 7u, 9u}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      Network network = make_network(seed, quiet_options(), count);
      network.majorities_ring();
      std::set<std::set<uint64_t>> majorities;
      for (uint64_t node : network.nodes()) {
        const std::set<uint64_t> visible = sees(network, node);
        EXPECT_TRUE(visible.contains(node));
        EXPECT_GE(visible.size(), count / 2 + 1) << network.describe();
        EXPECT_LT(visible.size(), count);
        majorities.insert(visible);
        for (uint64_t other : visible) EXPECT_TRUE(network.connected(other, node));
      }
      EXPECT_EQ(majorities.size(), count) << "no two nodes see the same majority";
      EXPECT_EQ(network.describe().rfind("ring: 1 sees {", 0), 0u) << network.describe();
    }
  }
}

TEST(SimNetwork, MajoritiesRingDescribesEachNodesView) {
  Network network = make_network(5, quiet_options(), 5);
  network.majorities_ring();
  std::string expected = "ring:";
  for (uint64_t node = 1; node <= 5; ++node) {
    expected += std::string(node == 1 ? " " : ", ") + std::to_string(node) + " sees {";
    bool first = true;
    for (uint64_t other : sees(network, node)) {
      expected += (first ? "" : ",") + std::to_string(other);
      first = false;
    }
    expected += "}";
  }
  EXPECT_EQ(network.describe(), expected);
}

TEST(SimNetwork, MessagesInFlightAreDroppedWhenAPartitionCutsTheirLink) {
  Network network = make_network(2, quiet_options(), 3);
  network.send(1, 2, "cut", 0);
  network.send(1, 3, "kept", 0);
  network.send(2, 1, "cut back", 0);
  network.isolate(2);
  network.send(1, 2, "sent into the cut", 10);
  const auto deliveries = network.deliver_until(kForever);
  ASSERT_EQ(deliveries.size(), 1u);
  EXPECT_EQ(deliveries[0].message, "kept");
  EXPECT_EQ(network.counters().dropped_by_partition, 3u);
  EXPECT_EQ(network.in_flight(), 0u);
}

TEST(SimNetwork, HealRestoresEveryLink) {
  Network network = make_network(4, quiet_options(), 5);
  const auto full = reachable(network);
  EXPECT_EQ(full.size(), 25u);
  network.majorities_ring();
  EXPECT_LT(reachable(network).size(), 25u);
  network.heal();
  EXPECT_EQ(reachable(network), full);
  EXPECT_EQ(network.describe(), "fully connected");
  network.bridge();
  network.heal();
  network.send(1, 5, "after heal", 0);
  EXPECT_EQ(network.deliver_until(kForever).size(), 1u);
}

TEST(SimNetwork, InFlightCapDropsAndCountsTheExcess) {
  SimNetworkOptions options = quiet_options();
  options.in_flight_messages_max = 10;
  Network network = make_network(6, options, 2);
  for (int i = 0; i < 25; ++i) network.send(1, 2, std::to_string(i), 0);
  EXPECT_EQ(network.in_flight(), 10u);
  EXPECT_EQ(network.counters().dropped_by_overflow, 15u);
  const auto deliveries = network.deliver_until(kForever);
  ASSERT_EQ(deliveries.size(), 10u);
  EXPECT_EQ(deliveries.front().message, "0");  // the first ten got in, in order
  EXPECT_EQ(deliveries.back().message, "9");
  network.send(1, 2, "room again", kSecond);
  EXPECT_EQ(network.in_flight(), 1u);
}

TEST(SimNetwork, NextDeliveryTimeIsTheEarliestDue) {
  Network network = make_network(9, quiet_options(), 2);
  EXPECT_FALSE(network.next_delivery_time().has_value());
  network.send(1, 2, "a", 1000);
  const auto due = network.next_delivery_time();
  ASSERT_TRUE(due.has_value());
  EXPECT_GE(*due, 1000 + kLatencySameRegion.base_ns);
  EXPECT_TRUE(network.deliver_until(*due - 1).empty());
  EXPECT_EQ(network.deliver_until(*due).size(), 1u);
}

}  // namespace
}  // namespace synod::sim
