// RaftCluster: a deterministic, in-memory cluster of RawNodes in one thread.
//
// Each node persists to its own MemoryStorage (which survives `restart`, as a
// disk would) and applies committed entries to a list. Messages go through a
// queue; `deliver_all()` carries them, honouring cuts and a drop filter,
// until nothing is left to do. Ticks are explicit; nothing is random unless
// the caller asks. Unit tests, the demo and the simulator drive it; after
// every Ready it checks each node's invariants and reports a violation to
// `on_violation` (which aborts unless replaced).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "raft/memory_storage.h"
#include "raft/raft.h"
#include "raft/raw_node.h"

namespace synod::sim {

using namespace synod::raft;  // the cluster speaks Raft's vocabulary throughout

struct Peer {
  NodeId id;
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<RawNode> node;
  // Normal entries applied, in order (index, data).
  std::vector<Entry> applied;
  std::vector<ReadState> read_states;
  LogIndex applied_index;
  bool down = false;
};

class RaftCluster {
 public:
  using ConfigTweak = std::function<void(Config&)>;
  // Makes voters `ids` (and learners `learner_ids`) with a shared initial
  // configuration, as if bootstrapped.
  explicit RaftCluster(std::vector<uint64_t> ids, ConfigTweak tweak = {},
                       std::vector<uint64_t> learner_ids = {});

  Peer& peer(uint64_t id);
  RawNode& node(uint64_t id) { return *peer(id).node; }
  const Raft& raft(uint64_t id) { return peer(id).node->raft(); }
  MemoryStorage& storage(uint64_t id) { return *peer(id).storage; }
  std::vector<uint64_t> ids() const;

  // Adds a node that starts with an empty log and the given ConfState (for
  // nodes joining by a conf change).
  void add_empty_node(uint64_t id, const ConfState& initial = {});

  void tick(uint64_t id, int ticks = 1);
  void tick_all(int ticks = 1);
  // Processes every node's Ready and delivers messages until quiescent or
  // `max_rounds` rounds pass. Returns the number of messages delivered.
  size_t deliver_all(int max_rounds = 10000);
  // Elects `id` by campaigning and delivering.
  void elect(uint64_t id);
  // The node every up node thinks leads, or 0.
  uint64_t leader() const;
  void propose(uint64_t id, const std::string& data);

  // Network faults.
  void isolate(uint64_t id);
  void cut(uint64_t a, uint64_t b);
  void heal();
  // Drops messages for which `filter` returns true (in addition to cuts).
  void set_drop_filter(std::function<bool(const Message&)> filter) { drop_filter_ = filter; }
  // Every delivered message, for tests that assert on traffic.
  std::vector<Message>& delivered() { return delivered_; }
  std::deque<Message>& in_flight() { return in_flight_; }

  // Crash: drops in-flight messages to it and its unpersisted state.
  void crash(uint64_t id);
  // Restart from what its storage holds.
  void restart(uint64_t id);

  // Takes `id`'s Ready, persists, applies, queues messages, advances.
  bool process_ready(uint64_t id);

  ConfState initial_conf_state() const { return initial_; }

  // Called with a description of anything that must never happen (an
  // invariant broken, a storage write refused). Default: abort.
  std::function<void(const std::string&)> on_violation;

 private:
  std::unique_ptr<RawNode> make_node(Peer& p);
  bool dropped(const Message& m) const;
  void report(const std::string& violation);

  ConfigTweak tweak_;
  ConfState initial_;
  std::map<uint64_t, Peer> peers_;
  std::set<std::pair<uint64_t, uint64_t>> cuts_;
  std::function<bool(const Message&)> drop_filter_;
  std::deque<Message> in_flight_;
  std::vector<Message> delivered_;
};

}  // namespace synod::sim
