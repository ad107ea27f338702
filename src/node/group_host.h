// GroupHost: every Raft group one node holds, and the routing between them.
// Pure, like node::Node: the host (runtime::NodeHost in a process, the
// simulator in simulated time) feeds it ticks, peer messages, client
// requests and "this group's write is durable", and carries out what it asks
// for in `take_output()`. Times are the host's monotonic milliseconds.
//
// Groups: the meta group (1: the keyspace catalog), the default keyspace's
// partitions (2 .. P+1, on every member) and the partitions of created
// keyspaces that the placement gives this node (node::kFirstKeyspaceGroup
// and up). Each is a node::Node; they share the engine (keys prefixed by
// group) and the host's logs.
//
// Routing (node::CatalogRouter): a key's keyspace by its longest "K:"
// prefix, its partition by XXH3 and jump hash. Keys with a ':' wait while
// this node's catalog is not confirmed by the meta group (a lease renewed
// every renew_ms); keys of a keyspace being created or dropped are refused.
// A request for a group this node holds no replica of is forwarded to a
// node that does (the one that last answered for it first), which hands it
// to its leader; the answer is relayed back.
//
// The catalog: when the meta group applies a catalog command, the node
// rereads it, starts the replicas it now holds (created from the placement
// at index 1, as at bootstrap) and retires those of forgotten keyspaces
// (log cut back, data deleted). The meta leader takes each keyspace's next
// step once the router says its wait is over.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "node/catalog_router.h"
#include "node/node.h"

namespace synod::node {

// The host's durable logs, one per group: the WAL in a process, a simulated
// disk in the simulator.
class GroupLogs {
 public:
  virtual ~GroupLogs() = default;
  virtual bool has(raft::GroupId group) const = 0;
  // Every group the logs hold records of, ascending.
  virtual std::vector<raft::GroupId> groups() const = 0;
  // The group's log; an empty one if it has none yet.
  virtual raft::Storage& storage(raft::GroupId group) = 0;
  // Makes the requests durable (together) before returning. Only for
  // creating and removing groups, which is rare; a group's ordinary writes
  // go through GroupHostOutput::persists.
  virtual base::Status persist_now(
      const std::vector<std::pair<raft::GroupId, PersistRequest>>& requests) = 0;
  // What the group's log sends when a follower needs a snapshot (null: none).
  virtual void set_snapshot_source(raft::GroupId group,
                                   std::function<base::Result<raft::Snapshot>()> source) = 0;
};

struct GroupHostOptions {
  uint64_t node_id = 0;
  // The initial members: every one holds the meta group and the default
  // keyspace's partitions.
  std::vector<uint64_t> members;
  uint32_t default_partitions = 4;
  // Every group's options; raft.group, raft.storage, raft.random_seed and
  // incarnation are filled in per group.
  NodeOptions node;
  uint64_t tick_ms = 50;  // what one tick() stands for
  // Requests held or forwarded by the host itself wait at most this long
  // (plus 100 ms per MiB of a write).
  uint64_t request_timeout_ms = 3000;
  RouterOptions router;
  // Seeds and incarnations: the simulator's seed decides them.
  std::function<uint64_t()> random;
};

// A replica move this node drives (it leads the group), for status pages.
struct MoveStatus {
  uint64_t group = 0;
  std::string name;  // "keyspace app partition 3"
  std::vector<uint64_t> target;    // the placement's replicas
  std::vector<uint64_t> voters;    // the group's configuration now
  std::vector<uint64_t> learners;
  bool joint = false;
  // Catching up: the learner's match index against the leader's last index.
  uint64_t learner = 0;
  uint64_t learner_match = 0;
  uint64_t last_index = 0;
};

struct GroupHostOutput {
  std::vector<Envelope> messages;  // to peers; each names its group
  std::vector<std::pair<uint64_t, Response>> responses;  // (request id, reply)
  // Writes to make durable, one at most per group; then persisted(group).
  std::vector<std::pair<uint64_t, PersistRequest>> persists;
  // Entries applied, per group, when NodeOptions::report_applied (checkers).
  std::vector<std::pair<uint64_t, std::vector<raft::Entry>>> applied;
  std::vector<std::string> log;  // lines for a person
  // Replicas removed, with what each had applied (checkers).
  std::vector<std::pair<uint64_t, AppliedState>> removed;
};

class GroupHost {
 public:
  // Ids of requests the host submits must be below this; GroupHost's own
  // requests (lease renewals, catalog steps) use the ids above.
  static constexpr uint64_t kHostIdsEnd = uint64_t{1} << 62;

  // A new cluster's first start: every initial group is created from the
  // same configuration (the members), on every member.
  static base::Status bootstrap(const GroupHostOptions& options, KvEngine* engine, GroupLogs* logs);
  // Starts every group the node holds, from what the engine and the logs
  // hold.
  static base::Result<std::unique_ptr<GroupHost>> open(GroupHostOptions options, KvEngine* engine,
                                                       GroupLogs* logs, uint64_t now_ms);
  ~GroupHost();

  void tick(uint64_t now_ms);
  void receive(uint64_t from, PeerMessage message, uint64_t now_ms);
  // A client's request; its reply comes back in take_output() under `id`
  // (below kHostIdsEnd, unique among this host's open requests).
  void submit(uint64_t id, Request request, uint64_t now_ms);
  // A catalog command (create or drop a keyspace) for the meta group, with
  // a dedupe id of its own; its reply comes back under `id`.
  void submit_meta(uint64_t id, Command command);
  // The group's last PersistRequest is durable.
  void persisted(uint64_t group);
  // What the groups touched since the last call produced (every write that
  // arrived meanwhile goes into one proposal per group).
  GroupHostOutput take_output();

  // Set once a group failed (the engine refused a write, a log could not
  // be written): the host must stop and recover from disk.
  const std::optional<base::Error>& failed() const { return failed_; }
  // Ends every open request with kTimeout and `reason` (the host stops).
  void fail_all(const std::string& reason);

  // ---- For status, admin calls and checkers ---------------------------
  const CatalogRouter& router() const { return *router_; }
  // The group's Node, null if this node holds no replica of it.
  const Node* group(uint64_t id) const;
  // Every group held here, ascending.
  std::vector<uint64_t> groups() const;
  // The leader known for `group` here: its own view if it holds a replica,
  // else the node that last answered a forwarded request for it (0: none).
  uint64_t leader_of(uint64_t group) const;
  // "meta group", "partition 3" (of default), "keyspace app partition 3".
  std::string group_name(uint64_t group) const;
  size_t open_requests() const;
  // The moves this node drives now: groups it leads whose configuration is
  // not yet the placement's.
  std::vector<MoveStatus> moves() const;
  uint64_t elections_won() const { return elections_won_; }
  uint64_t leader_changes() const { return leader_changes_; }

 private:
  struct LearnerWatch {  // a learner of a group this node leads
    uint64_t seen_ms = 0;
    uint64_t match = 0;        // its match index when last seen to progress
    uint64_t progress_ms = 0;  // when that was
    uint64_t goal = 0;         // the index it must reach to vote (0: not yet set)
  };
  struct Group {
    std::unique_ptr<Node> node;
    raft::Role last_role = raft::Role::kFollower;
    uint64_t last_leader = 0;
    bool retiring = false;  // its keyspace is gone: removed once no write is in flight
    bool persisting = false;  // a PersistRequest is out, persisted() not yet called
    size_t transfers = 0;     // leadership handed on before leaving (attempts)
    uint64_t next_membership_check_ms = 0;
    std::map<uint64_t, LearnerWatch> learners;  // while this node leads
    std::string name;
  };
  struct Held {  // waiting for the catalog to be confirmed
    uint64_t id = 0;
    Request request;
    uint64_t deadline_ms = 0;
  };
  struct Proxied {  // forwarded to a node that holds the group
    uint64_t group = 0;
    Request request;
    uint64_t deadline_ms = 0;
    uint64_t sent_to = 0;  // 0: not in flight
    size_t attempts = 0;
    std::string last_refusal;
  };
  enum class Internal : uint8_t { kRenewal, kStep };

  GroupHost(GroupHostOptions options, KvEngine* engine, GroupLogs* logs);
  base::Status start_group(uint64_t id);
  base::Status refresh_catalog(uint64_t now_ms);
  void retire_groups();
  void mark_moved_away();
  void check_memberships(uint64_t now_ms);
  void membership(uint64_t from, const MembershipCheck& check);
  void drive_moves();
  const placement::Keyspace* keyspace_of_group(uint64_t group) const;
  base::Status retire(uint64_t group);
  void retire_leftovers();
  void maybe_confirm(uint64_t now_ms);
  bool retired_log(uint64_t group);
  void renew_catalog(uint64_t now_ms);
  void take_catalog_steps(uint64_t now_ms);
  void expire(uint64_t now_ms);
  void route(uint64_t id, Request request, uint64_t deadline_ms, uint64_t now_ms);
  void proxy_send(uint64_t id, uint64_t now_ms);
  void proxy_reply(uint64_t from, ForwardReply reply, uint64_t now_ms);
  void answer(uint64_t id, Response response);
  void internal_reply(uint64_t id, Response response, uint64_t now_ms);
  void drain(uint64_t group, GroupHostOutput& out);
  void note_role(uint64_t group, Group& g, GroupHostOutput& out);
  void fail(base::Error error);
  void say(std::string line) { log_.push_back(std::move(line)); }
  uint64_t deadline_for(const Request& request, uint64_t now_ms) const;

  GroupHostOptions options_;
  KvEngine* engine_;
  GroupLogs* logs_;
  std::map<uint64_t, Group> groups_;
  std::unique_ptr<CatalogRouter> router_;
  uint64_t catalog_version_seen_ = 0;
  // The groups the catalog gives this node, with their replicas (reread
  // with the catalog; every tick looks at it).
  std::map<uint64_t, std::vector<uint64_t>> wanted_;
  std::set<uint64_t> dirty_;  // groups to drain in the next take_output()
  std::vector<std::pair<uint64_t, Response>> answers_;  // host-level replies
  std::vector<Envelope> sends_;                         // host-level messages
  std::vector<std::string> log_;
  std::vector<std::pair<uint64_t, AppliedState>> removed_;
  std::vector<Held> held_;
  std::map<uint64_t, Proxied> proxied_;        // by request id
  std::map<uint64_t, uint64_t> leader_hint_;   // group -> the node that last answered
  std::map<uint64_t, uint64_t> submitted_to_;  // request id -> the group it went to
  struct Own {  // a request of GroupHost's own
    Internal kind = Internal::kRenewal;
    std::string keyspace;  // kStep
    CommandOp op = CommandOp::kActivateKeyspace;
  };
  std::map<uint64_t, Own> internal_;
  std::set<std::string> steps_in_flight_;      // keyspaces whose next step is proposed
  // A renewal answered at this meta log index: confirmed once the local
  // meta replica has applied that far (and the catalog was reread).
  std::optional<uint64_t> confirm_at_;
  uint64_t renewal_started_ms_ = 0;
  bool leftovers_checked_ = false;
  uint64_t next_internal_ = kHostIdsEnd;
  uint64_t incarnation_ = 0;
  uint64_t now_ms_ = 0;  // the latest time the host gave
  uint64_t elections_won_ = 0;
  uint64_t leader_changes_ = 0;
  std::optional<base::Error> failed_;
};

}  // namespace synod::node
