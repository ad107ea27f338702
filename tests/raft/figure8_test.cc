// Figure 8 of the Raft paper (§5.4.2): a leader may not conclude that an
// entry from an earlier term is committed just because a majority stores it.
// Only entries of the leader's current term are committed by counting
// replicas; earlier ones are committed indirectly, with them.
//
// The story, with five servers S1..S5 (indexes shift by one because every
// node starts from the bootstrap snapshot at 1@1, so the first term is 2):
//   (a) S1 leads term 2 and gets its entries onto S2 only.
//   (b) S1 crashes; S5 wins term 3 with votes from S3, S4 and itself and
//       appends different entries at the same indexes, on itself only.
//   (c) S5 crashes; S1 restarts and wins term 4, and copies its term-2
//       entries to S3: a majority (S1, S2, S3) now holds them. They must not
//       be committed.
//   (d) S1 crashes; S5 restarts and can win (S3 and S4 find its log, ending
//       in term 3, more up to date), and overwrites the term-2 entries. Had
//       they been committed in (c), committed entries would be lost.
//   (e) Alternatively, S1 gets an entry of term 4 onto a majority before it
//       crashes: then everything up to it is committed, and S5 cannot win.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

bool carries_term_at_least(const Message& m, Term t) {
  for (const Entry& e : m.entries) {
    if (e.term >= t) return true;
  }
  return false;
}

bool applied_anywhere(TestCluster& c, const std::string& data) {
  for (uint64_t id : c.ids()) {
    for (const Entry& e : c.peer(id).applied) {
      if (e.data.str() == data) return true;
    }
  }
  return false;
}

// Campaigns until `id` leads (a first attempt may only teach it a newer term).
void elect_eventually(TestCluster& c, uint64_t id) {
  for (int attempt = 0; attempt < 6 && c.raft(id).role() != Role::kLeader; ++attempt) {
    (void)c.node(id).campaign();
    c.deliver_all();
  }
  ASSERT_EQ(c.raft(id).role(), Role::kLeader) << "S" << id << " could not be elected";
}

struct Figure8 {
  explicit Figure8(bool pre_vote)
      : c({1, 2, 3, 4, 5}, [pre_vote](Config& cfg) {
          cfg.pre_vote = pre_vote;
          // The paper's protocol: no leader leases delaying elections.
          cfg.check_quorum = false;
          // One entry per append, so a follower can be given the old entries
          // without the new one.
          cfg.max_size_per_msg_bytes = 1;
        }) {}

  // Plays (a) to (c). Afterwards S1 leads term `term_c` ≥ 4; the term-2
  // entries end at `old_index`, and S1, S2, S3 all hold them.
  void play_to_c(bool s3_gets_current_term_entries) {
    // (a) S1 leads term 2; only S2 receives its appends.
    c.set_drop_filter([](const Message& m) {
      return m.type == MessageType::kApp && m.from == nid(1) && m.to != nid(2);
    });
    c.elect(1);
    ASSERT_EQ(c.leader(), 1u);
    ASSERT_EQ(c.raft(1).term(), term(2));
    c.propose(1, "a");
    old_index = c.raft(1).log().last_index();
    ASSERT_EQ(c.raft(2).log().last_index(), old_index);
    ASSERT_EQ(c.raft(1).log().committed(), idx(1)) << "2 of 5 is no majority";

    // (b) S1 crashes. S5 wins term 3 (S3, S4 and itself) and appends, alone.
    c.crash(1);
    c.set_drop_filter([](const Message& m) {
      return m.type == MessageType::kApp && m.from == nid(5);
    });
    elect_eventually(c, 5);
    ASSERT_EQ(c.raft(5).term(), term(3));
    c.propose(5, "b");
    ASSERT_GE(c.raft(5).log().last_index(), old_index);
    ASSERT_EQ(c.raft(5).log().term_or_zero(old_index), term(3));

    // (c) S5 crashes; S1 restarts and wins a later term. It reaches S2 fully,
    // S3 only with the term-2 entries (unless `s3_gets_current_term_entries`),
    // and S4 not at all.
    c.crash(5);
    c.restart(1);
    c.set_drop_filter([this, s3_gets_current_term_entries](const Message& m) {
      if (m.type != MessageType::kApp || m.from != nid(1)) return false;
      if (m.to == nid(4)) return true;
      if (m.to != nid(3) || s3_gets_current_term_entries) return false;
      // S3 may receive the probe it rejects, and the old entries, but never
      // an entry of S1's new term once it could store one.
      return carries_term_at_least(m, term(4)) && c.raft(3).log().last_index() >= old_index;
    });
    elect_eventually(c, 1);
    term_c = c.raft(1).term();
    ASSERT_GE(term_c, term(4));
    c.propose(1, "c");
    for (int i = 0; i < 3; ++i) {
      c.tick(1);  // heartbeats, so followers that went quiet are probed again
      c.deliver_all();
    }
  }

  TestCluster c;
  LogIndex old_index;
  Term term_c;
};

TEST(RaftFigure8, OldTermEntryOnMajorityIsNotCommittedAndMayBeOverwritten) {
  for (bool pre_vote : {false, true}) {
    SCOPED_TRACE(pre_vote ? "pre_vote" : "no pre_vote");
    Figure8 f(pre_vote);
    f.play_to_c(/*s3_gets_current_term_entries=*/false);
    if (::testing::Test::HasFatalFailure()) return;
    TestCluster& c = f.c;

    // The term-2 entries are on a majority, and the leader knows it...
    for (uint64_t id : {1u, 2u, 3u}) {
      ASSERT_EQ(c.raft(id).log().term_or_zero(f.old_index), term(2)) << "S" << id;
    }
    ASSERT_GE(c.raft(1).tracker().progress.at(nid(2)).match, f.old_index);
    ASSERT_GE(c.raft(1).tracker().progress.at(nid(3)).match, f.old_index);
    // ... but S3 holds nothing of term 4, so only S1 and S2 do.
    ASSERT_LT(c.raft(3).log().last_index(), f.old_index + 1);
    ASSERT_GT(c.raft(1).log().last_index(), f.old_index);

    // The Figure 8 rule: no commit by counting replicas of an old term.
    EXPECT_LT(c.raft(1).log().committed(), f.old_index)
        << "committed a term-2 entry by counting replicas in term " << f.term_c;
    EXPECT_FALSE(applied_anywhere(c, "a"));

    // (d) S1 crashes; S5 returns and wins with S3 and S4, whose logs end in
    // older terms than its own.
    c.crash(1);
    c.heal();
    c.restart(5);
    elect_eventually(c, 5);
    if (::testing::Test::HasFatalFailure()) return;
    c.propose(5, "d");
    for (int i = 0; i < 5; ++i) {
      c.tick(5);
      c.deliver_all();
    }
    // The term-2 entries are gone everywhere that is up, replaced by S5's.
    for (uint64_t id : {2u, 3u, 4u, 5u}) {
      EXPECT_EQ(c.raft(id).log().term_or_zero(f.old_index), term(3)) << "S" << id;
      EXPECT_GE(c.raft(id).log().committed(), f.old_index) << "S" << id;
    }
    EXPECT_FALSE(applied_anywhere(c, "a")) << "an entry that was later overwritten was applied";
    EXPECT_TRUE(applied_anywhere(c, "b"));
    EXPECT_TRUE(applied_anywhere(c, "d"));
  }
}

TEST(RaftFigure8, OldTermEntryCommitsWithACurrentTermEntryOnMajority) {
  for (bool pre_vote : {false, true}) {
    SCOPED_TRACE(pre_vote ? "pre_vote" : "no pre_vote");
    Figure8 f(pre_vote);
    f.play_to_c(/*s3_gets_current_term_entries=*/true);
    if (::testing::Test::HasFatalFailure()) return;
    TestCluster& c = f.c;

    // (e) S1, S2, S3 hold an entry of term_c: it and everything before it,
    // the term-2 entries included, are committed and applied.
    const LogIndex last = c.raft(1).log().last_index();
    EXPECT_EQ(c.raft(1).log().term_or_zero(last), f.term_c);
    EXPECT_EQ(c.raft(1).log().committed(), last);
    for (uint64_t id : {1u, 2u, 3u}) {
      EXPECT_EQ(c.raft(id).log().term_or_zero(f.old_index), term(2)) << "S" << id;
      ASSERT_EQ(c.peer(id).applied.size(), 2u) << "S" << id;
      EXPECT_EQ(c.peer(id).applied[0].data.str(), "a");
      EXPECT_EQ(c.peer(id).applied[1].data.str(), "c");
    }

    // Now S5 cannot win: a majority holds entries of a later term than its.
    c.crash(1);
    c.heal();
    c.restart(5);
    for (int attempt = 0; attempt < 6; ++attempt) {
      (void)c.node(5).campaign();
      c.deliver_all();
      ASSERT_NE(c.raft(5).role(), Role::kLeader) << "S5 won without the committed entries";
    }
    // The group still makes progress under a leader holding everything.
    for (int i = 0; i < 300 && c.leader() == 0; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    const uint64_t lead = c.leader();
    ASSERT_NE(lead, 0u);
    ASSERT_NE(lead, 5u);
    c.propose(lead, "e");
    for (int i = 0; i < 5; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    for (uint64_t id : {2u, 3u, 4u, 5u}) {
      ASSERT_EQ(c.peer(id).applied.size(), 3u) << "S" << id;
      EXPECT_EQ(c.peer(id).applied[0].data.str(), "a");
      EXPECT_EQ(c.peer(id).applied[1].data.str(), "c");
      EXPECT_EQ(c.peer(id).applied[2].data.str(), "e");
    }
  }
}

// The rule in isolation: a leader of term 3 whose log holds an entry of term
// 2. Acknowledgements from a majority for the term-2 entry commit nothing;
// once a majority acknowledges an entry of term 3, both commit.
TEST(RaftFigure8, LeaderCountsOnlyCurrentTermEntriesForCommit) {
  // Node 1 of {1, 2, 3}, log [1@1 (snapshot) 2@2], at term 2.
  MemoryStorage storage;
  Snapshot snap;
  snap.meta.index = idx(1);
  snap.meta.term = term(1);
  snap.meta.conf_state.voters = {nid(1), nid(2), nid(3)};
  ASSERT_TRUE(storage.apply_snapshot(snap).ok());
  ASSERT_TRUE(storage.append({Entry{term(2), idx(2), EntryType::kNormal, Bytes("old")}}).ok());
  storage.set_hard_state({term(2), kNone, idx(1)});
  Config cfg;
  cfg.id = nid(1);
  cfg.group = GroupId{1};
  cfg.storage = &storage;
  cfg.applied = idx(1);
  cfg.pre_vote = false;
  cfg.check_quorum = false;
  auto created = RawNode::create(cfg);
  ASSERT_TRUE(created.ok());
  RawNode& node = **created;

  auto persist = [&] {
    while (node.has_ready()) {
      Ready rd = node.ready();
      if (!rd.entries.empty()) {
        ASSERT_TRUE(storage.append(rd.entries).ok());
      }
      if (rd.hard_state) storage.set_hard_state(*rd.hard_state);
      node.advance();
    }
  };
  auto ack = [&](uint64_t from, LogIndex index) {
    Message m;
    m.group = GroupId{1};
    m.type = MessageType::kAppResp;
    m.from = nid(from);
    m.to = nid(1);
    m.term = term(3);
    m.index = index;
    (void)node.step(m);
    persist();
  };

  ASSERT_TRUE(node.campaign().ok());
  persist();
  Message grant;
  grant.group = GroupId{1};
  grant.type = MessageType::kVoteResp;
  grant.from = nid(2);
  grant.to = nid(1);
  grant.term = term(3);
  ASSERT_TRUE(node.step(grant).ok());
  persist();
  ASSERT_EQ(node.raft().role(), Role::kLeader);
  ASSERT_EQ(node.raft().term(), term(3));
  ASSERT_TRUE(node.propose(Bytes("new")).ok());
  persist();
  const LogIndex last = node.raft().log().last_index();
  ASSERT_EQ(node.raft().log().term_or_zero(last), term(3));

  // S1 and S2 (a majority) hold index 2, of term 2: not committed.
  ack(2, idx(2));
  EXPECT_EQ(node.raft().log().committed(), idx(1));
  ack(3, idx(2));
  EXPECT_EQ(node.raft().log().committed(), idx(1));

  // A majority holds the term-3 entry: it commits, and index 2 with it.
  ack(2, last);
  EXPECT_EQ(node.raft().log().committed(), last);
}

}  // namespace
}  // namespace synod::raft::testing
