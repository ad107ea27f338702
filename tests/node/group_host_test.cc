// GroupHost, the pure multi-group node, in a small in-memory cluster: every
// host's output is carried out at once (persists applied to in-memory logs,
// messages delivered unless a test drops them), time advances in 10 ms
// steps and every host ticks every 50 ms.
#include "node/group_host.h"

#include <gtest/gtest.h>

#include <deque>

#include "raft/memory_storage.h"
#include "raft/raft.h"
#include "storage/mem_kv_engine.h"

namespace synod::node {
namespace {

// Each group's log in memory; a snapshot is what the group's state machine
// makes (the source GroupHost sets), as with the WAL's logs.
class MemLog final : public raft::Storage {
 public:
  raft::MemoryStorage mem;
  std::function<base::Result<raft::Snapshot>()> source;

  base::Result<raft::InitialState> initial_state() const override { return mem.initial_state(); }
  base::Result<std::vector<raft::Entry>> entries(raft::LogIndex low, raft::LogIndex high,
                                                 uint64_t max_bytes) const override {
    return mem.entries(low, high, max_bytes);
  }
  base::Result<raft::Term> term(raft::LogIndex index) const override { return mem.term(index); }
  raft::LogIndex first_index() const override { return mem.first_index(); }
  raft::LogIndex last_index() const override { return mem.last_index(); }
  base::Result<raft::Snapshot> snapshot() const override {
    return source ? source() : mem.snapshot();
  }
};

class MemLogs final : public GroupLogs {
 public:
  bool has(raft::GroupId group) const override { return logs_.contains(group); }
  std::vector<raft::GroupId> groups() const override {
    std::vector<raft::GroupId> out;
    for (const auto& [id, log] : logs_) out.push_back(id);
    return out;
  }
  raft::Storage& storage(raft::GroupId group) override { return log(group); }
  base::Status persist_now(
      const std::vector<std::pair<raft::GroupId, PersistRequest>>& requests) override {
    for (const auto& [group, request] : requests) {
      if (auto s = apply(group, request); !s) return s;
    }
    return {};
  }
  void set_snapshot_source(raft::GroupId group,
                           std::function<base::Result<raft::Snapshot>()> source) override {
    log(group).source = std::move(source);
  }

  base::Status apply(raft::GroupId group, const PersistRequest& request) {
    if (request.snapshot) {
      if (request.snapshot->index <= log(group).mem.first_index() - 1) {
        // Cut back to where it already starts (a replica removed): a new
        // log; the old one stays alive for whoever still points at it.
        auto fresh = std::make_unique<MemLog>();
        fresh->source = log(group).source;
        retired_.push_back(std::move(logs_[group]));
        logs_[group] = std::move(fresh);
      }
      if (auto s = log(group).mem.apply_snapshot(raft::Snapshot{*request.snapshot, {}}); !s) return s;
    }
    if (!request.entries.empty()) {
      if (auto s = log(group).mem.append(request.entries); !s) return s;
    }
    if (request.hard_state) log(group).mem.set_hard_state(*request.hard_state);
    if (request.compact) (void)log(group).mem.compact(request.compact->index);
    return {};
  }

 private:
  MemLog& log(raft::GroupId group) {
    auto& slot = logs_[group];
    if (!slot) slot = std::make_unique<MemLog>();
    return *slot;
  }
  std::map<raft::GroupId, std::unique_ptr<MemLog>> logs_;
  std::vector<std::unique_ptr<MemLog>> retired_;
};

struct Wire {
  uint64_t from = 0, to = 0;
  PeerMessage message;
};

class TestCluster {
 public:
  explicit TestCluster(int nodes) {
    std::vector<uint64_t> members;
    for (int i = 1; i <= nodes; ++i) members.push_back(static_cast<uint64_t>(i));
    for (uint64_t id : members) {
      GroupHostOptions o;
      o.node_id = id;
      o.members = members;
      o.default_partitions = 2;
      o.node.raft.election_tick = 10;
      o.node.raft.heartbeat_tick = 1;
      o.node.request_timeout_ticks = 60;
      o.node.compact_every_entries = 0;
      o.tick_ms = 50;
      o.request_timeout_ms = 3000;
      o.router = RouterOptions{.lease_ms = 2000, .renew_ms = 500};
      o.random = [this] { return next_random(); };
      Member& m = members_[id];
      m.engine = std::make_unique<storage::MemKvEngine>();
      EXPECT_TRUE(GroupHost::bootstrap(o, m.engine.get(), &m.logs).ok());
      auto host = GroupHost::open(o, m.engine.get(), &m.logs, now_);
      EXPECT_TRUE(host.ok());
      m.host = std::move(*host);
    }
  }

  // Drops a message when it says so.
  std::function<bool(const Wire&)> drop = [](const Wire&) { return false; };

  void advance(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 10) {
      now_ += 10;
      if (now_ % 50 == 0) {
        for (auto& [id, m] : members_) m.host->tick(now_);
      }
      pump();
    }
  }

  // Runs until every host is quiet.
  void pump() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      for (auto& [id, m] : members_) {
        GroupHostOutput out = m.host->take_output();
        for (auto& [group, request] : out.persists) {
          ASSERT_TRUE(m.logs.apply(raft::GroupId{group}, request).ok());
          m.host->persisted(group);
          any = true;
        }
        for (Envelope& e : out.messages) wire_.push_back(Wire{id, e.to.value(), std::move(e.message)});
        for (auto& [request, response] : out.responses) m.answers[request] = std::move(response);
        for (std::string& line : out.log) m.log.push_back(std::move(line));
        ASSERT_FALSE(m.host->failed()) << m.host->failed()->to_string();
      }
      while (!wire_.empty()) {
        Wire w = std::move(wire_.front());
        wire_.pop_front();
        any = true;
        if (drop(w)) continue;
        members_.at(w.to).host->receive(w.from, std::move(w.message), now_);
      }
      if (!any) return;
    }
  }

  GroupHost& host(uint64_t id) { return *members_.at(id).host; }
  // Whether node `id` logged a line containing `text`.
  bool logged(uint64_t id, const std::string& text) const {
    for (const std::string& line : members_.at(id).log) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  // Submits and waits (up to `ms`) for the answer.
  std::optional<Response> run(uint64_t node, Request request, uint64_t ms = 5000) {
    const uint64_t id = next_request_++;
    host(node).submit(id, std::move(request), now_);
    return wait(node, id, ms);
  }
  std::optional<Response> run_meta(uint64_t node, Command command, uint64_t ms = 5000) {
    const uint64_t id = next_request_++;
    host(node).submit_meta(id, std::move(command));
    return wait(node, id, ms);
  }

 private:
  struct Member {
    std::unique_ptr<storage::MemKvEngine> engine;
    MemLogs logs;
    std::unique_ptr<GroupHost> host;
    std::map<uint64_t, Response> answers;
    std::vector<std::string> log;
  };

  std::optional<Response> wait(uint64_t node, uint64_t id, uint64_t ms) {
    auto& answers = members_.at(node).answers;
    for (uint64_t waited = 0; waited <= ms; waited += 10) {
      pump();
      if (auto it = answers.find(id); it != answers.end()) {
        Response response = std::move(it->second);
        answers.erase(it);
        return response;
      }
      advance(10);
    }
    return std::nullopt;
  }

  uint64_t next_random() {
    random_ += 0x9e3779b97f4a7c15ULL;
    uint64_t z = random_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::map<uint64_t, Member> members_;
  std::deque<Wire> wire_;
  uint64_t now_ = 0;
  uint64_t random_ = 42;
  uint64_t next_request_ = 1;
};

Request write(const std::string& key, const std::string& value, uint64_t sequence) {
  Request r;
  r.kind = Request::Kind::kWrite;
  r.command.client_id = 77;
  r.command.sequence = sequence;
  r.command.op = CommandOp::kPut;
  r.command.key = key;
  r.command.value = value;
  return r;
}

Request read(const std::string& key) {
  Request r;
  r.kind = Request::Kind::kRead;
  r.key = key;
  return r;
}

Command create(const std::string& name, uint32_t partitions, std::vector<uint64_t> replicas) {
  placement::Keyspace k;
  k.name = name;
  k.partitions = partitions;
  k.replicas = static_cast<uint32_t>(replicas.size());
  placement::Placement where;
  where.replicas.assign(partitions, replicas);
  Command c;
  c.op = CommandOp::kCreateKeyspace;
  c.key = name;
  c.value = placement::encode_keyspace(k);
  c.expected = placement::encode_placement(where);
  return c;
}

bool is_raft_append_to(const Wire& w, uint64_t to, uint64_t group) {
  const auto* m = std::get_if<raft::Message>(&w.message);
  return m != nullptr && w.to == to && group_of(w.message) == group &&
         (m->type == raft::MessageType::kApp || m->type == raft::MessageType::kSnap);
}

TEST(GroupHost, KeyspacesAreCreatedServedAndDroppedAcrossThreeNodes) {
  TestCluster cluster(3);
  cluster.advance(3000);
  auto created = cluster.run_meta(1, create("app", 2, {1, 2}));
  ASSERT_TRUE(created && created->status == Response::Status::kOk);
  EXPECT_EQ(created->reply.integer, static_cast<int64_t>(kFirstKeyspaceGroup));
  // Refused while creating, served once active (about two leases later).
  auto early = cluster.run(3, write("app:1", "x", 1));
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, Response::Status::kUnavailable);
  EXPECT_NE(early->reason.find("being created"), std::string::npos) << early->reason;
  cluster.advance(5000);
  EXPECT_EQ(cluster.host(1).router().catalog().find("app")->state, placement::KeyspaceState::kActive);
  // Node 3 holds no replica of app: it forwards.
  EXPECT_EQ(cluster.host(3).group(kFirstKeyspaceGroup), nullptr);
  ASSERT_NE(cluster.host(2).group(kFirstKeyspaceGroup), nullptr);
  auto put = cluster.run(3, write("app:1", "one", 2));
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, Response::Status::kOk) << put->reason;
  for (uint64_t node : {1, 2, 3}) {
    auto got = cluster.run(node, read("app:1"));
    ASSERT_TRUE(got && got->status == Response::Status::kOk) << node;
    EXPECT_EQ(got->value, std::optional<std::string>("one")) << "through node " << node;
  }
  // Dropped: refused while dropping, then gone everywhere, and the key
  // belongs to default again (where it was never written).
  Command drop;
  drop.op = CommandOp::kDropKeyspace;
  drop.key = "app";
  auto dropped = cluster.run_meta(2, drop);
  ASSERT_TRUE(dropped && dropped->status == Response::Status::kOk);
  cluster.advance(5000);
  for (uint64_t node : {1, 2, 3}) {
    EXPECT_EQ(cluster.host(node).router().catalog().find("app"), nullptr) << node;
    EXPECT_EQ(cluster.host(node).group(kFirstKeyspaceGroup), nullptr) << node;
  }
  auto after = cluster.run(1, read("app:1"));
  ASSERT_TRUE(after && after->status == Response::Status::kOk);
  EXPECT_FALSE(after->value.has_value());
}

// The lease's point: a node whose meta replica has not applied a creation
// must not route that keyspace's keys by its old catalog, even though the
// meta leader answers its confirmation read (a follower forwards reads).
TEST(GroupHost, ANodeWhoseMetaReplicaLagsHoldsKeysItCannotRouteYet) {
  TestCluster cluster(3);
  cluster.advance(3000);
  // Node 3 hears the meta leader's heartbeats but gets none of its entries.
  cluster.drop = [](const Wire& w) { return is_raft_append_to(w, 3, kMetaGroupId); };
  auto created = cluster.run_meta(1, create("late", 2, {1, 2, 3}));
  ASSERT_TRUE(created && created->status == Response::Status::kOk);
  cluster.advance(5000);
  auto put = cluster.run(1, write("late:x", "written", 1));
  ASSERT_TRUE(put && put->status == Response::Status::kOk) << (put ? put->reason : "no answer");
  auto got = cluster.run(3, read("late:x"), 4000);
  ASSERT_TRUE(got);
  EXPECT_NE(got->status, Response::Status::kOk)
      << "node 3 answered from the default keyspace: "
      << (got->value ? *got->value : std::string("(absent)"));
  // Once its meta replica catches up it serves the key.
  cluster.drop = [](const Wire&) { return false; };
  cluster.advance(2000);
  got = cluster.run(3, read("late:x"));
  ASSERT_TRUE(got && got->status == Response::Status::kOk) << (got ? got->reason : "no answer");
  EXPECT_EQ(got->value, std::optional<std::string>("written"));
}

Command set_placement(const std::string& name, std::vector<std::vector<uint64_t>> replicas) {
  placement::Placement where;
  where.replicas = std::move(replicas);
  Command c;
  c.op = CommandOp::kSetPlacement;
  c.key = name;
  c.value = placement::encode_placement(where);
  return c;
}

std::vector<uint64_t> voters_of(const Node& node) {
  std::vector<uint64_t> out;
  for (raft::NodeId id : node.raw().raft().tracker().config.to_conf_state().voters) {
    out.push_back(id.value());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A replica moves by joint consensus: the new node joins as a learner, gets
// the data, becomes a voter as the old one leaves; the old one's replica is
// removed once it has applied its removal. The group's leader is moved off
// too (it hands leadership on first). Reads and writes go on throughout.
TEST(GroupHost, ReplicasMoveToTheTargetPlacementLeaderIncluded) {
  TestCluster cluster(4);
  cluster.advance(3000);
  auto created = cluster.run_meta(1, create("app", 1, {1, 2, 3}));
  ASSERT_TRUE(created && created->status == Response::Status::kOk);
  cluster.advance(5000);
  const uint64_t group = kFirstKeyspaceGroup;
  ASSERT_EQ(cluster.host(4).group(group), nullptr);
  uint64_t sequence = 0;
  for (int i = 0; i < 20; ++i) {
    auto put = cluster.run(1 + i % 4, write("app:k" + std::to_string(i), "v" + std::to_string(i), ++sequence));
    ASSERT_TRUE(put && put->status == Response::Status::kOk) << i;
  }
  // Move the leader's replica to node 4.
  const uint64_t leader = cluster.host(1).leader_of(group);
  ASSERT_NE(leader, 0u);
  std::vector<uint64_t> target = {1, 2, 3};
  std::replace(target.begin(), target.end(), leader, uint64_t{4});
  auto moved = cluster.run_meta(2, set_placement("app", {target}));
  ASSERT_TRUE(moved && moved->status == Response::Status::kOk);
  ASSERT_NE(moved->reply.kind, CommandReply::Kind::kError) << moved->reply.error;
  // The move shows on its driver, the group's leader, until it is done.
  size_t shown = 0;
  for (uint64_t node : {1, 2, 3, 4}) {
    for (const MoveStatus& m : cluster.host(node).moves()) {
      EXPECT_EQ(m.group, group);
      EXPECT_EQ(node, leader) << "only the group's leader drives a move";
      ++shown;
    }
  }
  EXPECT_EQ(shown, 1u);
  for (int i = 20; i < 40; ++i) {  // writes while it moves
    auto put = cluster.run(1 + i % 4, write("app:k" + std::to_string(i), "v" + std::to_string(i), ++sequence));
    ASSERT_TRUE(put && put->status == Response::Status::kOk) << i << " " << (put ? put->reason : "");
    cluster.advance(100);
  }
  cluster.advance(5000);
  std::sort(target.begin(), target.end());
  for (uint64_t node : target) {
    const Node* replica = cluster.host(node).group(group);
    ASSERT_NE(replica, nullptr) << "node " << node;
    EXPECT_EQ(voters_of(*replica), target) << "node " << node;
    EXPECT_TRUE(replica->raw().raft().tracker().config.learners.empty());
  }
  EXPECT_EQ(cluster.host(leader).group(group), nullptr) << "the old replica is removed";
  for (uint64_t node : {1, 2, 3, 4}) EXPECT_TRUE(cluster.host(node).moves().empty()) << node;
  const Node& newcomer = *cluster.host(4).group(group);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(*newcomer.machine().get("app:k" + std::to_string(i)), "v" + std::to_string(i)) << i;
  }
  for (uint64_t node : {1, 2, 3, 4}) {
    auto got = cluster.run(node, read("app:k7"));
    ASSERT_TRUE(got && got->status == Response::Status::kOk) << node;
    EXPECT_EQ(got->value, std::optional<std::string>("v7"));
  }
}

// A move onto a node that is down: its learner makes no progress and is
// taken out after the stall limit (it does not stay a member of the group),
// and once the node is back the move completes.
TEST(GroupHost, AMoveOntoADownNodeWaitsWithoutKeepingADeadLearner) {
  TestCluster cluster(4);
  cluster.advance(3000);
  ASSERT_TRUE(cluster.run_meta(1, create("app", 1, {1, 2, 3})));
  cluster.advance(5000);
  const uint64_t group = kFirstKeyspaceGroup;
  auto put = cluster.run(1, write("app:k", "v", 1));
  ASSERT_TRUE(put && put->status == Response::Status::kOk);
  const uint64_t leader = cluster.host(1).leader_of(group);
  std::vector<uint64_t> target = {1, 2, 3};
  const uint64_t leaving = leader == 3 ? 2 : 3;  // not the leader's replica
  std::replace(target.begin(), target.end(), leaving, uint64_t{4});
  // Node 4 is cut off (nothing reaches it, nothing leaves it).
  cluster.drop = [](const Wire& w) { return w.to == 4 || w.from == 4; };
  auto moved = cluster.run_meta(1, set_placement("app", {target}));
  ASSERT_TRUE(moved && moved->status == Response::Status::kOk);
  cluster.advance(5000);
  auto learners = [&] {
    return cluster.host(leader).group(group)->raw().raft().tracker().config.learners;
  };
  EXPECT_TRUE(learners().contains(raft::NodeId{4})) << "added as a learner";
  EXPECT_FALSE(cluster.logged(leader, "learner 4 made no progress"));
  cluster.advance(31000);
  EXPECT_TRUE(cluster.logged(leader, "learner 4 made no progress"))
      << "a learner that never progresses is taken out (and added again later)";
  // The partition kept serving with its three voters.
  auto got = cluster.run(2, read("app:k"));
  ASSERT_TRUE(got && got->status == Response::Status::kOk);
  EXPECT_EQ(got->value, std::optional<std::string>("v"));
  // Node 4 comes back: the move completes.
  cluster.drop = [](const Wire&) { return false; };
  cluster.advance(10000);
  std::sort(target.begin(), target.end());
  for (uint64_t node : target) {
    ASSERT_NE(cluster.host(node).group(group), nullptr) << node;
    EXPECT_EQ(voters_of(*cluster.host(node).group(group)), target) << node;
  }
  EXPECT_EQ(cluster.host(leaving).group(group), nullptr);
}

}  // namespace
}  // namespace synod::node
