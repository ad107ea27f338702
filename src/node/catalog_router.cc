#include "node/catalog_router.h"

#include <algorithm>

#include "placement/partition.h"

namespace synod::node {

using base::Errc;
using base::Error;

namespace {
// More keyspaces than this in one catalog is refused as damage, not read.
constexpr size_t kCatalogEntriesMax = 1u << 16;
}  // namespace

base::Result<std::vector<CatalogEntry>> read_catalog(const KvStateMachine& meta) {
  auto records = meta.scan(kKeyspaceRecordPrefix, kCatalogEntriesMax + 1);
  if (!records) return records.error();
  if (records->size() > kCatalogEntriesMax) {
    return Error(Errc::kCorruption, "the catalog holds more keyspaces than a node reads");
  }
  std::vector<CatalogEntry> out;
  out.reserve(records->size());
  for (const auto& [key, value] : *records) {
    auto keyspace = placement::decode_keyspace(value);
    if (!keyspace) return Error(Errc::kCorruption, key + ": " + keyspace.error().message());
    auto stored = meta.get(std::string(kPlacementRecordPrefix) + keyspace->name);
    if (!stored) return stored.error();
    if (!stored->has_value()) {
      return Error(Errc::kCorruption, "keyspace '" + keyspace->name + "' has no placement");
    }
    auto where = placement::decode_placement(**stored, placement::kPartitionsMax);
    if (!where || where->replicas.size() != keyspace->partitions) {
      return Error(Errc::kCorruption, "keyspace '" + keyspace->name + "' has a damaged placement");
    }
    out.push_back(CatalogEntry{std::move(*keyspace), std::move(*where)});
  }
  return out;
}

CatalogRouter::CatalogRouter(placement::Keyspace default_keyspace,
                             placement::Placement default_placement, RouterOptions options)
    : options_(options) {
  const std::string name = default_keyspace.name;
  catalog_.put(std::move(default_keyspace));
  placements_[name] = std::move(default_placement);
}

void CatalogRouter::update(std::vector<CatalogEntry> entries, uint64_t now_ms) {
  const placement::Keyspace default_keyspace =
      *catalog_.find(std::string(placement::kDefaultKeyspace));
  placement::Placement default_placement =
      std::move(placements_[std::string(placement::kDefaultKeyspace)]);
  catalog_ = placement::Catalog();
  placements_.clear();
  catalog_.put(default_keyspace);
  placements_[default_keyspace.name] = std::move(default_placement);
  decltype(seen_ms_) seen;
  for (CatalogEntry& entry : entries) {
    if (entry.keyspace.name == placement::kDefaultKeyspace) continue;
    const auto state_key =
        std::make_tuple(entry.keyspace.name, entry.keyspace.first_group, entry.keyspace.state);
    auto it = seen_ms_.find(state_key);
    seen[state_key] = it == seen_ms_.end() ? now_ms : it->second;
    placements_[entry.keyspace.name] = std::move(entry.placement);
    catalog_.put(std::move(entry.keyspace));
  }
  seen_ms_ = std::move(seen);
}

bool CatalogRouter::renewal_due(uint64_t now_ms) const {
  return !renewing_ && (!renewed_once_ || now_ms >= renewal_started_ms_ + options_.renew_ms);
}

void CatalogRouter::renewal_started(uint64_t now_ms) {
  renewing_ = true;
  renewed_once_ = true;
  renewal_started_ms_ = now_ms;
}

void CatalogRouter::renewal_finished(bool ok) {
  if (!renewing_) return;
  renewing_ = false;
  // Good from when the read was issued, not from its answer: the catalog is
  // known to be at least as new as the meta group was then.
  if (ok) {
    lease_until_ms_ = std::max(lease_until_ms_, renewal_started_ms_ + options_.lease_ms);
  }
}

Route CatalogRouter::route(std::string_view key, uint64_t now_ms) const {
  Route route;
  if (key.find(':') != std::string_view::npos && !confirmed(now_ms)) {
    route.kind = Route::Kind::kHold;
    route.why = "this node has not confirmed its keyspace catalog with the meta group";
    return route;
  }
  // Once per request: one lookup, one hash.
  const placement::Keyspace* keyspace = catalog_.keyspace_of(key);
  route.keyspace = keyspace->name;
  route.partition = placement::partition_of(key, keyspace->partitions);
  if (keyspace->state != placement::KeyspaceState::kActive) {
    route.kind = Route::Kind::kRefuse;
    route.why = placement::not_served_reason(*keyspace);
    return route;
  }
  route.group = keyspace->group_of_partition(route.partition);
  return route;
}

std::vector<CatalogStep> CatalogRouter::due_steps(uint64_t now_ms) const {
  std::vector<CatalogStep> steps;
  for (const auto& [state_key, seen] : seen_ms_) {
    const auto& [name, first_group, state] = state_key;
    const uint64_t wait =
        SYNOD_BUG(options_.bugs, base::Bug::kSkipCatalogWait) ? 0 : 2 * options_.lease_ms;
    if (now_ms < seen + wait) continue;
    if (state == placement::KeyspaceState::kCreating) {
      steps.push_back({CommandOp::kActivateKeyspace, name});
    } else if (state == placement::KeyspaceState::kDropping) {
      steps.push_back({CommandOp::kForgetKeyspace, name});
    }
  }
  return steps;
}

std::map<uint64_t, std::vector<uint64_t>> CatalogRouter::groups_of(uint64_t node_id) const {
  std::map<uint64_t, std::vector<uint64_t>> out;
  for (const auto& [name, keyspace] : catalog_.all()) {
    const placement::Placement& where = placements_.at(name);
    for (uint32_t p = 0; p < where.replicas.size(); ++p) {
      const std::vector<uint64_t>& replicas = where.replicas[p];
      if (std::find(replicas.begin(), replicas.end(), node_id) != replicas.end()) {
        out[keyspace.group_of_partition(p)] = replicas;
      }
    }
  }
  return out;
}

std::vector<uint64_t> CatalogRouter::replicas_of(uint64_t group) const {
  const placement::Keyspace* keyspace = catalog_.keyspace_of_group(group);
  if (keyspace == nullptr) return {};
  return placements_.at(keyspace->name).replicas[group - keyspace->first_group];
}

const placement::Placement* CatalogRouter::placement_of(const std::string& keyspace) const {
  auto it = placements_.find(keyspace);
  return it == placements_.end() ? nullptr : &it->second;
}

}  // namespace synod::node
