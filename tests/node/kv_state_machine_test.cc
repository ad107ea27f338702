// KvStateMachine's read path on apply: the remembered dedupe records must
// never disagree with the engine (a snapshot replaces them), and a plain SET
// reads nothing it does not need.
#include <gtest/gtest.h>

#include "node/kv_state_machine.h"
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
