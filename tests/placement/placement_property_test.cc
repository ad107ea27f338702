// Placement's invariants over random member lists and random sequences of
// joins and departures (rapidcheck).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "placement/placement.h"

namespace synod::placement {
namespace {

std::vector<Member> random_members(size_t count, size_t zones) {
  std::vector<Member> out;
  const auto ids = *rc::gen::unique<std::vector<uint64_t>>(
      count, rc::gen::inRange<uint64_t>(1, 1'000'000));
  for (uint64_t id : ids) {
    out.push_back({id, "zone-" + std::to_string(*rc::gen::inRange<size_t>(0, zones))});
  }
  return out;
}

void check_valid(const Placement& placement, const std::vector<Member>& members,
                 uint32_t partitions, uint32_t replication) {
  std::set<uint64_t> ids;
  for (const Member& m : members) ids.insert(m.id);
  RC_ASSERT(placement.replicas.size() == partitions);
  const size_t want = std::min<size_t>(replication, members.size());
  for (const auto& replicas : placement.replicas) {
    RC_ASSERT(replicas.size() == want);
    RC_ASSERT(std::set<uint64_t>(replicas.begin(), replicas.end()).size() == want);
    for (uint64_t id : replicas) RC_ASSERT(ids.contains(id));
  }
}

uint32_t random_partitions() { return *rc::gen::element<uint32_t>(8, 16, 64, 256); }

RC_GTEST_PROP(PlacementProperty, AnyMembersGiveAValidZoneSpreadStablePlacement, ()) {
  const size_t count = *rc::gen::inRange<size_t>(1, 40);
  const size_t zones = *rc::gen::inRange<size_t>(1, 6);
  const uint32_t partitions = random_partitions();
  const uint32_t replication = *rc::gen::inRange<uint32_t>(1, 6);
  std::vector<Member> members = random_members(count, zones);
  auto placed = place(members, partitions, replication, {});
  RC_ASSERT(placed.ok());
  check_valid(*placed, members, partitions, replication);
  // Distinct zones first: as many zones per partition as replicas allow.
  std::map<uint64_t, std::string> zone;
  for (const Member& m : members) zone[m.id] = m.zone;
  std::set<std::string> present;
  for (const Member& m : members) present.insert(m.zone);
  for (const auto& replicas : placed->replicas) {
    std::set<std::string> used;
    for (uint64_t id : replicas) used.insert(zone[id]);
    RC_ASSERT(used.size() == std::min(replicas.size(), present.size()));
  }
  // Deterministic whatever the order, and a right placement stays as it is.
  std::vector<Member> shuffled = members;
  std::rotate(shuffled.begin(), shuffled.begin() + *rc::gen::inRange<size_t>(0, shuffled.size()),
              shuffled.end());
  std::reverse(shuffled.begin(), shuffled.end());
  RC_ASSERT(*place(shuffled, partitions, replication, {}) == *placed);
  RC_ASSERT(*place(members, partitions, replication, *placed) == *placed);
}

// Without zone constraints (one zone): after every join or departure the
// loads differ by at most one, and a join moves replicas only onto the
// newcomer.
RC_GTEST_PROP(PlacementProperty, JoinsAndDeparturesKeepLoadsWithinOneAndJoinsMoveOnlyOntoTheNewcomer,
              ()) {
  const uint32_t partitions = random_partitions();
  const uint32_t replication = *rc::gen::inRange<uint32_t>(1, 4);
  std::vector<Member> members;
  uint64_t next_id = 1;
  const size_t initial = *rc::gen::inRange<size_t>(1, 12);
  for (size_t i = 0; i < initial; ++i) members.push_back({next_id++, "one"});
  Placement current = *place(members, partitions, replication, {});
  const size_t steps = *rc::gen::inRange<size_t>(1, 15);
  for (size_t step = 0; step < steps; ++step) {
    const bool join = members.size() == 1 || *rc::gen::inRange(0, 3) > 0;
    uint64_t newcomer = 0;
    if (join) {
      newcomer = next_id++;
      members.push_back({newcomer, "one"});
    } else {
      members.erase(members.begin() + *rc::gen::inRange<size_t>(0, members.size()));
    }
    auto next = place(members, partitions, replication, current);
    RC_ASSERT(next.ok());
    check_valid(*next, members, partitions, replication);
    uint64_t lightest = UINT64_MAX, heaviest = 0;
    for (const auto& [id, load] : loads(*next, members)) {
      lightest = std::min(lightest, load);
      heaviest = std::max(heaviest, load);
    }
    RC_ASSERT(heaviest - lightest <= 1);
    if (join) {
      for (uint32_t p = 0; p < partitions; ++p) {
        for (uint64_t id : next->replicas[p]) {
          const bool kept = std::count(current.replicas[p].begin(), current.replicas[p].end(), id) > 0;
          RC_ASSERT(kept || id == newcomer);
        }
      }
    }
    current = *next;
  }
}

}  // namespace
}  // namespace synod::placement
