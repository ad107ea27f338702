// A single RawNode driven by hand, for white-box rule tests: its storage
// starts as TestCluster's does (a snapshot at 1@1 holding the configuration,
// then `entries`), and `take_ready`/`drain` carry out Readies as a host would.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "raft/test_cluster.h"

// SoloOptions is filled with designated initializers that name only what a
// test changes; the rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace synod::raft::testing {

struct SoloOptions {
  uint64_t id = 1;
  std::vector<uint64_t> voters = {1, 2, 3};
  HardState hard_state{term(1), kNone, idx(1)};
  std::vector<Entry> entries;  // after the bootstrap snapshot, from index 2
  uint64_t seed = 42;
  std::function<void(Config&)> tweak;
};

class Solo {
 public:
  explicit Solo(SoloOptions options) : options_(std::move(options)) {
    Snapshot snap;
    snap.meta.index = idx(1);
    snap.meta.term = term(1);
    for (uint64_t v : options_.voters) snap.meta.conf_state.voters.push_back(nid(v));
    EXPECT_TRUE(storage_.apply_snapshot(snap).ok());
    EXPECT_TRUE(storage_.append(options_.entries).ok());
    storage_.set_hard_state(options_.hard_state);
    start();
  }

  // A crash and restart: a new RawNode over the same (persisted) storage.
  void start() {
    Config c;
    c.id = nid(options_.id);
    c.group = GroupId{1};
    c.storage = &storage_;
    c.random_seed = options_.seed;
    c.applied = idx(1);
    if (options_.tweak) options_.tweak(c);
    auto node = RawNode::create(c);
    ASSERT_TRUE(node.ok()) << node.error().to_string();
    node_ = std::move(node).value();
  }

  RawNode& node() { return *node_; }
  const Raft& raft() const { return node_->raft(); }
  MemoryStorage& storage() { return storage_; }
  NodeId id() const { return nid(options_.id); }
  const std::vector<uint64_t>& voters() const { return options_.voters; }

  void step(const Message& m) { (void)node_->step(m); }

  // Takes one Ready and carries it out as a host would (persist, advance),
  // stepping any message addressed to this node back into it.
  Ready take_ready() {
    Ready rd = node_->ready();
    if (rd.snapshot) {
      EXPECT_TRUE(storage_.apply_snapshot(*rd.snapshot).ok());
    }
    if (!rd.entries.empty()) {
      EXPECT_TRUE(storage_.append(rd.entries).ok());
    }
    if (rd.hard_state) storage_.set_hard_state(*rd.hard_state);
    node_->advance();
    std::vector<Message> to_self;
    for (const auto* list : {&rd.messages, &rd.messages_after_persist}) {
      for (const Message& m : *list) {
        if (m.to == id()) to_self.push_back(m);
      }
    }
    for (const Message& m : to_self) step(m);
    return rd;
  }

  // Every message to a peer produced until the node has nothing left to do.
  std::vector<Message> drain() {
    std::vector<Message> out;
    for (int i = 0; i < 100 && node_->has_ready(); ++i) {
      Ready rd = take_ready();
      for (const auto* list : {&rd.messages, &rd.messages_after_persist}) {
        for (const Message& m : *list) {
          if (m.to != id()) out.push_back(m);
        }
      }
    }
    return out;
  }

 private:
  SoloOptions options_;
  MemoryStorage storage_;
  std::unique_ptr<RawNode> node_;
};

inline Message make_msg(MessageType type, uint64_t from, uint64_t to, uint64_t t) {
  Message m;
  m.group = GroupId{1};
  m.type = type;
  m.from = nid(from);
  m.to = nid(to);
  m.term = term(t);
  return m;
}

inline Message vote_request(uint64_t from, uint64_t to, uint64_t t, uint64_t last_term,
                     uint64_t last_index, bool pre = false) {
  Message m = make_msg(pre ? MessageType::kPreVote : MessageType::kVote, from, to, t);
  m.log_term = term(last_term);
  m.index = idx(last_index);
  m.campaign = pre ? CampaignKind::kPreElection : CampaignKind::kElection;
  return m;
}

inline Message vote_response(uint64_t from, uint64_t to, uint64_t t, bool granted, bool pre = false) {
  Message m = make_msg(pre ? MessageType::kPreVoteResp : MessageType::kVoteResp, from, to, t);
  m.reject = !granted;
  return m;
}

inline std::vector<Message> of_type(const std::vector<Message>& msgs, MessageType type) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == type) out.push_back(m);
  }
  return out;
}

inline std::vector<Message> of_type_to(const std::vector<Message>& msgs, MessageType type, uint64_t to) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == type && m.to == nid(to)) out.push_back(m);
  }
  return out;
}

// Campaigns and grants every vote the node asks for, until it leads. Returns
// what the new leader sent.
inline std::vector<Message> win_election(Solo& s) {
  EXPECT_TRUE(s.node().campaign().ok());
  s.drain();
  std::vector<Message> sent;
  for (int round = 0; round < 3 && s.raft().role() != Role::kLeader; ++round) {
    const bool pre = s.raft().role() == Role::kPreCandidate;
    const uint64_t t = s.raft().term().value() + (pre ? 1 : 0);
    for (uint64_t v : s.voters()) {
      if (nid(v) == s.id()) continue;
      s.step(vote_response(v, s.id().value(), t, /*granted=*/true, pre));
    }
    sent = s.drain();
  }
  EXPECT_EQ(s.raft().role(), Role::kLeader);
  return sent;
}

inline auto classic(std::function<void(Config&)> more = {}) {
  // The plain Figure 2 protocol: no PreVote, no CheckQuorum leases.
  return [more](Config& c) {
    c.pre_vote = false;
    c.check_quorum = false;
    if (more) more(c);
  };
}

inline std::vector<Entry> terms_from(uint64_t first, std::vector<uint64_t> terms) {
  std::vector<Entry> out;
  for (uint64_t t : terms) out.push_back(Entry{term(t), idx(first++), EntryType::kNormal, Bytes()});
  return out;
}

}  // namespace synod::raft::testing
