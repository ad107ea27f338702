// CatalogRouter: which Raft group a key goes to, by the catalog of keyspaces
// the meta group holds, and when this node may trust its copy of it.
//
// The hazard it exists for: while "create keyspace app" commits, a node
// that has not applied it yet would route `app:x` to a default partition
// while one that has would route it to app's group, and a read through one
// could miss a write acknowledged through the other. Three rules close it:
//
//   1. A catalog lease. A node routes keys that may belong to a keyspace
//      (those with a ':') only while its catalog is confirmed: a ReadIndex
//      on the meta group, issued at time t and answered once the node has
//      applied the meta group that far, makes the catalog good until
//      t + lease_ms. Without it (a restart, a node cut off from the meta
//      group's majority) such requests wait, and fail at their deadline.
//      Keys without ':' belong to `default` whatever the catalog says and
//      are served at once.
//   2. Two-step changes. A keyspace is created in state `creating` and
//      dropped into `dropping`; in both its keys are refused (TRYAGAIN).
//   3. A wait between the steps. The meta leader activates a creating
//      keyspace (or forgets a dropping one) only when 2 x lease_ms have
//      passed since it applied the step: by then every lease confirmed
//      before the step has run out, so every node that still routes has
//      seen it. The factor 2 leaves room for clocks that run at different
//      rates (up to 2x), as leader leases do.
//
// So at no moment do two nodes route one key to two groups that both serve
// it. The ReadIndex of rule 1 may be answered by the meta leader (a
// follower forwards reads); the reply carries the index it was served at,
// and the host (GroupHost) confirms only once its own meta replica has
// applied that far and the catalog was reread.
//
// A request routed under the old catalog may still be acknowledged after
// the step (it can wait for its group's leader up to its deadline). That
// stays linearizable: the step acts like an operation that starts the
// keyspace's keys afresh, and every request routed to the old group was
// invoked before the step, so its linearization point can be placed before
// it; every request served by the new group was routed after the step.
// Registers are linearizable key by key (Herlihy and Wing's locality), so
// moving one key's points does not disturb any other key.
//
// Times are a monotonic clock in milliseconds that the host supplies.
// Pure: no clock, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "base/bugs.h"
#include "base/result.h"
#include "node/kv_state_machine.h"
#include "placement/keyspace.h"
#include "placement/placement.h"

namespace synod::node {

struct CatalogEntry {
  placement::Keyspace keyspace;
  placement::Placement placement;
};

// The keyspaces the meta group's machine holds, with their placements.
base::Result<std::vector<CatalogEntry>> read_catalog(const KvStateMachine& meta);

struct RouterOptions {
  uint64_t lease_ms = 2000;  // a confirmed catalog is routed by this long
  uint64_t renew_ms = 500;   // how often the catalog is confirmed
  base::BugSet bugs;         // the simulator only (base/bugs.h)
};

struct Route {
  enum class Kind : uint8_t {
    kGroup,   // send it to `group`
    kHold,    // this node's catalog is not confirmed: wait for it
    kRefuse,  // its keyspace is being created or dropped: TRYAGAIN (`why`)
  };
  Kind kind = Kind::kGroup;
  uint64_t group = 0;
  std::string keyspace;
  uint32_t partition = 0;
  std::string why;
};

// A catalog step the meta leader should propose now.
struct CatalogStep {
  CommandOp op = CommandOp::kActivateKeyspace;
  std::string keyspace;
  friend bool operator==(const CatalogStep&, const CatalogStep&) = default;
};

class CatalogRouter {
 public:
  // `default_keyspace` (groups 2..) and the members that hold it.
  CatalogRouter(placement::Keyspace default_keyspace, placement::Placement default_placement,
                RouterOptions options = {});

  // The catalog as the meta group now holds it, replacing what was known.
  // `now_ms` starts the wait of every keyspace seen in a new state.
  void update(std::vector<CatalogEntry> entries, uint64_t now_ms);

  // The lease: a confirmation should start now (none is in flight and
  // renew_ms passed since the last began).
  bool renewal_due(uint64_t now_ms) const;
  void renewal_started(uint64_t now_ms);
  // The ReadIndex begun at renewal_started() answered (`ok`) or failed.
  void renewal_finished(bool ok);
  bool confirmed(uint64_t now_ms) const { return now_ms < lease_until_ms_; }

  Route route(std::string_view key, uint64_t now_ms) const;

  // For the meta leader: the activations and forgets whose wait is over.
  std::vector<CatalogStep> due_steps(uint64_t now_ms) const;

  // Every group node `node_id` holds a replica of, with its voters.
  std::map<uint64_t, std::vector<uint64_t>> groups_of(uint64_t node_id) const;
  // The replicas of `group`'s partition (empty when no keyspace has it).
  std::vector<uint64_t> replicas_of(uint64_t group) const;

  const placement::Catalog& catalog() const { return catalog_; }
  const placement::Placement* placement_of(const std::string& keyspace) const;
  const RouterOptions& options() const { return options_; }

 private:
  RouterOptions options_;
  placement::Catalog catalog_;
  std::map<std::string, placement::Placement> placements_;
  // When each keyspace was first seen in its current state, by (name,
  // first group, state): the wait before its next step starts there.
  std::map<std::tuple<std::string, uint64_t, placement::KeyspaceState>, uint64_t> seen_ms_;
  uint64_t lease_until_ms_ = 0;
  bool renewing_ = false;
  uint64_t renewal_started_ms_ = 0;
  bool renewed_once_ = false;
};

}  // namespace synod::node
