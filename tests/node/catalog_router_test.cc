// The catalog router: which group a key goes to, when a node may route by
// its copy of the catalog, and when the meta leader may take a keyspace's
// next step (node/catalog_router.h gives the argument these check).
#include "node/catalog_router.h"

#include <gtest/gtest.h>

#include "placement/partition.h"
#include "storage/mem_kv_engine.h"
#include "support/commands.h"

namespace synod::node {
namespace {

using placement::Keyspace;
using placement::KeyspaceState;
using placement::Placement;

Keyspace default_keyspace(uint32_t partitions) {
  Keyspace k;
  k.name = "default";
  k.partitions = partitions;
  k.first_group = 2;
  return k;
}

Placement everywhere(uint32_t partitions, std::vector<uint64_t> nodes) {
  Placement p;
  p.replicas.assign(partitions, nodes);
  return p;
}

CatalogEntry entry(const std::string& name, uint64_t first_group, uint32_t partitions,
                   KeyspaceState state, std::vector<uint64_t> nodes = {1, 2, 3}) {
  Keyspace k;
  k.name = name;
  k.partitions = partitions;
  k.first_group = first_group;
  k.state = state;
  return CatalogEntry{k, everywhere(partitions, std::move(nodes))};
}

CatalogRouter confirmed_router(uint64_t now_ms) {
  CatalogRouter router(default_keyspace(4), everywhere(4, {1, 2, 3}),
                       RouterOptions{.lease_ms = 2000, .renew_ms = 500});
  router.renewal_started(now_ms);
  router.renewal_finished(true);
  return router;
}

TEST(CatalogRouter, KeysWithoutAColonGoToDefaultEvenBeforeTheCatalogIsConfirmed) {
  CatalogRouter router(default_keyspace(4), everywhere(4, {1, 2, 3}));
  Route plain = router.route("user42", 0);
  EXPECT_EQ(plain.kind, Route::Kind::kGroup);
  EXPECT_EQ(plain.group, 2 + placement::partition_of("user42", 4));
  EXPECT_EQ(plain.keyspace, "default");
  Route prefixed = router.route("app:42", 0);
  EXPECT_EQ(prefixed.kind, Route::Kind::kHold) << "it might belong to a keyspace not yet seen";
}

TEST(CatalogRouter, ALeaseRunsFromWhenItsReadWasIssuedAndOnlyIfItAnswered) {
  CatalogRouter router(default_keyspace(4), everywhere(4, {1, 2, 3}),
                       RouterOptions{.lease_ms = 2000, .renew_ms = 500});
  EXPECT_TRUE(router.renewal_due(0));
  router.renewal_started(1000);
  EXPECT_FALSE(router.renewal_due(5000)) << "one confirmation in flight at a time";
  router.renewal_finished(false);
  EXPECT_FALSE(router.confirmed(1001)) << "a failed read confirms nothing";
  EXPECT_FALSE(router.renewal_due(1499)) << "confirmations start renew_ms apart";
  EXPECT_TRUE(router.renewal_due(1500));
  router.renewal_started(1500);
  router.renewal_finished(true);
  EXPECT_TRUE(router.confirmed(3499));
  EXPECT_FALSE(router.confirmed(3500)) << "good for lease_ms from the read's start";
  EXPECT_EQ(router.route("app:1", 3500).kind, Route::Kind::kHold);
  EXPECT_FALSE(router.renewal_due(1999));
  EXPECT_TRUE(router.renewal_due(2000));
}

TEST(CatalogRouter, LongestDefinedPrefixWinsAndStepsInProgressAreRefused) {
  CatalogRouter router = confirmed_router(0);
  router.update({entry("app", 1 << 20, 8, KeyspaceState::kActive),
                 entry("app:users", (1 << 20) + 8, 16, KeyspaceState::kActive),
                 entry("new", (1 << 20) + 24, 2, KeyspaceState::kCreating),
                 entry("old", (1 << 20) + 26, 2, KeyspaceState::kDropping)},
                0);
  Route users = router.route("app:users:7", 10);
  EXPECT_EQ(users.keyspace, "app:users");
  EXPECT_EQ(users.group, (1u << 20) + 8 + placement::partition_of("app:users:7", 16));
  EXPECT_EQ(router.route("app:orders:7", 10).keyspace, "app");
  EXPECT_EQ(router.route("apps:7", 10).keyspace, "default");
  Route creating = router.route("new:1", 10);
  EXPECT_EQ(creating.kind, Route::Kind::kRefuse);
  EXPECT_NE(creating.why.find("being created"), std::string::npos) << creating.why;
  EXPECT_EQ(router.route("old:1", 10).kind, Route::Kind::kRefuse);
}

TEST(CatalogRouter, StepsWaitTwoLeasesFromWhenTheStateWasFirstSeen) {
  CatalogRouter router = confirmed_router(0);
  router.update({entry("new", 1 << 20, 2, KeyspaceState::kCreating)}, 1000);
  // Seeing the same state again does not restart the wait.
  router.update({entry("new", 1 << 20, 2, KeyspaceState::kCreating),
                 entry("old", (1 << 20) + 2, 2, KeyspaceState::kDropping)},
                3000);
  EXPECT_TRUE(router.due_steps(4999).empty());
  EXPECT_EQ(router.due_steps(5000),
            (std::vector<CatalogStep>{{CommandOp::kActivateKeyspace, "new"}}));
  EXPECT_EQ(router.due_steps(7000).size(), 2u);
  // Active keyspaces have no step due; a keyspace dropped and created again
  // (new groups) waits afresh.
  router.update({entry("new", 1 << 20, 2, KeyspaceState::kActive),
                 entry("old", (1 << 20) + 4, 2, KeyspaceState::kCreating)},
                8000);
  EXPECT_TRUE(router.due_steps(11999).empty());
  EXPECT_EQ(router.due_steps(12000),
            (std::vector<CatalogStep>{{CommandOp::kActivateKeyspace, "old"}}));
  // The same name and state with other groups is another keyspace: it waits
  // from when it is seen.
  router.update({entry("old", (1 << 20) + 6, 2, KeyspaceState::kCreating)}, 12500);
  EXPECT_TRUE(router.due_steps(16499).empty());
  EXPECT_EQ(router.due_steps(16500).size(), 1u);
}

TEST(CatalogRouter, GroupsOfANodeFollowThePlacement) {
  CatalogRouter router = confirmed_router(0);
  CatalogEntry app = entry("app", 1 << 20, 2, KeyspaceState::kActive);
  app.placement.replicas = {{1, 2}, {2, 3}};
  router.update({app}, 0);
  auto of3 = router.groups_of(3);
  EXPECT_EQ(of3.size(), 4u + 1u) << "every default partition, and app's partition 1";
  EXPECT_EQ(of3.at((1u << 20) + 1), (std::vector<uint64_t>{2, 3}));
  EXPECT_FALSE(of3.contains(1u << 20));
  EXPECT_EQ(router.replicas_of(1u << 20), (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(router.replicas_of(999).empty());
}

TEST(CatalogRouter, ReadsTheCatalogTheMetaGroupHolds) {
  storage::MemKvEngine engine;
  KvStateMachine meta(raft::GroupId{1}, &engine);
  raft::ConfState conf;
  conf.voters = {raft::NodeId{1}};
  ASSERT_TRUE(meta.bootstrap(AppliedState{raft::LogIndex{1}, raft::Term{1}, conf}).ok());
  const uint64_t version = meta.catalog_version();
  Keyspace k;
  k.name = "app";
  k.partitions = 2;
  Command create = test_support::kv_command(9, 1, CommandOp::kCreateKeyspace, "app",
                                            placement::encode_keyspace(k));
  create.expected = placement::encode_placement(everywhere(2, {1}));
  ASSERT_TRUE(meta.apply({test_support::kv_entry(2, create)}, nullptr).ok());
  EXPECT_NE(meta.catalog_version(), version);
  auto read = read_catalog(meta);
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].keyspace.name, "app");
  EXPECT_EQ((*read)[0].keyspace.state, KeyspaceState::kCreating);
  EXPECT_EQ((*read)[0].keyspace.first_group, kFirstKeyspaceGroup);
  EXPECT_EQ((*read)[0].placement, everywhere(2, {1}));
  // A plain write changes no catalog record, and the version says so.
  const uint64_t after = meta.catalog_version();
  ASSERT_TRUE(meta.apply({test_support::kv_entry(3, test_support::kv_command(
                                                        9, 2, CommandOp::kPut, "x", "y"))},
                         nullptr)
                  .ok());
  EXPECT_EQ(meta.catalog_version(), after);
}

}  // namespace
}  // namespace synod::node
