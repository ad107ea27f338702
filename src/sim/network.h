// SimNetwork: the simulator's network, deterministic and generic over the
// message it carries.
//
// Nodes are ids placed in named regions. A message sent at simulated time
// `now` (nanoseconds) is delivered at `now` plus a latency drawn from the
// distribution of its (from region, to region) link class, unless a fault
// takes it: loss, duplication (a second copy with a delay of its own),
// reordering (extra delay, so later messages on the link overtake it), a
// partition, or the in-flight cap. Otherwise each directed link is FIFO.
//
// A partition is a set of blocked directed links. A message sent on a blocked
// link is dropped at once; one already in flight on a link that becomes
// blocked is dropped when it would have been delivered (the packet was on the
// wire when the cable was cut). `heal()` unblocks every link.
//
// Guarantees: every random choice comes from the `base::Rng` the caller hands
// in, and deliveries come out ordered by (time, send sequence), so the same
// seed and the same calls give the same deliveries byte for byte. No clocks,
// no threads, no I/O. The number of messages in flight is bounded by
// `in_flight_messages_max`; beyond it a message is dropped and counted.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/assert.h"
#include "base/rng.h"

namespace synod::sim {

// Latency of one link class: `base_ns` plus a uniform draw in
// [0, jitter_ns]; with probability `tail_probability` a further uniform draw
// in [0, tail_ns] (a slow packet: a retransmit, a congested switch).
struct LatencyDistribution {
  uint64_t base_ns = 0;
  uint64_t jitter_ns = 0;
  double tail_probability = 0.0;
  uint64_t tail_ns = 0;

  uint64_t max_ns() const { return base_ns + jitter_ns + tail_ns; }
};

// Same datacenter: 100-300 µs, occasionally up to 2 ms more.
inline constexpr LatencyDistribution kLatencySameRegion{
    .base_ns = 100'000, .jitter_ns = 200'000, .tail_probability = 0.01, .tail_ns = 2'000'000};
// WAN between regions: 20-40 ms, occasionally up to 100 ms more.
inline constexpr LatencyDistribution kLatencyCrossRegion{
    .base_ns = 20'000'000, .jitter_ns = 20'000'000, .tail_probability = 0.01,
    .tail_ns = 100'000'000};

struct SimNetworkOptions {
  LatencyDistribution latency_same_region = kLatencySameRegion;
  LatencyDistribution latency_cross_region = kLatencyCrossRegion;
  // Each fault is a probability per message sent, in [0, 1].
  double loss_probability = 0.0;
  double duplicate_probability = 0.0;
  double reorder_probability = 0.0;
  // A reordered message waits a further uniform draw in [1, this].
  uint64_t reorder_delay_ns_max = 50'000'000;
  // Bound on messages queued for delivery (duplicates included).
  size_t in_flight_messages_max = 100'000;

  void validate() const {
    SYNOD_ASSERT(loss_probability >= 0.0 && loss_probability <= 1.0, "loss is a probability");
    SYNOD_ASSERT(duplicate_probability >= 0.0 && duplicate_probability <= 1.0,
                 "duplication is a probability");
    SYNOD_ASSERT(reorder_probability >= 0.0 && reorder_probability <= 1.0,
                 "reordering is a probability");
    SYNOD_ASSERT(reorder_delay_ns_max > 0, "a reordered message must wait longer");
    SYNOD_ASSERT(in_flight_messages_max > 0, "the network must carry something");
  }
};

struct SimNetworkCounters {
  uint64_t sent = 0;        // calls to send()
  uint64_t delivered = 0;   // copies handed out by deliver_until()
  uint64_t dropped_by_loss = 0;
  uint64_t dropped_by_partition = 0;  // at send, or in flight when the link was cut
  uint64_t dropped_by_overflow = 0;   // the in-flight cap was reached
  uint64_t duplicated = 0;            // extra copies scheduled
  uint64_t reordered = 0;             // copies given extra delay
};

template <typename Message>
struct Delivery {
  uint64_t from = 0;
  uint64_t to = 0;
  Message message;
  uint64_t at = 0;       // simulated time of delivery
  uint64_t sent_at = 0;  // simulated time of the send() that made it
};

template <typename Message>
class SimNetwork {
 public:
  SimNetwork(base::Rng rng, SimNetworkOptions options)
      : rng_(rng), options_(std::move(options)) {
    options_.validate();
  }

  // ---- Topology -----------------------------------------------------------

  void add_node(uint64_t id, std::string region) {
    SYNOD_ASSERT(!regions_.contains(id), "a node joins the network once");
    regions_.emplace(id, std::move(region));
  }
  bool has_node(uint64_t id) const { return regions_.contains(id); }
  const std::string& region(uint64_t id) const {
    auto it = regions_.find(id);
    SYNOD_ASSERT(it != regions_.end(), "unknown node");
    return it->second;
  }
  // Node ids in ascending order.
  std::vector<uint64_t> nodes() const {
    std::vector<uint64_t> ids;
    ids.reserve(regions_.size());
    for (const auto& [id, region] : regions_) ids.push_back(id);
    return ids;
  }

  // Overrides the latency between two regions, both directions.
  void set_latency(const std::string& region_a, const std::string& region_b,
                   LatencyDistribution latency) {
    latency_overrides_[{region_a, region_b}] = latency;
    latency_overrides_[{region_b, region_a}] = latency;
  }
  const LatencyDistribution& latency(uint64_t from, uint64_t to) const {
    const std::string& from_region = region(from);
    const std::string& to_region = region(to);
    auto it = latency_overrides_.find({from_region, to_region});
    if (it != latency_overrides_.end()) return it->second;
    return from_region == to_region ? options_.latency_same_region
                                    : options_.latency_cross_region;
  }

  // ---- Sending and delivering ---------------------------------------------

  void send(uint64_t from, uint64_t to, Message message, uint64_t now) {
    SYNOD_ASSERT(has_node(from), "send from an unknown node");
    SYNOD_ASSERT(has_node(to), "send to an unknown node");
    counters_.sent++;
    // Draw every choice for this message up front, whatever the outcome, so
    // that one fault's setting does not shift the stream seen by the others.
    const bool lost = draw(options_.loss_probability);
    const bool duplicate = draw(options_.duplicate_probability);
    if (blocked(from, to)) {
      counters_.dropped_by_partition++;
      return;
    }
    if (lost) {
      counters_.dropped_by_loss++;
      return;
    }
    if (duplicate) {
      counters_.duplicated++;
      schedule(from, to, message, now, /*extra_copy=*/true);
    }
    schedule(from, to, std::move(message), now, /*extra_copy=*/false);
  }

  // When the next message is due, if any (it may still be dropped then).
  std::optional<uint64_t> next_delivery_time() const {
    if (in_flight_.empty()) return std::nullopt;
    return in_flight_.front().at;
  }
  size_t in_flight() const { return in_flight_.size(); }

  // Every message due at or before `now`, ordered by (time, send sequence).
  std::vector<Delivery<Message>> deliver_until(uint64_t now) {
    std::vector<Delivery<Message>> deliveries;
    while (!in_flight_.empty() && in_flight_.front().at <= now) {
      std::pop_heap(in_flight_.begin(), in_flight_.end(), LaterFirst{});
      InFlight entry = std::move(in_flight_.back());
      in_flight_.pop_back();
      SYNOD_ASSERT(entry.at >= entry.sent_at, "a message cannot arrive before it was sent");
      if (blocked(entry.from, entry.to)) {
        counters_.dropped_by_partition++;
        continue;
      }
      counters_.delivered++;
      deliveries.push_back(Delivery<Message>{.from = entry.from,
                                             .to = entry.to,
                                             .message = std::move(entry.message),
                                             .at = entry.at,
                                             .sent_at = entry.sent_at});
    }
    return deliveries;
  }

  const SimNetworkCounters& counters() const { return counters_; }

  // ---- Partitions -----------------------------------------------------------

  bool blocked(uint64_t from, uint64_t to) const { return blocked_.contains({from, to}); }
  bool connected(uint64_t from, uint64_t to) const { return !blocked(from, to); }

  // Splits the nodes at random into two sides (the larger gets the odd one)
  // with no link between them.
  void random_halves() {
    std::vector<uint64_t> order = shuffled_nodes();
    SYNOD_ASSERT(order.size() >= 2, "halves need two nodes");
    const size_t small_side = order.size() / 2;
    std::vector<uint64_t> side_a(order.begin(), order.begin() + small_side);
    std::vector<uint64_t> side_b(order.begin() + small_side, order.end());
    split(side_a, side_b, std::nullopt);
  }

  // Cuts `id` off from every other node (the caller picks it: the leader).
  void isolate(uint64_t id) {
    SYNOD_ASSERT(has_node(id), "isolate an unknown node");
    std::vector<uint64_t> others;
    for (uint64_t node : nodes()) {
      if (node != id) others.push_back(node);
    }
    split({id}, others, std::nullopt);
  }

  // Two sides that cannot reach each other, plus one node chosen at random
  // (the bridge) that reaches both.
  void bridge() {
    std::vector<uint64_t> order = shuffled_nodes();
    SYNOD_ASSERT(order.size() >= 3, "a bridge needs two sides and itself");
    const size_t middle = order.size() / 2;
    std::vector<uint64_t> side_a(order.begin(), order.begin() + middle);
    std::vector<uint64_t> side_b(order.begin() + middle + 1, order.end());
    split(side_a, side_b, order[middle]);
  }

  // Jepsen's "majorities ring": the nodes are placed on a ring in random
  // order and each sees only itself and its nearest neighbours on either
  // side, as many as make a majority. So every node sees a majority, but no
  // two nodes see the same one. Links stay symmetric. Needs four nodes: with
  // three, any majority window is the whole cluster.
  void majorities_ring() {
    std::vector<uint64_t> ring = shuffled_nodes();
    const size_t count = ring.size();
    SYNOD_ASSERT(count >= 4, "a majorities ring needs at least four nodes");
    const size_t majority = count / 2 + 1;
    const size_t neighbours_per_side = majority / 2;  // 2k + 1 >= majority
    SYNOD_ASSERT(2 * neighbours_per_side + 1 < count, "windows must differ");
    blocked_.clear();
    std::map<uint64_t, std::set<uint64_t>> sees;
    for (size_t i = 0; i < count; ++i) {
      for (size_t offset = 0; offset <= neighbours_per_side; ++offset) {
        sees[ring[i]].insert(ring[(i + offset) % count]);
        sees[ring[i]].insert(ring[(i + count - offset) % count]);
      }
    }
    for (uint64_t from : ring) {
      for (uint64_t to : ring) {
        if (!sees[from].contains(to)) blocked_.insert({from, to});
      }
    }
    description_ = "ring:";
    for (const auto& [node, visible] : sees) {
      description_ += (description_.size() > 5 ? ", " : " ") + std::to_string(node) +
                      " sees " + set_text(visible);
    }
  }

  // Blocks one directed link, for partitions the shapes above do not cover.
  void block(uint64_t from, uint64_t to) {
    SYNOD_ASSERT(has_node(from) && has_node(to), "block a link between known nodes");
    SYNOD_ASSERT(from != to, "a node always reaches itself");
    blocked_.insert({from, to});
    description_ = std::to_string(blocked_.size()) + " blocked links";
  }

  void heal() {
    blocked_.clear();
    description_.clear();
  }

  // The current partition in words: "fully connected", "{1,2} | {3,4,5}",
  // "{1,2} | {4,5}, bridge 3 sees both", "ring: 1 sees {1,2,5}, ...".
  std::string describe() const {
    return description_.empty() ? std::string("fully connected") : description_;
  }

 private:
  struct InFlight {
    uint64_t at;
    uint64_t sequence;  // send order: breaks ties, so ordering is total
    uint64_t from;
    uint64_t to;
    uint64_t sent_at;
    Message message;
  };
  struct LaterFirst {
    bool operator()(const InFlight& a, const InFlight& b) const {
      if (a.at != b.at) return a.at > b.at;
      return a.sequence > b.sequence;
    }
  };

  bool draw(double probability) { return probability > 0.0 && rng_.unit() < probability; }

  uint64_t sample(const LatencyDistribution& latency) {
    uint64_t delay_ns = latency.base_ns + rng_.uniform(latency.jitter_ns + 1);
    if (draw(latency.tail_probability)) delay_ns += rng_.uniform(latency.tail_ns + 1);
    return delay_ns;
  }

  // Queues one copy. A copy that is neither reordered nor a duplicate lands
  // no earlier than the last ordinary copy on its link, which keeps the link
  // FIFO (ties go by sequence); reordered copies and duplicates are exempt
  // and do not hold back later ones.
  void schedule(uint64_t from, uint64_t to, Message message, uint64_t now, bool extra_copy) {
    const bool reorder = draw(options_.reorder_probability);
    uint64_t at = now + sample(latency(from, to));
    if (in_flight_.size() >= options_.in_flight_messages_max) {
      counters_.dropped_by_overflow++;
      return;
    }
    if (reorder) {
      counters_.reordered++;
      at += rng_.between(1, options_.reorder_delay_ns_max);
    } else if (!extra_copy) {
      uint64_t& last_at = link_last_at_[{from, to}];
      at = std::max(at, last_at);
      last_at = at;
    }
    in_flight_.push_back(InFlight{.at = at,
                                  .sequence = next_sequence_++,
                                  .from = from,
                                  .to = to,
                                  .sent_at = now,
                                  .message = std::move(message)});
    std::push_heap(in_flight_.begin(), in_flight_.end(), LaterFirst{});
  }

  std::vector<uint64_t> shuffled_nodes() {
    std::vector<uint64_t> order = nodes();
    for (size_t i = order.size(); i > 1; --i) {
      std::swap(order[i - 1], order[rng_.uniform(i)]);
    }
    return order;
  }

  // Blocks every link between the two sides, both ways; the bridge, if any,
  // keeps its links to both.
  void split(std::vector<uint64_t> side_a, std::vector<uint64_t> side_b,
             std::optional<uint64_t> bridge_node) {
    std::sort(side_a.begin(), side_a.end());
    std::sort(side_b.begin(), side_b.end());
    if (side_b.front() < side_a.front()) std::swap(side_a, side_b);
    blocked_.clear();
    for (uint64_t a : side_a) {
      for (uint64_t b : side_b) {
        blocked_.insert({a, b});
        blocked_.insert({b, a});
      }
    }
    description_ = set_text({side_a.begin(), side_a.end()}) + " | " +
                   set_text({side_b.begin(), side_b.end()});
    if (bridge_node) description_ += ", bridge " + std::to_string(*bridge_node) + " sees both";
  }

  static std::string set_text(const std::set<uint64_t>& ids) {
    std::string text = "{";
    for (uint64_t id : ids) {
      if (text.size() > 1) text += ",";
      text += std::to_string(id);
    }
    return text + "}";
  }

  base::Rng rng_;
  SimNetworkOptions options_;
  std::map<uint64_t, std::string> regions_;
  std::map<std::pair<std::string, std::string>, LatencyDistribution> latency_overrides_;
  // A min-heap on (at, sequence) kept with std::push_heap/pop_heap, so the
  // earliest entry can be moved out rather than copied.
  std::vector<InFlight> in_flight_;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> link_last_at_;
  std::set<std::pair<uint64_t, uint64_t>> blocked_;
  std::string description_;
  SimNetworkCounters counters_;
  uint64_t next_sequence_ = 0;
};

}  // namespace synod::sim
