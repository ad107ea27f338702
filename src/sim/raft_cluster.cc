#include "sim/raft_cluster.h"

#include <cstdio>
#include <string>

#include "base/assert.h"

namespace synod::sim {

namespace {
NodeId nid(uint64_t id) { return NodeId{id}; }
LogIndex idx(uint64_t index) { return LogIndex{index}; }
Term term(uint64_t t) { return Term{t}; }
}  // namespace

RaftCluster::RaftCluster(std::vector<uint64_t> ids, ConfigTweak tweak,
                         std::vector<uint64_t> learner_ids)
    : tweak_(std::move(tweak)) {
  for (uint64_t id : ids) initial_.voters.push_back(nid(id));
  for (uint64_t id : learner_ids) initial_.learners.push_back(nid(id));
  std::vector<uint64_t> all = ids;
  all.insert(all.end(), learner_ids.begin(), learner_ids.end());
  for (uint64_t id : all) add_empty_node(id, initial_);
}

void RaftCluster::add_empty_node(uint64_t id, const ConfState& initial) {
  Peer p;
  p.id = nid(id);
  p.storage = std::make_unique<MemoryStorage>();
  if (!initial.voters.empty()) {
    // Bootstrap as a deployment would: the initial configuration arrives
    // as a snapshot at index 1, term 1, so every member starts from the same
    // committed state and elections begin at term 2.
    Snapshot snap;
    snap.meta.index = idx(1);
    snap.meta.term = term(1);
    snap.meta.conf_state = initial;
    auto st = p.storage->apply_snapshot(snap);
    if (!st.ok()) report("bootstrap snapshot refused: " + st.error().to_string());
    p.storage->set_hard_state(HardState{term(1), kNone, idx(1)});
    p.applied_index = idx(1);
  }
  auto [it, inserted] = peers_.emplace(id, std::move(p));
  SYNOD_ASSERT(inserted, "a node id was added twice");
  it->second.node = make_node(it->second);
}

std::unique_ptr<RawNode> RaftCluster::make_node(Peer& p) {
  Config c;
  c.id = p.id;
  c.group = GroupId{1};
  c.storage = p.storage.get();
  c.random_seed = p.id.value() * 7919 + 17;
  c.applied = p.applied_index;
  if (tweak_) tweak_(c);
  auto node = RawNode::create(c);
  if (!node.ok()) {
    report("node " + std::to_string(p.id.value()) + " failed to start: " + node.error().to_string());
    SYNOD_ASSERT(false, "a cluster node failed to start");
  }
  return std::move(node).value();
}

void RaftCluster::report(const std::string& violation) {
  if (on_violation) {
    on_violation(violation);
    return;
  }
  std::fprintf(stderr, "raft cluster: %s\n", violation.c_str());
  SYNOD_ASSERT(false, "raft cluster invariant violated (see above)");
}

Peer& RaftCluster::peer(uint64_t id) {
  auto it = peers_.find(id);
  SYNOD_ASSERT(it != peers_.end(), "unknown test peer");
  return it->second;
}

std::vector<uint64_t> RaftCluster::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, _] : peers_) out.push_back(id);
  return out;
}

void RaftCluster::tick(uint64_t id, int ticks) {
  for (int i = 0; i < ticks; ++i) peer(id).node->tick();
}

void RaftCluster::tick_all(int ticks) {
  for (int i = 0; i < ticks; ++i) {
    for (auto& [id, p] : peers_) {
      if (!p.down) p.node->tick();
    }
  }
}

bool RaftCluster::process_ready(uint64_t id) {
  Peer& p = peer(id);
  if (p.down || !p.node->has_ready()) return false;
  Ready rd = p.node->ready();
  for (Message& m : rd.messages) in_flight_.push_back(std::move(m));
  if (rd.snapshot) {
    auto st = p.storage->apply_snapshot(*rd.snapshot);
    if (!st.ok()) report("node " + std::to_string(id) + " snapshot: " + st.error().to_string());
  }
  if (!rd.entries.empty()) {
    auto st = p.storage->append(rd.entries);
    if (!st.ok()) report("node " + std::to_string(id) + " append: " + st.error().to_string());
  }
  if (rd.hard_state) p.storage->set_hard_state(*rd.hard_state);
  for (Message& m : rd.messages_after_persist) in_flight_.push_back(std::move(m));
  if (rd.snapshot) p.applied_index = rd.snapshot->meta.index;
  for (const Entry& e : rd.committed_entries) {
    p.applied_index = e.index;
    if (e.type == EntryType::kConfChange) {
      auto cc = decode_conf_change(e.data.view());
      if (!cc.ok()) report("node " + std::to_string(id) + " conf change: " + cc.error().to_string());
      if (cc.ok()) p.node->apply_conf_change(*cc);
    } else if (!e.data.empty()) {
      p.applied.push_back(e);
    }
  }
  for (ReadState& rs : rd.read_states) p.read_states.push_back(std::move(rs));
  p.node->advance();
  auto invariants = p.node->raft().check_invariants();
  if (!invariants.ok()) report("node " + std::to_string(id) + ": " + invariants.error().to_string());
  return true;
}

bool RaftCluster::dropped(const Message& m) const {
  if (cuts_.count({m.from.value(), m.to.value()})) return true;
  if (drop_filter_ && drop_filter_(m)) return true;
  return false;
}

size_t RaftCluster::deliver_all(int max_rounds) {
  size_t delivered = 0;
  for (int round = 0; round < max_rounds; ++round) {
    bool progressed = false;
    for (auto& [id, p] : peers_) progressed |= process_ready(id);
    while (!in_flight_.empty()) {
      Message m = std::move(in_flight_.front());
      in_flight_.pop_front();
      progressed = true;
      auto it = peers_.find(m.to.value());
      if (it == peers_.end() || it->second.down || dropped(m)) continue;
      delivered_.push_back(m);
      ++delivered;
      (void)it->second.node->step(m);
    }
    if (!progressed) break;
  }
  return delivered;
}

void RaftCluster::elect(uint64_t id) {
  auto st = node(id).campaign();
  if (!st.ok()) report("campaign at node " + std::to_string(id) + ": " + st.error().to_string());
  deliver_all();
}

uint64_t RaftCluster::leader() const {
  uint64_t found = 0;
  for (const auto& [id, p] : peers_) {
    if (!p.down && p.node->raft().role() == Role::kLeader) {
      if (found == 0 || p.node->raft().term() > peers_.at(found).node->raft().term()) found = id;
    }
  }
  return found;
}

void RaftCluster::propose(uint64_t id, const std::string& data) {
  auto st = node(id).propose(Bytes(data));
  if (!st.ok()) report("proposal at node " + std::to_string(id) + ": " + st.error().to_string());
  deliver_all();
}

void RaftCluster::isolate(uint64_t id) {
  for (const auto& [other, _] : peers_) {
    if (other == id) continue;
    cut(id, other);
  }
}

void RaftCluster::cut(uint64_t a, uint64_t b) {
  cuts_.insert({a, b});
  cuts_.insert({b, a});
}

void RaftCluster::heal() {
  cuts_.clear();
  drop_filter_ = nullptr;
}

void RaftCluster::crash(uint64_t id) {
  Peer& p = peer(id);
  p.down = true;
  std::deque<Message> kept;
  for (Message& m : in_flight_) {
    if (m.to != p.id && m.from != p.id) kept.push_back(std::move(m));
  }
  in_flight_ = std::move(kept);
}

void RaftCluster::restart(uint64_t id) {
  Peer& p = peer(id);
  p.down = false;
  p.applied.clear();
  p.read_states.clear();
  // The state machine is rebuilt by replaying from the snapshot.
  p.applied_index = p.storage->first_index() - 1;
  p.node = make_node(p);
}

}  // namespace synod::sim
