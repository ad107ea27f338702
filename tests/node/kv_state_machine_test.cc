// KvStateMachine's read path on apply: the remembered dedupe records must
// never disagree with the engine (a snapshot replaces them), and a plain SET
// reads nothing it does not need.
#include <gtest/gtest.h>

#include "node/kv_state_machine.h"
#include "placement/keyspace.h"
#include "placement/placement.h"
#include "storage/mem_kv_engine.h"
#include "support/commands.h"

namespace synod::node {
namespace {

using raft::ConfState;
using raft::Entry;
using raft::GroupId;
using raft::LogIndex;
using raft::NodeId;
using raft::Term;

constexpr GroupId kGroup{3};

using test_support::kv_command;
using test_support::kv_entry;

ConfState three() {
  ConfState conf;
  for (uint64_t id = 1; id <= 3; ++id) conf.voters.push_back(NodeId{id});
  return conf;
}

// A MemKvEngine that counts its point reads.
class CountingEngine : public KvEngine {
 public:
  base::Result<std::optional<std::string>> get(std::string_view key) const override {
    ++gets;
    return inner_.get(key);
  }
  base::Status put(std::string_view key, std::string_view value, WriteOptions options) override {
    return inner_.put(key, value, options);
  }
  base::Status del(std::string_view key, WriteOptions options) override {
    return inner_.del(key, options);
  }
  base::Status write(const WriteBatch& batch, WriteOptions options) override {
    return inner_.write(batch, options);
  }
  std::unique_ptr<KvIterator> iterate() const override { return inner_.iterate(); }
  std::unique_ptr<KvSnapshot> snapshot() const override { return inner_.snapshot(); }
  base::Status sync() override { return inner_.sync(); }

  mutable int gets = 0;

 private:
  storage::MemKvEngine inner_;
};

TEST(KvStateMachine, ADedupeRecordFromAnInstalledSnapshotReplacesTheOneItRemembered) {
  storage::MemKvEngine behind_engine, ahead_engine;
  KvStateMachine behind(kGroup, &behind_engine), ahead(kGroup, &ahead_engine);
  for (KvStateMachine* m : {&behind, &ahead}) {
    ASSERT_TRUE(m->bootstrap(AppliedState{LogIndex{1}, Term{1}, three()}).ok());
  }
  const Entry first = kv_entry(2, kv_command(7, 1, CommandOp::kIncrBy, "n", "1"));
  const Entry second = kv_entry(3, kv_command(7, 2, CommandOp::kIncrBy, "n", "1"));
  // `behind` applied (and remembers) client 7's request 1 only; `ahead`
  // applied requests 1 and 2.
  ASSERT_TRUE(behind.apply({first}, nullptr).ok());
  ASSERT_TRUE(ahead.apply({first, second}, nullptr).ok());
  auto snapshot = ahead.snapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.error().to_string();
  ASSERT_TRUE(behind.install(*snapshot).ok());
  // A retry of request 2 commits again: it must be answered from the
  // snapshot's record, not applied a second time.
  auto applied = behind.apply({kv_entry(4, kv_command(7, 2, CommandOp::kIncrBy, "n", "1"))}, nullptr);
  ASSERT_TRUE(applied.ok()) << applied.error().to_string();
  ASSERT_EQ(applied->size(), 1u);
  EXPECT_TRUE((*applied)[0].deduplicated);
  ASSERT_TRUE((*applied)[0].reply.has_value());
  EXPECT_EQ((*applied)[0].reply->integer, 2);
  auto value = behind.get("n");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(**value, "2");
}

TEST(KvStateMachine, APlainSetReadsOnlyTheKeysExpiryWhileConditionalWritesSeeTheValue) {
  CountingEngine engine;
  KvStateMachine machine(kGroup, &engine);
  ASSERT_TRUE(machine.bootstrap(AppliedState{LogIndex{1}, Term{1}, three()}).ok());
  ASSERT_TRUE(machine.apply({kv_entry(2, kv_command(7, 1, CommandOp::kSet, "k", "one"))}, nullptr).ok());

  engine.gets = 0;  // the session is remembered now
  ASSERT_TRUE(machine.apply({kv_entry(3, kv_command(7, 2, CommandOp::kSet, "k", "two"))}, nullptr).ok());
  EXPECT_EQ(engine.gets, 1) << "a plain SET should read only the key's expiry record";

  Command nx = kv_command(7, 3, CommandOp::kSet, "k", "three");
  nx.flags = kSetIfAbsent;
  Command get_old = kv_command(7, 4, CommandOp::kSet, "k", "four");
  get_old.flags = kSetReturnOld;
  auto applied = machine.apply({kv_entry(4, nx), kv_entry(5, get_old)}, nullptr);
  ASSERT_TRUE(applied.ok()) << applied.error().to_string();
  EXPECT_EQ((*applied)[0].reply->integer, 0) << "NX must see the existing value";
  EXPECT_EQ((*applied)[1].reply->value, std::optional<std::string>("two"));
  EXPECT_EQ(**machine.get("k"), "four");
}

}  // namespace
}  // namespace synod::node

namespace synod::node {
namespace {

Command create_keyspace(uint64_t sequence, const std::string& name, uint32_t partitions) {
  placement::Keyspace keyspace;
  keyspace.name = name;
  keyspace.partitions = partitions;
  placement::Placement where;
  where.replicas.assign(partitions, std::vector<uint64_t>{1, 2, 3});
  Command c = test_support::kv_command(9, sequence, CommandOp::kCreateKeyspace, name,
                                       placement::encode_keyspace(keyspace));
  c.expected = placement::encode_placement(where);
  return c;
}

// The meta group's catalog: a created keyspace is handed a fresh range of
// Raft groups in the same batch as its record and its placement; a second
// create of the name, or a drop of default or of an unknown name, is refused
// and changes nothing.
TEST(KvStateMachine, KeyspacesAreCreatedWithTheirOwnGroupsAndDroppedOnce) {
  storage::MemKvEngine engine;
  KvStateMachine meta(raft::GroupId{1}, &engine);
  ASSERT_TRUE(meta.bootstrap(AppliedState{LogIndex{1}, Term{1}, three()}).ok());
  auto applied = meta.apply({test_support::kv_entry(2, create_keyspace(1, "app", 8)),
                             test_support::kv_entry(3, create_keyspace(2, "app:users", 16)),
                             test_support::kv_entry(4, create_keyspace(3, "app", 4)),
                             test_support::kv_entry(5, create_keyspace(4, "default", 4))},
                            nullptr);
  ASSERT_TRUE(applied.ok()) << applied.error().to_string();
  EXPECT_EQ((*applied)[0].reply->integer, static_cast<int64_t>(kFirstKeyspaceGroup));
  EXPECT_EQ((*applied)[1].reply->integer, static_cast<int64_t>(kFirstKeyspaceGroup + 8));
  EXPECT_NE((*applied)[2].reply->error.find("already exists"), std::string::npos);
  EXPECT_NE((*applied)[3].reply->error.find("already exists"), std::string::npos);

  auto records = meta.scan(kKeyspaceRecordPrefix, 100);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].first, "keyspace/app");
  auto app = placement::decode_keyspace((*records)[0].second);
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->partitions, 8u);
  EXPECT_EQ(app->first_group, kFirstKeyspaceGroup);
  auto where = meta.scan(kPlacementRecordPrefix, 100);
  ASSERT_TRUE(where.ok());
  EXPECT_EQ(where->size(), 2u);

  EXPECT_EQ(app->state, placement::KeyspaceState::kCreating);

  // creating -> active -> dropping -> gone, each step allowed once.
  auto step = [&](uint64_t index, CommandOp op, const std::string& name) {
    return test_support::kv_entry(index, test_support::kv_command(9, index, op, name));
  };
  applied = meta.apply({step(6, CommandOp::kForgetKeyspace, "app"),
                        step(7, CommandOp::kActivateKeyspace, "app"),
                        step(8, CommandOp::kActivateKeyspace, "app"),
                        step(9, CommandOp::kDropKeyspace, "app"),
                        step(10, CommandOp::kDropKeyspace, "app"),
                        step(11, CommandOp::kActivateKeyspace, "app"),
                        step(12, CommandOp::kForgetKeyspace, "app"),
                        step(13, CommandOp::kDropKeyspace, "app"),
                        step(14, CommandOp::kDropKeyspace, "default"),
                        test_support::kv_entry(15, create_keyspace(15, "app", 4))},
                       nullptr);
  ASSERT_TRUE(applied.ok()) << applied.error().to_string();
  auto error_of = [&](size_t i) { return (*applied)[i].reply->error; };
  EXPECT_NE(error_of(0).find("is creating"), std::string::npos) << "forget before drop";
  EXPECT_EQ((*applied)[1].reply->integer, 1);
  EXPECT_NE(error_of(2).find("is active"), std::string::npos);
  EXPECT_EQ((*applied)[3].reply->integer, 1);
  EXPECT_NE(error_of(4).find("is dropping"), std::string::npos);
  EXPECT_NE(error_of(5).find("is dropping"), std::string::npos);
  EXPECT_EQ((*applied)[6].reply->integer, 1);
  EXPECT_NE(error_of(7).find("no keyspace"), std::string::npos);
  EXPECT_NE(error_of(8).find("cannot be dropped"), std::string::npos);
  // Created again, it gets new groups: a dropped keyspace's groups are never reused.
  EXPECT_EQ((*applied)[9].reply->integer, static_cast<int64_t>(kFirstKeyspaceGroup + 24));
  records = meta.scan(kKeyspaceRecordPrefix, 100);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 2u) << "app (again) and app:users";

  // A step naming other groups than the keyspace's is refused: it was meant
  // for an earlier keyspace of that name.
  Command stale = test_support::kv_command(9, 16, CommandOp::kActivateKeyspace, "app");
  stale.expected = std::to_string(kFirstKeyspaceGroup);  // the first "app"'s groups
  Command current = test_support::kv_command(9, 17, CommandOp::kActivateKeyspace, "app");
  current.expected = std::to_string(kFirstKeyspaceGroup + 24);
  applied = meta.apply({test_support::kv_entry(16, stale), test_support::kv_entry(17, current)},
                       nullptr);
  ASSERT_TRUE(applied.ok());
  EXPECT_NE((*applied)[0].reply->error.find("not the one with groups from"), std::string::npos);
  EXPECT_EQ((*applied)[1].reply->integer, 1);

  // Only the meta group keeps a catalog.
  KvStateMachine data(raft::GroupId{2}, &engine);
  ASSERT_TRUE(data.bootstrap(AppliedState{LogIndex{1}, Term{1}, three()}).ok());
  applied = data.apply({test_support::kv_entry(2, create_keyspace(1, "other", 4)),
                        step(3, CommandOp::kActivateKeyspace, "app"),
                        step(4, CommandOp::kDropKeyspace, "app"),
                        step(5, CommandOp::kForgetKeyspace, "app")},
                       nullptr);
  ASSERT_TRUE(applied.ok());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NE((*applied)[i].reply->error.find("belong to the meta group"), std::string::npos) << i;
  }
  EXPECT_TRUE(data.scan("", 10)->empty());
}

TEST(KvStateMachine, AKeyspaceWithoutAPlacementForEachPartitionIsRefused) {
  storage::MemKvEngine engine;
  KvStateMachine meta(raft::GroupId{1}, &engine);
  ASSERT_TRUE(meta.bootstrap(AppliedState{LogIndex{1}, Term{1}, three()}).ok());
  Command c = create_keyspace(1, "app", 8);
  c.expected = placement::encode_placement(placement::Placement{{{1, 2, 3}}});  // 1 of 8
  Command bad_name = create_keyspace(2, "Bad Name", 8);
  auto applied = meta.apply({test_support::kv_entry(2, c), test_support::kv_entry(3, bad_name)}, nullptr);
  ASSERT_TRUE(applied.ok());
  EXPECT_NE((*applied)[0].reply->error.find("placement for each"), std::string::npos);
  EXPECT_NE((*applied)[1].reply->error.find("a name is"), std::string::npos);
  auto records = meta.scan(kKeyspaceRecordPrefix, 100);
  ASSERT_TRUE(records.ok());
  EXPECT_TRUE(records->empty());
}

}  // namespace
}  // namespace synod::node

namespace synod::node {
namespace {

// A dedupe record holding a large reply is not kept in memory, and the
// smaller record it replaces must not be answered from memory either.
TEST(KvStateMachine, ARetryOfALargeReplyIsAnsweredFromTheEngineNotAnOlderRememberedRecord) {
  storage::MemKvEngine engine;
  KvStateMachine machine(kGroup, &engine);
  ASSERT_TRUE(machine.bootstrap(AppliedState{LogIndex{1}, Term{1}, three()}).ok());
  const std::string big(100'000, 'b');
  auto applied = machine.apply({kv_entry(2, kv_command(7, 1, CommandOp::kSet, "k", big)),
                                kv_entry(3, kv_command(7, 2, CommandOp::kGetDel, "k"))},
                               nullptr);
  ASSERT_TRUE(applied.ok());
  ASSERT_EQ((*applied)[1].reply->value, std::optional<std::string>(big));
  // The retry of request 2 commits again.
  applied = machine.apply({kv_entry(4, kv_command(7, 2, CommandOp::kGetDel, "k"))}, nullptr);
  ASSERT_TRUE(applied.ok());
  EXPECT_TRUE((*applied)[0].deduplicated);
  EXPECT_EQ((*applied)[0].reply->value, std::optional<std::string>(big));
}

}  // namespace
}  // namespace synod::node

namespace synod::node {
namespace {

// A dropped keyspace's replica takes everything of its group with it, and
// nothing of a neighbouring group.
TEST(KvStateMachine, RemovingAReplicaDeletesItsGroupOnly) {
  storage::MemKvEngine engine;
  raft::ConfState conf;
  conf.voters = {NodeId{1}};
  KvStateMachine gone(GroupId{7}, &engine);
  KvStateMachine kept(GroupId{8}, &engine);
  for (KvStateMachine* machine : {&gone, &kept}) {
    ASSERT_TRUE(machine->bootstrap(AppliedState{LogIndex{1}, Term{1}, conf}).ok());
    Command put = kv_command(5, 1, CommandOp::kSet, "k", "v");
    put.expire_at_ms = 1u << 30;
    ASSERT_TRUE(machine->apply({kv_entry(2, put)}, nullptr).ok());
  }
  ASSERT_TRUE(gone.remove_all().ok());
  // Nothing of group 7 is left in the engine (data, sessions, expiries,
  // applied state); group 8's records are all still there.
  size_t left_of_7 = 0, left_of_8 = 0;
  auto it = engine.iterate();
  for (it->seek(""); it->valid(); it->next()) {
    const std::string_view key = it->key();
    ASSERT_GE(key.size(), 9u);
    const uint8_t group = static_cast<uint8_t>(key[8]);
    left_of_7 += group == 7;
    left_of_8 += group == 8;
  }
  EXPECT_EQ(left_of_7, 0u);
  EXPECT_EQ(left_of_8, 4u) << "data, session, expiry and applied state";
  EXPECT_EQ(gone.applied().index, LogIndex{0});
  KvStateMachine reread(GroupId{7}, &engine);
  ASSERT_TRUE(reread.load().ok());
  EXPECT_EQ(reread.applied().index, LogIndex{0}) << "nothing applied is left";
  EXPECT_FALSE(reread.get("k")->has_value());
  EXPECT_TRUE(reread.scan("", 10)->empty());
  EXPECT_EQ(**kept.get("k"), "v");
  EXPECT_EQ(kept.applied().index, LogIndex{2});
}

}  // namespace
}  // namespace synod::node

namespace synod::node {
namespace {

// A keyspace's placement changes only from the one the change was read
// from, only while it is active, only with a replica set per partition, and
// never back onto a node that held the partition before.
TEST(KvStateMachine, PlacementsChangeByCompareAndSetAndNeverBackOntoAFormerHolder) {
  storage::MemKvEngine engine;
  raft::ConfState conf;
  conf.voters = {NodeId{1}};
  KvStateMachine meta(GroupId{1}, &engine);
  ASSERT_TRUE(meta.bootstrap(AppliedState{LogIndex{1}, Term{1}, conf}).ok());
  placement::Keyspace k;
  k.name = "app";
  k.partitions = 2;
  placement::Placement first;
  first.replicas = {{1, 2, 3}, {1, 2, 3}};
  Command create = kv_command(9, 1, CommandOp::kCreateKeyspace, "app", placement::encode_keyspace(k));
  create.expected = placement::encode_placement(first);
  uint64_t index = 2;
  auto run = [&](Command command) {
    command.client_id = 9;
    command.sequence = index;
    auto applied = meta.apply({kv_entry(index, command)}, nullptr);
    ++index;
    EXPECT_TRUE(applied.ok());
    return *(*applied)[0].reply;
  };
  ASSERT_EQ(run(create).kind, CommandReply::Kind::kInteger);
  const std::string groups = std::to_string(kFirstKeyspaceGroup);
  auto set = [&](std::vector<std::vector<uint64_t>> replicas, const placement::Placement& from) {
    placement::Placement where;
    where.replicas = std::move(replicas);
    Command c = kv_command(9, 0, CommandOp::kSetPlacement, "app", placement::encode_placement(where));
    c.expected = groups + "/" + placement::placement_version(from);
    return run(c);
  };
  EXPECT_NE(set({{1, 2, 4}, {1, 2, 3}}, first).error.find("is creating"), std::string::npos);
  ASSERT_EQ(run(kv_command(9, 0, CommandOp::kActivateKeyspace, "app")).integer, 1);

  EXPECT_NE(set({{1, 2, 4}}, first).error.find("each of the keyspace's partitions"), std::string::npos);
  EXPECT_NE(set({{1, 1, 4}, {1, 2, 3}}, first).error.find("distinct"), std::string::npos);
  EXPECT_EQ(set({{1, 2, 4}, {1, 2, 3}}, first).integer, 1);
  // A second change made from the same (now old) reading is refused.
  EXPECT_NE(set({{1, 2, 5}, {1, 2, 3}}, first).error.find("another placement"), std::string::npos);
  placement::Placement second;
  second.replicas = {{1, 2, 4}, {1, 2, 3}};
  // Node 3 held partition 0 before: it may not come back to it.
  EXPECT_NE(set({{1, 3, 4}, {1, 2, 3}}, second).error.find("node 3 held partition 0"), std::string::npos);
  EXPECT_EQ(set({{1, 2, 4}, {1, 2, 5}}, second).integer, 1);
  auto records = meta.scan(kPlacementRecordPrefix, 10);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  placement::Placement stored = *placement::decode_placement((*records)[0].second, 4096);
  EXPECT_EQ(stored.replicas, (std::vector<std::vector<uint64_t>>{{1, 2, 4}, {1, 2, 5}}));
  // Forgetting the keyspace takes its history with it.
  ASSERT_EQ(run(kv_command(9, 0, CommandOp::kDropKeyspace, "app")).integer, 1);
  ASSERT_EQ(run(kv_command(9, 0, CommandOp::kForgetKeyspace, "app")).integer, 1);
  EXPECT_TRUE(meta.scan(kHeldRecordPrefix, 10)->empty());
}

}  // namespace
}  // namespace synod::node
