// NodeHost: one Synod node as a process runs it. It owns the node's disk
// state (the WAL under `<data>/wal`, RocksDB under `<data>/kv`, the member
// list in `<data>/cluster.json`), the pure node::Node, the peer transport
// and the tick timer, all on one asio event loop. The WAL's writer thread
// and RocksDB's own threads are the only others.
//
// It does for node::Node what the simulator does in simulated time: sends
// its messages, makes its writes durable (group commit through the WAL's
// writer; the completion comes back to the loop, which feeds the group's log
// and tells the node), ticks it, and routes replies to the callers of
// `submit`.
//
// Groups: the meta group (1), the default keyspace's partitions (2..) and
// the partitions of created keyspaces that the placement gives this node
// (2^20..). A key's group comes from node::CatalogRouter: its keyspace by
// the longest "K:" prefix, then XXH3 and jump hash into the keyspace's
// partitions; the router also holds back keys with a ':' until this node
// has confirmed its catalog with the meta group (a lease renewed every
// 500 ms), and refuses keys of a keyspace being created or dropped. Each
// group is its own node::Node; they share the WAL (one group commit for
// all), the engine (keys prefixed by group) and the peer connections: what
// one turn of the loop has for a peer, heartbeats of every group included,
// goes in one frame. A request for a group this node holds no replica of is
// forwarded to a node that does (the one that last answered for it first).
//
// Keyspaces: `keyspace_call` creates (the placement computed here over the
// members, committed by the meta group with the keyspace in state
// `creating`), drops, lists and describes them. When the meta group applies
// a change, every node rereads the catalog, starts the replicas it now
// holds (bootstrapped from the placement at index 1, as at first start) and
// retires those of forgotten keyspaces (their data and log deleted). The
// meta leader takes the next step (activate, forget) two leases after the
// last (node/catalog_router.h says why that is safe).
//
// First start: with no WAL for the groups, the node bootstraps every group
// with the initial members (the configuration as a snapshot at index 1, as
// every member does, so they agree) and records the member list and the
// partition count. A restart recovers from disk and ignores
// `initial_cluster`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "node/node.h"
#include "placement/keyspace.h"
#include "runtime/peer_transport.h"

namespace asio {
class io_context;
}

namespace synod::runtime {

struct NodeHostOptions {
  uint64_t node_id = 0;
  std::string cluster_id = "synod";
  std::string data_dir;
  // Peer address of every initial member, ours included (first start only).
  std::map<uint64_t, std::string> initial_cluster;
  // Where to listen for peers; our entry in the member list when empty.
  std::string peer_listen;
  uint32_t tick_ms = 50;
  int election_ticks = 10;  // 0.5-1 s: a leader is replaced within 2 s
  int heartbeat_ticks = 1;
  double phi_threshold = 8.0;  // PeerTransportOptions::phi_threshold
  uint32_t request_timeout_ms = 3000;
  uint64_t compact_every_entries = 10000;
  // Raft groups of the default keyspace (first start only; then the data
  // directory's). Every node also hosts the meta group.
  uint32_t partitions = 4;
  std::function<void(const std::string&)> log;
};

struct GroupStatus {
  uint64_t group = 0;
  std::string keyspace;    // empty for the meta group
  uint32_t partition = 0;
  std::string role;
  uint64_t term = 0;
  uint64_t leader = 0;
  uint64_t commit = 0;
  uint64_t applied = 0;
  uint64_t last_index = 0;
};

struct NodeHostStatus {
  uint64_t node_id = 0;
  std::string cluster_id;
  std::vector<GroupStatus> groups;
  std::vector<PeerState> peers;
  uint64_t requests_open = 0;
  uint64_t elections_won = 0;
  uint64_t proposals = 0;
  uint64_t wal_syncs = 0;
  uint64_t wal_batches = 0;
  uint64_t wal_bytes = 0;
  uint64_t entries_applied = 0;
  std::string failure;  // set once the node stopped on a storage failure
};

class NodeHost {
 public:
  using Done = std::function<void(node::Response)>;

  // Opens (recovering, or bootstrapping on first start) the node's data.
  static base::Result<std::unique_ptr<NodeHost>> open(asio::io_context& loop,
                                                      NodeHostOptions options);
  ~NodeHost();

  // Listens for peers and starts ticking.
  base::Status start();
  // Stops ticking and closes peer connections; open requests get kUnavailable.
  void stop();

  // On the loop's thread: runs `request`, then calls `done` (always, by the
  // request's deadline at the latest).
  void submit(node::Request request, Done done);

  NodeHostStatus status() const;
  // /status: the status as JSON.
  std::string status_json() const;
  // Where `key` lives: {"key", "partition", "group", "leader"} (leader 0:
  // none known here).
  std::string locate_json(const std::string& key) const;
  // Brings the node's gauges and counters in `metrics` up to date, and moves
  // the WAL write durations seen since the last call into its histogram.
  void export_metrics(class Metrics& metrics) const;
  uint64_t node_id() const;

  // Creates, drops, lists or describes keyspaces; `done` (on the loop) gets
  // JSON, or an error: kInvalidArgument (a bad request or one the meta
  // group refused, in its words), kNotFound, kUnavailable (no meta leader
  // answered in time).
  void keyspace_call(placement::KeyspaceCall call,
                     std::function<void(base::Result<std::string>)> done);

  struct Impl;

 private:
  explicit NodeHost(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace synod::runtime
