#include "placement/placement.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

#include "base/codec.h"
#include "base/frame.h"

namespace synod::placement {

using base::Errc;
using base::Error;

namespace {

// Rendezvous (highest random weight) score of a node for a partition.
uint64_t score(uint32_t partition, uint64_t node) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(node >> (8 * i));
  return base::checksum64(std::string_view(bytes, sizeof bytes), partition);
}

class Placer {
 public:
  Placer(std::vector<Member> members, uint32_t partitions, uint32_t replication)
      : members_(std::move(members)),
        replication_(std::min<size_t>(replication, members_.size())),
        assigned_(partitions),
        load_(members_.size(), 0) {
    std::map<std::string, size_t> zones;
    for (const Member& m : members_) {
      zone_.push_back(zones.emplace(m.zone, zones.size()).first->second);
      index_[m.id] = zone_.size() - 1;
    }
  }

  void keep(const Placement& previous) {
    if (previous.replicas.size() != assigned_.size()) return;
    for (uint32_t p = 0; p < assigned_.size(); ++p) {
      for (uint64_t id : previous.replicas[p]) {
        auto it = index_.find(id);
        if (it == index_.end() || holds(p, it->second)) continue;
        if (assigned_[p].size() == replication_) break;
        add(p, it->second);
      }
    }
  }

  void fill() {
    for (uint32_t p = 0; p < assigned_.size(); ++p) {
      while (assigned_[p].size() < replication_) {
        size_t best = members_.size();
        for (size_t i = 0; i < members_.size(); ++i) {
          if (holds(p, i)) continue;
          if (best == members_.size() || better_for(p, i, best)) best = i;
        }
        add(p, best);
      }
    }
  }

  void balance() {
    std::vector<size_t> order(members_.size());
    std::iota(order.begin(), order.end(), 0);
    for (;;) {
      // Busiest first; ties by id (members_ is sorted by id).
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return load_[a] > load_[b]; });
      if (!move_one(order)) return;
    }
  }

  Placement result() const {
    Placement out;
    out.replicas.resize(assigned_.size());
    for (uint32_t p = 0; p < assigned_.size(); ++p) {
      for (size_t i : assigned_[p]) out.replicas[p].push_back(members_[i].id);
    }
    return out;
  }

 private:
  bool holds(uint32_t p, size_t i) const {
    return std::find(assigned_[p].begin(), assigned_[p].end(), i) != assigned_[p].end();
  }
  void add(uint32_t p, size_t i) {
    assigned_[p].push_back(i);
    ++load_[i];
  }
  size_t in_zone(uint32_t p, size_t zone) const {
    size_t n = 0;
    for (size_t i : assigned_[p]) n += zone_[i] == zone ? 1 : 0;
    return n;
  }
  size_t distinct_zones(const std::vector<size_t>& replicas) const {
    std::set<size_t> zones;
    for (size_t i : replicas) zones.insert(zone_[i]);
    return zones.size();
  }
  // Whether member `a` is a better home than `b` for a new replica of `p`.
  bool better_for(uint32_t p, size_t a, size_t b) const {
    const size_t za = in_zone(p, zone_[a]), zb = in_zone(p, zone_[b]);
    if (za != zb) return za < zb;
    if (load_[a] != load_[b]) return load_[a] < load_[b];
    return score(p, members_[a].id) > score(p, members_[b].id);
  }

  // Moves one replica from a busier member to one with at least 2 fewer,
  // keeping every partition's zones as distinct as they were.
  bool move_one(const std::vector<size_t>& busiest_first) {
    for (size_t from : busiest_first) {
      for (auto it = busiest_first.rbegin(); it != busiest_first.rend(); ++it) {
        const size_t to = *it;
        if (load_[from] < load_[to] + 2) break;  // later ones are busier still
        uint32_t chosen = 0;
        bool found = false;
        for (uint32_t p = 0; p < assigned_.size(); ++p) {
          if (!holds(p, from) || holds(p, to)) continue;
          std::vector<size_t> moved = assigned_[p];
          std::replace(moved.begin(), moved.end(), from, to);
          if (distinct_zones(moved) < distinct_zones(assigned_[p])) continue;
          if (!found || score(p, members_[to].id) > score(chosen, members_[to].id)) {
            chosen = p;
            found = true;
          }
        }
        if (!found) continue;
        std::replace(assigned_[chosen].begin(), assigned_[chosen].end(), from, to);
        --load_[from];
        ++load_[to];
        return true;
      }
    }
    return false;
  }

  std::vector<Member> members_;  // by id
  size_t replication_;
  std::vector<std::vector<size_t>> assigned_;  // partition -> member indexes
  std::vector<uint64_t> load_;
  std::vector<size_t> zone_;  // member index -> zone number
  std::map<uint64_t, size_t> index_;  // id -> member index
};

}  // namespace

base::Result<Placement> place(const std::vector<Member>& members, uint32_t partitions,
                              uint32_t replication, const Placement& previous) {
  if (members.empty()) return Error(Errc::kInvalidArgument, "placement needs at least one member");
  if (partitions == 0 || replication == 0) {
    return Error(Errc::kInvalidArgument, "placement needs partitions and replicas");
  }
  std::vector<Member> sorted = members;
  std::sort(sorted.begin(), sorted.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].id == 0) return Error(Errc::kInvalidArgument, "member id 0");
    if (i > 0 && sorted[i].id == sorted[i - 1].id) {
      return Error(Errc::kInvalidArgument,
                   "member " + std::to_string(sorted[i].id) + " listed twice");
    }
  }
  Placer placer(std::move(sorted), partitions, replication);
  placer.keep(previous);
  placer.fill();
  placer.balance();
  return placer.result();
}

std::string encode_placement(const Placement& placement) {
  std::string out;
  base::Encoder e(out);
  e.varint(placement.replicas.size());
  for (const auto& replicas : placement.replicas) {
    e.varint(replicas.size());
    for (uint64_t id : replicas) e.varint(id);
  }
  return out;
}

base::Result<Placement> decode_placement(std::string_view bytes, uint32_t partitions_max) {
  constexpr uint64_t kReplicasPerPartitionMax = 64;
  base::Decoder d(bytes);
  uint64_t partitions = 0;
  auto bad = [] { return Error(Errc::kCorruption, "a placement record does not parse"); };
  if (!d.varint(&partitions) || partitions > partitions_max) return bad();
  Placement out;
  out.replicas.resize(partitions);
  for (auto& replicas : out.replicas) {
    uint64_t count = 0;
    if (!d.varint(&count) || count > kReplicasPerPartitionMax) return bad();
    for (uint64_t i = 0; i < count; ++i) {
      uint64_t id = 0;
      if (!d.varint(&id) || id == 0) return bad();
      replicas.push_back(id);
    }
  }
  if (!d.done()) return bad();
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> loads(const Placement& placement,
                                                 const std::vector<Member>& members) {
  std::map<uint64_t, uint64_t> count;
  for (const Member& m : members) count[m.id] = 0;
  for (const auto& replicas : placement.replicas) {
    for (uint64_t id : replicas) ++count[id];
  }
  return {count.begin(), count.end()};
}

uint64_t replicas_moved(const Placement& before, const Placement& after) {
  uint64_t moved = 0;
  for (size_t p = 0; p < after.replicas.size(); ++p) {
    for (uint64_t id : after.replicas[p]) {
      const bool was = p < before.replicas.size() &&
                       std::find(before.replicas[p].begin(), before.replicas[p].end(), id) !=
                           before.replicas[p].end();
      moved += was ? 0 : 1;
    }
  }
  return moved;
}

std::string placement_version(const Placement& placement) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx",
                static_cast<unsigned long long>(base::checksum64(encode_placement(placement))));
  return text;
}

}  // namespace synod::placement
