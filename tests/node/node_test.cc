// node::Node on its own: request routing, deadlines, bad input, dedupe on
// retry, persistence ordering, and replies that must never reach the wrong
// request. Three nodes over MemoryStorage; the test carries every message,
// write and tick by hand, so each case controls exactly what happens.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <memory>

#include "node/node.h"
#include "raft/memory_storage.h"
#include "raft/raft.h"
#include "storage/mem_kv_engine.h"

namespace synod::node {
namespace {

using raft::ConfState;
using raft::GroupId;
using raft::HardState;
using raft::LogIndex;
using raft::NodeId;
using raft::Term;

constexpr GroupId kGroup{1};

struct Host {
  std::unique_ptr<raft::MemoryStorage> storage;
  std::unique_ptr<storage::MemKvEngine> engine;
  std::unique_ptr<Node> node;
  std::optional<PersistRequest> persisting;
  std::map<uint64_t, Response> replies;
};

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t id = 1; id <= 3; ++id) conf_.voters.push_back(NodeId{id});
    for (uint64_t id = 1; id <= 3; ++id) {
      Host& h = hosts_[id];
      h.storage = std::make_unique<raft::MemoryStorage>();
      raft::Snapshot snapshot;
      snapshot.meta = raft::SnapshotMeta{LogIndex{1}, Term{1}, conf_};
      ASSERT_TRUE(h.storage->apply_snapshot(snapshot).ok());
      h.storage->set_hard_state(HardState{Term{1}, NodeId{}, LogIndex{1}});
      h.engine = std::make_unique<storage::MemKvEngine>();
      KvStateMachine machine(kGroup, h.engine.get());
      ASSERT_TRUE(machine.bootstrap(AppliedState{LogIndex{1}, Term{1}, conf_}).ok());
      start(id, /*incarnation=*/id * 100);
    }
  }

  void start(uint64_t id, uint64_t incarnation) {
    Host& h = hosts_[id];
    NodeOptions options;
    options.raft.id = NodeId{id};
    options.raft.group = kGroup;
    options.raft.storage = h.storage.get();
    options.raft.election_tick = 10;
    options.raft.random_seed = id;
    options.request_timeout_ticks = 20;
    options.request_timeout_ticks_per_mib = 10;
    options.incarnation = incarnation;
    options.pending_requests_max = 4;
    auto made = Node::create(options, h.engine.get());
    ASSERT_TRUE(made.ok()) << made.error().to_string();
    h.node = std::move(*made);
    h.persisting.reset();
  }

  // Carries out one node's output: messages queue, writes land in storage
  // at once unless `hold_writes`, replies are recorded.
  void drain(uint64_t id) {
    Host& h = hosts_[id];
    NodeOutput out = h.node->take_output();
    for (Envelope& e : out.messages) wire_.push_back({id, e.to.value(), std::move(e.message)});
    for (auto& [request, response] : out.responses) h.replies[request] = std::move(response);
    if (out.persist) h.persisting = std::move(out.persist);
    if (h.persisting && !hold_writes_.contains(id)) {
      PersistRequest write = std::move(*h.persisting);
      h.persisting.reset();
      if (write.snapshot) {
        raft::Snapshot snapshot;
        snapshot.meta = *write.snapshot;
        ASSERT_TRUE(h.storage->apply_snapshot(snapshot).ok());
      }
      if (!write.entries.empty()) {
        ASSERT_TRUE(h.storage->append(write.entries).ok());
      }
      if (write.hard_state) h.storage->set_hard_state(*write.hard_state);
      if (write.compact) {
        ASSERT_TRUE(h.storage->compact(write.compact->index).ok());
      }
      h.node->persisted();
      drain(id);
    }
  }

  // Delivers queued messages (dropping those `drop` matches) until none is left.
  void settle(int rounds = 200) {
    for (int r = 0; r < rounds; ++r) {
      for (auto& [id, h] : hosts_) drain(id);
      if (wire_.empty()) return;
      std::deque<Wire> batch = std::move(wire_);
      wire_.clear();
      for (Wire& w : batch) {
        if (cut_.contains(w.from) || cut_.contains(w.to)) continue;
        hosts_[w.to].node->receive(NodeId{w.from}, std::move(w.message));
      }
    }
  }

  // Delivers what is on the wire now, once, draining nobody.
  void deliver_once() {
    std::deque<Wire> batch = std::move(wire_);
    wire_.clear();
    for (Wire& w : batch) hosts_[w.to].node->receive(NodeId{w.from}, std::move(w.message));
  }

  void tick_all(int ticks) {
    for (int t = 0; t < ticks; ++t) {
      for (auto& [id, h] : hosts_) {
        if (!cut_.contains(id)) h.node->tick();
      }
      settle();
    }
  }

  uint64_t elect() {
    for (int t = 0; t < 100; ++t) {
      tick_all(1);
      for (auto& [id, h] : hosts_) {
        if (h.node->raw().raft().role() == raft::Role::kLeader) return id;
      }
    }
    ADD_FAILURE() << "no leader elected";
    return 0;
  }

  static Request write(uint64_t client, uint64_t sequence, CommandOp op, std::string key,
                       std::string value) {
    Request request;
    request.kind = Request::Kind::kWrite;
    request.command.client_id = client;
    request.command.sequence = sequence;
    request.command.op = op;
    request.command.key = std::move(key);
    request.command.value = std::move(value);
    return request;
  }
  static Request read(std::string key) {
    Request request;
    request.kind = Request::Kind::kRead;
    request.key = std::move(key);
    return request;
  }

  struct Wire {
    uint64_t from;
    uint64_t to;
    PeerMessage message;
  };
  ConfState conf_;
  std::map<uint64_t, Host> hosts_;
  std::deque<Wire> wire_;
  std::set<uint64_t> cut_;
  std::set<uint64_t> hold_writes_;
};

uint64_t other(uint64_t leader, uint64_t skip = 0) {
  for (uint64_t id = 1; id <= 3; ++id) {
    if (id != leader && id != skip) return id;
  }
  return 0;
}

TEST_F(NodeTest, AnyNodeServesWritesAndLinearizableReads) {
  const uint64_t leader = elect();
  const uint64_t follower = other(leader);
  hosts_[follower].node->submit(1, write(7, 1, CommandOp::kPut, "k", "v1"));
  settle();
  ASSERT_TRUE(hosts_[follower].replies.contains(1));
  EXPECT_EQ(hosts_[follower].replies[1].status, Response::Status::kOk);
  hosts_[leader].node->submit(2, write(7, 2, CommandOp::kIncrBy, "n", "5"));
  hosts_[follower].node->submit(3, read("k"));
  settle();
  tick_all(2);  // ReadIndex's heartbeat round
  EXPECT_EQ(hosts_[leader].replies[2].reply.integer, 5);
  ASSERT_TRUE(hosts_[follower].replies.contains(3));
  EXPECT_EQ(hosts_[follower].replies[3].value, std::optional<std::string>("v1"));
}

TEST_F(NodeTest, WithoutALeaderARequestIsHeldThenRefusedAsUnavailable) {
  // No election yet: nobody leads, nobody can be asked.
  hosts_[1].node->submit(1, write(7, 1, CommandOp::kPut, "k", "v"));
  cut_ = {2, 3};
  for (int t = 0; t < 25; ++t) {
    hosts_[1].node->tick();
    settle();
  }
  ASSERT_TRUE(hosts_[1].replies.contains(1));
  const Response& reply = hosts_[1].replies[1];
  EXPECT_EQ(reply.status, Response::Status::kUnavailable) << reply.reason;
  EXPECT_NE(reply.reason.find("no leader"), std::string::npos) << reply.reason;
}

TEST_F(NodeTest, ARequestThatLeftTheNodeTimesOutAsUnknown) {
  const uint64_t leader = elect();
  const uint64_t follower = other(leader);
  cut_ = {leader};  // the forward goes out and is lost
  hosts_[follower].node->submit(1, write(7, 1, CommandOp::kPut, "k", "v"));
  for (int t = 0; t < 25; ++t) {
    hosts_[follower].node->tick();
    settle();
  }
  ASSERT_TRUE(hosts_[follower].replies.contains(1));
  EXPECT_EQ(hosts_[follower].replies[1].status, Response::Status::kTimeout);
}

// A large write may wait longer: 20 ticks, plus 10 per MiB (fixture).
TEST_F(NodeTest, ALargeWriteGetsMoreTimeBeforeItsOutcomeIsUnknown) {
  const uint64_t leader = elect();
  const uint64_t follower = other(leader);
  cut_ = {leader};  // the forward goes out and is lost
  hosts_[follower].node->submit(1, write(7, 1, CommandOp::kPut, "big", std::string(2u << 20, 'v')));
  hosts_[follower].node->submit(2, write(8, 1, CommandOp::kPut, "small", "v"));
  for (int t = 0; t < 25; ++t) {
    hosts_[follower].node->tick();
    settle();
  }
  EXPECT_TRUE(hosts_[follower].replies.contains(2)) << "the small write's 20 ticks are up";
  EXPECT_FALSE(hosts_[follower].replies.contains(1)) << "a 2 MiB write has 40 ticks";
  for (int t = 0; t < 20; ++t) {
    hosts_[follower].node->tick();
    settle();
  }
  ASSERT_TRUE(hosts_[follower].replies.contains(1));
  EXPECT_EQ(hosts_[follower].replies[1].status, Response::Status::kTimeout);
}

TEST_F(NodeTest, BadRequestsGetAClearErrorAndChangeNothing) {
  const uint64_t leader = elect();
  Node& node = *hosts_[leader].node;
  node.submit(1, write(0, 1, CommandOp::kPut, "k", "v"));  // no session
  node.submit(2, write(7, 1, CommandOp::kPut, std::string(kMaxUserKeyBytes + 1, 'k'), "v"));
  settle();
  auto& replies = hosts_[leader].replies;
  EXPECT_EQ(replies[1].reply.kind, CommandReply::Kind::kError);
  EXPECT_NE(replies[1].reply.error.find("client session"), std::string::npos);
  EXPECT_EQ(replies[2].reply.kind, CommandReply::Kind::kError);
  EXPECT_NE(replies[2].reply.error.find("bytes; the limit is"), std::string::npos);
  EXPECT_EQ(node.pending_requests(), 0u);
  auto value = node.machine().get("k");
  ASSERT_TRUE(value.ok());
  EXPECT_FALSE(value->has_value());
}

TEST_F(NodeTest, TooManyOpenRequestsAreRefusedNotQueued) {
  const uint64_t leader = elect();
  cut_ = {1, 2, 3};  // nothing commits, so requests stay open
  Node& node = *hosts_[leader].node;
  for (uint64_t i = 1; i <= 5; ++i) node.submit(i, read("k"));
  for (auto& [id, h] : hosts_) drain(id);
  EXPECT_EQ(node.pending_requests(), 4u);
  ASSERT_TRUE(hosts_[leader].replies.contains(5));
  EXPECT_EQ(hosts_[leader].replies[5].status, Response::Status::kUnavailable);
  EXPECT_NE(hosts_[leader].replies[5].reason.find("requests open"), std::string::npos);
}

TEST_F(NodeTest, ARetryThroughAnotherNodeAppliesOnceAndGetsTheSameReply) {
  const uint64_t leader = elect();
  const uint64_t a = other(leader);
  const uint64_t b = other(leader, a);
  hosts_[a].node->submit(1, write(9, 1, CommandOp::kIncrBy, "n", "3"));
  settle();
  hosts_[b].node->submit(1, write(9, 1, CommandOp::kIncrBy, "n", "3"));  // the retry
  settle();
  EXPECT_EQ(hosts_[a].replies[1].reply.integer, 3);
  EXPECT_EQ(hosts_[b].replies[1].reply.integer, 3);
  auto value = hosts_[leader].node->machine().get("n");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(**value, "3");
}

TEST_F(NodeTest, AcknowledgementsWaitForTheWriteToBeDurable) {
  const uint64_t leader = elect();
  const uint64_t follower = other(leader);
  hold_writes_ = {follower};
  hosts_[leader].node->submit(1, write(7, 1, CommandOp::kPut, "k", "v"));
  settle();
  ASSERT_TRUE(hosts_[follower].persisting.has_value());
  // Nothing the follower sent while its write is pending acknowledges it.
  for (const Wire& w : wire_) {
    if (const auto* m = std::get_if<raft::Message>(&w.message)) {
      EXPECT_FALSE(w.from == follower && m->type == raft::MessageType::kAppResp);
    }
  }
  hold_writes_.clear();
  settle();
  tick_all(1);
  EXPECT_EQ(hosts_[leader].replies[1].status, Response::Status::kOk);
}

// Every write that reaches a leader in one turn (between two take_output()
// calls) is one proposal: one append per follower, carrying them all.
TEST_F(NodeTest, WritesOfOneTurnBecomeOneAppendPerFollower) {
  const uint64_t leader = elect();
  hold_writes_ = {leader};
  for (uint64_t i = 1; i <= 4; ++i) {
    hosts_[leader].node->submit(i, write(7, i, CommandOp::kPut, "k" + std::to_string(i), "v"));
  }
  drain(leader);
  std::map<uint64_t, std::vector<size_t>> appends;  // follower -> entries per append
  for (const Wire& w : wire_) {
    const auto* m = std::get_if<raft::Message>(&w.message);
    if (m != nullptr && m->type == raft::MessageType::kApp && !m->entries.empty()) {
      appends[w.to].push_back(m->entries.size());
    }
  }
  ASSERT_EQ(appends.size(), 2u);
  for (const auto& [follower, sizes] : appends) {
    EXPECT_EQ(sizes, std::vector<size_t>{4}) << "follower " << follower;
  }
  hold_writes_.clear();
  settle();
  tick_all(1);
  for (uint64_t i = 1; i <= 4; ++i) EXPECT_EQ(hosts_[leader].replies[i].status, Response::Status::kOk);
}

// Pipelining: a leader sends the appends of new writes while its own disk
// write of earlier ones is still running (Raft thesis 10.2.1).
TEST_F(NodeTest, ALeaderReplicatesNewWritesWithoutWaitingForItsOwnFsync) {
  const uint64_t leader = elect();
  hold_writes_ = {leader};
  hosts_[leader].node->submit(1, write(7, 1, CommandOp::kPut, "a", "1"));
  drain(leader);
  ASSERT_TRUE(hosts_[leader].persisting.has_value());
  const raft::LogIndex first = hosts_[leader].persisting->entries.back().index;
  wire_.clear();
  hosts_[leader].node->submit(2, write(7, 2, CommandOp::kPut, "b", "2"));
  drain(leader);
  ASSERT_TRUE(hosts_[leader].node->persist_in_flight()) << "the first write is still held";
  size_t carrying = 0;
  for (const Wire& w : wire_) {
    const auto* m = std::get_if<raft::Message>(&w.message);
    if (m != nullptr && m->type == raft::MessageType::kApp && !m->entries.empty() &&
        m->entries.back().index > first) {
      ++carrying;
    }
  }
  EXPECT_EQ(carrying, 2u) << "each follower gets the second write before the leader's fsync ends";
}

// Entries already durable here are applied as soon as they commit, while
// the next write (of newer entries) is still running: the client does not
// wait for an fsync that has nothing to do with its write.
TEST_F(NodeTest, ACommittedWriteIsAnsweredWithoutWaitingForTheNextFsync) {
  const uint64_t leader = elect();
  Node& node = *hosts_[leader].node;
  node.submit(1, write(7, 1, CommandOp::kPut, "a", "1"));
  drain(leader);  // proposed and durable on the leader
  ASSERT_FALSE(node.persist_in_flight());
  deliver_once();  // the appends reach the followers
  for (uint64_t id = 1; id <= 3; ++id) {
    if (id != leader) drain(id);  // they persist and acknowledge
  }
  node.submit(2, write(7, 2, CommandOp::kPut, "b", "2"));
  hold_writes_ = {leader};
  deliver_once();  // the acknowledgements commit write 1
  drain(leader);  // one Ready: write 1 committed, write 2 to persist
  ASSERT_TRUE(hosts_[leader].persisting.has_value()) << "write 2's fsync is held";
  ASSERT_TRUE(hosts_[leader].replies.contains(1));
  EXPECT_EQ(hosts_[leader].replies[1].status, Response::Status::kOk);
  EXPECT_FALSE(hosts_[leader].replies.contains(2));
}

// Found by the simulator (seed 1326 of a 60 s run): a follower restarted,
// its request handles began again at 1, and the leader's late reply to a
// request from its previous life matched a new request with the same handle:
// an INCR was answered with an old CAS's "0".
TEST_F(NodeTest, AReplyMeantForAnEarlierLifeOfTheNodeIsIgnored) {
  const uint64_t leader = elect();
  const uint64_t follower = other(leader);
  Node& node = *hosts_[follower].node;
  node.submit(1, write(5, 1, CommandOp::kCas, "k", "new"));
  drain(follower);
  ASSERT_EQ(wire_.size(), 1u);
  auto forward = std::get<ForwardRequest>(wire_.front().message);
  wire_.clear();
  start(follower, /*incarnation=*/999);  // a restart: handles begin again
  tick_all(3);  // the restarted node hears from the leader again
  ASSERT_EQ(hosts_[follower].node->leader(), NodeId{leader});
  hosts_[follower].node->submit(1, write(6, 1, CommandOp::kIncrBy, "n", "3"));
  drain(follower);
  ASSERT_EQ(wire_.size(), 1u);
  const auto& resent = std::get<ForwardRequest>(wire_.front().message);
  ASSERT_EQ(resent.id, forward.id) << "the test needs the new request to reuse the handle";
  wire_.clear();  // hold the new forward back
  // The leader answers the old request, addressed to the old incarnation.
  Response stale;
  stale.reply.kind = CommandReply::Kind::kInteger;
  stale.reply.integer = 0;
  hosts_[follower].node->receive(NodeId{leader},
                                 ForwardReply{forward.incarnation, forward.id, stale});
  drain(follower);
  EXPECT_FALSE(hosts_[follower].replies.contains(1))
      << "a reply to the previous life's request reached the new one";
  EXPECT_EQ(hosts_[follower].node->pending_requests(), 1u);
}

}  // namespace
}  // namespace synod::node

namespace synod::node {
namespace {

// Found in review: the engine installed (and synced) a snapshot at 400 but
// the crash came before the WAL's install marker, so the log ends at 1. The
// node must not ask to compact the log to the engine's index, past what
// Raft has applied: entries Raft still needs would be dropped.
TEST(NodeCompaction, NeverPastWhatRaftHasAppliedWhenTheEngineIsAhead) {
  ConfState conf;
  for (uint64_t id = 1; id <= 3; ++id) conf.voters.push_back(NodeId{id});
  raft::MemoryStorage log;
  raft::Snapshot snapshot;
  snapshot.meta = raft::SnapshotMeta{LogIndex{1}, Term{1}, conf};
  ASSERT_TRUE(log.apply_snapshot(snapshot).ok());
  log.set_hard_state(HardState{Term{1}, NodeId{}, LogIndex{1}});
  storage::MemKvEngine engine;
  KvStateMachine machine(kGroup, &engine);
  ASSERT_TRUE(machine.bootstrap(AppliedState{LogIndex{400}, Term{2}, conf}).ok());
  NodeOptions options;
  options.raft.id = NodeId{1};
  options.raft.group = kGroup;
  options.raft.storage = &log;
  options.raft.election_tick = 10;
  options.compact_every_entries = 300;
  auto made = Node::create(options, &engine);
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  Node& node = **made;
  for (int t = 0; t < 50; ++t) {
    node.tick();
    for (NodeOutput out = node.take_output(); out.persist; out = node.take_output()) {
      if (out.persist->compact) {
        EXPECT_LE(out.persist->compact->index, node.raw().raft().log().applied())
            << "compaction asked past Raft's applied index";
      }
      if (!out.persist->entries.empty()) {
        ASSERT_TRUE(log.append(out.persist->entries).ok());
      }
      if (out.persist->hard_state) log.set_hard_state(*out.persist->hard_state);
      node.persisted();
    }
  }
}

}  // namespace
}  // namespace synod::node
