// Replication: the AppendEntries receiver rules of Figure 2, the leader's
// commit rule, flow control (pipelining within an in-flight window, batching
// under a message size cap, probe and replicate states), fast conflict
// backtracking, and the Figure 3 properties Log Matching, Leader Append-Only
// and State Machine Safety. White-box tests drive one RawNode with hand-made
// messages (the test plays every peer); scenario tests use the cluster.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "raft/property_run.h"
#include "raft/solo_node.h"
#include "raft/test_cluster.h"


namespace synod::raft::testing {
namespace {




Entry data_entry(uint64_t index, uint64_t t, std::string data = {}) {
  return Entry{term(t), idx(index), EntryType::kNormal, Bytes(std::move(data))};
}

Message append(uint64_t from, uint64_t to, uint64_t t, uint64_t prev_index, uint64_t prev_term,
               uint64_t commit, std::vector<Entry> entries) {
  Message m = make_msg(MessageType::kApp, from, to, t);
  m.index = idx(prev_index);
  m.log_term = term(prev_term);
  m.commit = idx(commit);
  m.entries = std::move(entries);
  return m;
}

Message append_ack(uint64_t from, uint64_t to, uint64_t t, LogIndex index) {
  Message m = make_msg(MessageType::kAppResp, from, to, t);
  m.index = index;
  return m;
}

std::vector<Message> with_entries(const std::vector<Message>& msgs, uint64_t to) {
  std::vector<Message> out;
  for (const Message& m : msgs) {
    if (m.type == MessageType::kApp && m.to == nid(to) && !m.entries.empty()) out.push_back(m);
  }
  return out;
}

std::vector<uint64_t> log_terms(const Raft& r) {
  std::vector<uint64_t> out;
  for (const Entry& e : r.log().all_entries()) out.push_back(e.term.value());
  return out;
}

const Progress& progress_of(const Solo& s, uint64_t id) {
  return s.raft().tracker().progress.at(nid(id));
}

// A leader of {1,2,3} at term 2 whose followers `replicating` acknowledged
// its first entries (so they are in replicate state). Returns what it sent
// on election.
std::vector<Message> lead(Solo& s, std::vector<uint64_t> replicating) {
  std::vector<Message> sent = win_election(s);
  const LogIndex last = s.raft().log().last_index();
  for (uint64_t f : replicating) s.step(append_ack(f, 1, s.raft().term().value(), last));
  auto more = s.drain();
  sent.insert(sent.end(), more.begin(), more.end());
  for (uint64_t f : replicating) {
    EXPECT_EQ(progress_of(s, f).state, ProgressState::kReplicate) << "follower " << f;
  }
  return sent;
}

// ---------------------------------------------------------------------------
// AppendEntries receiver.

// Figure 2, AppendEntries receiver 2-5, on a follower at term 2 whose log is
// [1@1 (snapshot) 2@2 3@2], committed 1, receiving from leader 2.
TEST(RaftReplication, FollowerAppliesAppendEntriesReceiverRules) {
  struct Case {
    const char* name;
    uint64_t prev_index;
    uint64_t prev_term;
    uint64_t leader_commit;
    std::vector<Entry> entries;
    bool want_reject;
    uint64_t want_index;  // acknowledged index (last new entry) when accepted
    uint64_t want_commit;
    std::vector<uint64_t> want_terms;  // the log from index 2 afterwards
  };
  const std::vector<Case> cases = {
      {"prev term mismatch", 3, 3, 3, {}, true, 0, 1, {2, 2}},
      {"prev beyond the log", 4, 2, 3, {}, true, 0, 1, {2, 2}},
      {"prev matches, commit capped by last new entry", 2, 2, 3, {}, false, 2, 2, {2, 2}},
      {"commit follows leader commit", 3, 2, 2, {}, false, 3, 2, {2, 2}},
      {"commit never goes back", 2, 2, 1, {}, false, 2, 1, {2, 2}},
      {"conflict deletes entry and all that follow", 1, 1, 3, {data_entry(2, 3)}, false, 2, 2,
       {3}},
      {"new entry appended", 3, 2, 3, {data_entry(4, 2)}, false, 4, 3, {2, 2, 2}},
      {"new entry appended and committed", 3, 2, 5, {data_entry(4, 2)}, false, 4, 4, {2, 2, 2}},
      // A delayed append must not cut off entries that came after it.
      {"entries already present are kept with what follows", 1, 1, 3, {data_entry(2, 2)}, false,
       2, 2, {2, 2}},
      {"partly present entries", 2, 2, 3, {data_entry(3, 2), data_entry(4, 2)}, false, 4, 3,
       {2, 2, 2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Solo s({.hard_state = {term(2), kNone, idx(1)}, .entries = terms_from(2, {2, 2})});
    s.step(append(2, 1, 2, c.prev_index, c.prev_term, c.leader_commit, c.entries));
    auto resps = of_type_to(s.drain(), MessageType::kAppResp, 2);
    ASSERT_EQ(resps.size(), 1u);
    EXPECT_EQ(resps[0].reject, c.want_reject);
    EXPECT_EQ(resps[0].term, term(2));
    if (c.want_reject) {
      // The hint for fast backtracking never points past our log.
      EXPECT_LE(resps[0].reject_hint, idx(3));
    } else {
      EXPECT_EQ(resps[0].index, idx(c.want_index));
    }
    EXPECT_EQ(s.raft().log().committed(), idx(c.want_commit));
    EXPECT_EQ(log_terms(s.raft()), c.want_terms);
    EXPECT_EQ(s.raft().leader(), nid(2));
  }
}

// Figure 2, AppendEntries receiver 1: "Reply false if term < currentTerm."
// The reply carries the newer term so the stale leader steps down.
TEST(RaftReplication, FollowerRejectsAppendFromStaleTerm) {
  for (MessageType type : {MessageType::kApp, MessageType::kHeartbeat}) {
    SCOPED_TRACE(message_type_name(type));
    Solo s({.hard_state = {term(3), kNone, idx(1)}, .entries = terms_from(2, {2})});
    Message m = append(2, 1, 2, 2, 2, 3, {data_entry(3, 2, "stale")});
    m.type = type;
    if (type == MessageType::kHeartbeat) m.entries.clear();
    s.step(m);
    auto sent = s.drain();
    EXPECT_EQ(s.raft().term(), term(3));
    EXPECT_EQ(s.raft().leader(), kNone);
    EXPECT_EQ(s.raft().log().last_index(), idx(2));
    EXPECT_EQ(s.raft().log().committed(), idx(1));
    for (const Message& r : sent) {
      if (r.type != MessageType::kAppResp && r.type != MessageType::kHeartbeatResp) continue;
      EXPECT_TRUE(r.term == term(3) || r.reject) << "acknowledged a stale leader";
    }
  }
}

// A follower's acknowledgement promises the entries are durable: it goes in
// messages_after_persist of the Ready that carries the entries.
TEST(RaftReplication, FollowerAppendResponseIsSentOnlyAfterPersist) {
  Solo s({.hard_state = {term(2), kNone, idx(1)}});
  s.step(append(2, 1, 2, 1, 1, 1, {data_entry(2, 2, "a"), data_entry(3, 2, "b")}));
  ASSERT_TRUE(s.node().has_ready());
  Ready rd = s.take_ready();
  ASSERT_EQ(rd.entries.size(), 2u);
  EXPECT_TRUE(rd.must_sync);
  EXPECT_TRUE(of_type(rd.messages, MessageType::kAppResp).empty())
      << "acknowledged entries before they were persisted";
  auto resps = of_type_to(rd.messages_after_persist, MessageType::kAppResp, 2);
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_FALSE(resps[0].reject);
  EXPECT_EQ(resps[0].index, idx(3));
}

// The leader's heartbeat moves a follower's commit index forward.
TEST(RaftReplication, FollowerAdvancesCommitFromHeartbeat) {
  Solo s({.hard_state = {term(2), kNone, idx(1)}, .entries = terms_from(2, {2, 2})});
  Message hb = make_msg(MessageType::kHeartbeat, 2, 1, 2);
  hb.commit = idx(3);
  s.step(hb);
  ASSERT_TRUE(s.node().has_ready());
  Ready rd = s.take_ready();
  EXPECT_EQ(s.raft().log().committed(), idx(3));
  ASSERT_EQ(rd.committed_entries.size(), 2u);
  EXPECT_EQ(rd.committed_entries.front().index, idx(2));
  EXPECT_EQ(rd.committed_entries.back().index, idx(3));
}

// A heartbeat carries commit = min(follower's match, leader's commit): a
// follower whose log may still hold divergent entries must not be told to
// commit them.
TEST(RaftReplication, LeaderHeartbeatCommitNeverExceedsFollowerMatch) {
  Solo s({.tweak = classic()});
  lead(s, {2});
  ASSERT_TRUE(s.node().propose(Bytes("x")).ok());
  s.drain();
  const LogIndex last = s.raft().log().last_index();
  s.step(append_ack(2, 1, 2, last));
  s.drain();
  ASSERT_EQ(s.raft().log().committed(), last);
  const LogIndex match3 = progress_of(s, 3).match;
  ASSERT_LT(match3, last);
  s.node().tick();
  auto sent = s.drain();
  auto to2 = of_type_to(sent, MessageType::kHeartbeat, 2);
  auto to3 = of_type_to(sent, MessageType::kHeartbeat, 3);
  ASSERT_EQ(to2.size(), 1u);
  ASSERT_EQ(to3.size(), 1u);
  EXPECT_EQ(to2[0].commit, last);
  EXPECT_LE(to3[0].commit, match3);
}

// ---------------------------------------------------------------------------
// The leader's commit rule.

// Figure 2, leaders: "If there exists an N such that N > commitIndex, a
// majority of matchIndex[i] ≥ N, and log[N].term == currentTerm: set
// commitIndex = N."
TEST(RaftReplication, LeaderCommitsWhatAMajorityHolds) {
  struct Ack {
    uint64_t from;
    int back;  // acknowledges last_index - back
  };
  struct Case {
    const char* name;
    std::vector<uint64_t> voters;
    std::vector<Ack> acks;
    int want_back;  // committed = last_index - want_back; -1: nothing new
  };
  const std::vector<Case> cases = {
      {"3 voters, no acks", {1, 2, 3}, {}, -1},
      {"3 voters, one ack", {1, 2, 3}, {{2, 0}}, 0},
      {"5 voters, one ack", {1, 2, 3, 4, 5}, {{2, 0}}, -1},
      {"5 voters, two acks", {1, 2, 3, 4, 5}, {{2, 0}, {3, 0}}, 0},
      {"5 voters, majority holds less", {1, 2, 3, 4, 5}, {{2, 0}, {3, 1}}, 1},
      {"5 voters, acks from a minority only", {1, 2, 3, 4, 5}, {{2, 0}, {2, 1}}, -1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Solo s({.voters = c.voters, .tweak = classic()});
    win_election(s);
    const LogIndex before = s.raft().log().committed();
    ASSERT_TRUE(s.node().propose(Bytes("x")).ok());
    ASSERT_TRUE(s.node().propose(Bytes("y")).ok());
    s.drain();
    const LogIndex last = s.raft().log().last_index();
    for (const Ack& a : c.acks) s.step(append_ack(a.from, 1, 2, last - a.back));
    s.drain();
    EXPECT_EQ(s.raft().log().committed(), c.want_back < 0 ? before : last - c.want_back);
  }
}

// ---------------------------------------------------------------------------
// Flow control.

// Pipelining: in replicate state the leader sends up to max_inflight_msgs
// appends without waiting, then pauses; each acknowledgement frees room.
TEST(RaftReplication, PipelinesUpToMaxInflightThenPauses) {
  for (size_t window : {1u, 3u, 5u}) {
    SCOPED_TRACE(::testing::Message() << "max_inflight_msgs " << window);
    Solo s({.tweak = classic([window](Config& c) { c.max_inflight_msgs = window; })});
    lead(s, {2});
    std::vector<Message> to2;
    for (size_t i = 0; i < 2 * window + 2; ++i) {
      ASSERT_TRUE(s.node().propose(Bytes("p" + std::to_string(i))).ok());
      auto sent = with_entries(s.drain(), 2);
      to2.insert(to2.end(), sent.begin(), sent.end());
    }
    ASSERT_EQ(to2.size(), window) << "appends in flight beyond the window";
    EXPECT_EQ(progress_of(s, 2).inflights.count(), window);
    EXPECT_TRUE(progress_of(s, 2).is_paused());

    // One acknowledgement frees one slot: exactly one more append, starting
    // right after the last one in flight.
    s.step(append_ack(2, 1, 2, to2.front().entries.back().index));
    auto after = with_entries(s.drain(), 2);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].entries.front().index, to2.back().entries.back().index + 1);

    // Acknowledging everything sent lets the rest go and unpauses.
    s.step(append_ack(2, 1, 2, after.back().entries.back().index));
    s.drain();
    for (int i = 0; i < 10 && progress_of(s, 2).match < s.raft().log().last_index(); ++i) {
      auto more = with_entries(s.drain(), 2);
      if (more.empty()) break;
      s.step(append_ack(2, 1, 2, more.back().entries.back().index));
    }
    EXPECT_EQ(progress_of(s, 2).match, s.raft().log().last_index());
    EXPECT_FALSE(progress_of(s, 2).is_paused());
  }
}

// Batching: one append carries as many entries as fit in
// max_size_per_msg_bytes (at least one).
TEST(RaftReplication, BatchesEntriesUpToMaxSizePerMsg) {
  struct Case {
    size_t max_size;
    size_t want_entries;
  };
  // Entries 2..11 carry 100 bytes each; the leader adds its own entry at 12.
  // The caps are chosen so that counting payload bytes or Entry::size_bytes()
  // gives the same answer.
  const std::vector<Case> cases = {{1, 1}, {250, 2}, {380, 3}, {498, 4}, {1 << 20, 11}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "max_size_per_msg_bytes " << c.max_size);
    std::vector<Entry> entries;
    for (uint64_t i = 2; i <= 11; ++i) entries.push_back(data_entry(i, 1, std::string(100, 'x')));
    Solo s({.entries = entries,
            .tweak = classic([&](Config& cfg) { cfg.max_size_per_msg_bytes = c.max_size; })});
    auto sent = win_election(s);
    ASSERT_EQ(s.raft().log().last_index(), idx(12));
    auto probes = of_type_to(sent, MessageType::kApp, 2);
    ASSERT_FALSE(probes.empty());
    // Follower 2 has only the snapshot: it rejects, hinting at index 1.
    Message reject = append_ack(2, 1, 2, probes.back().index);
    reject.reject = true;
    reject.reject_hint = idx(1);
    reject.log_term = term(1);
    s.step(reject);
    auto apps = with_entries(s.drain(), 2);
    ASSERT_EQ(apps.size(), 1u);
    EXPECT_EQ(apps[0].index, idx(1));
    EXPECT_EQ(apps[0].entries.front().index, idx(2));
    EXPECT_EQ(apps[0].entries.size(), c.want_entries);
  }
}

// Fast backtracking (§5.3's optimization, etcd's findConflictByTerm): a
// follower far behind, or with a long divergent suffix, is repaired in a
// round trip or two, not one rejection per entry.
TEST(RaftReplication, FastBacktrackingRepairsLogsInFewRoundTrips) {
  constexpr int kEntries = 50;
  struct Case {
    const char* name;
    bool divergent;  // else the follower merely lags
  };
  for (const Case& cs : std::vector<Case>{{"divergent suffix", true}, {"lagging", false}}) {
    SCOPED_TRACE(cs.name);
    TestCluster c({1, 2, 3}, classic());
    c.elect(1);
    c.propose(1, "base");
    uint64_t repaired = 0;
    uint64_t leader = 0;
    if (cs.divergent) {
      // Old leader 1 keeps appending entries no one else gets (term 2) ...
      c.isolate(1);
      for (int i = 0; i < kEntries; ++i) (void)c.node(1).propose(Bytes("lost" + std::to_string(i)));
      c.deliver_all();
      // ... while 2 and 3 commit as many at term 3 ...
      c.elect(2);
      ASSERT_EQ(c.leader(), 2u);
      for (int i = 0; i < kEntries; ++i) (void)c.node(2).propose(Bytes("new" + std::to_string(i)));
      c.deliver_all();
      // ... and 3 takes over at term 4, its log overlapping 1's divergent
      // suffix by kEntries entries.
      c.elect(3);
      ASSERT_EQ(c.raft(3).role(), Role::kLeader);
      repaired = 1;
      leader = 3;
    } else {
      c.isolate(3);
      for (int i = 0; i < kEntries; ++i) (void)c.node(1).propose(Bytes("v" + std::to_string(i)));
      c.deliver_all();
      // A new leader, which knows nothing of 3's log.
      c.elect(2);
      ASSERT_EQ(c.raft(2).role(), Role::kLeader);
      repaired = 3;
      leader = 2;
    }
    ASSERT_GE(c.raft(leader).log().last_index(), idx(2 + kEntries));
    c.heal();
    c.delivered().clear();
    for (int i = 0; i < 10; ++i) {
      c.tick(leader);
      c.deliver_all();
    }
    size_t rejections = 0;
    for (const Message& m : c.delivered()) {
      if (m.type == MessageType::kAppResp && m.reject && m.from == nid(repaired)) ++rejections;
    }
    EXPECT_LE(rejections, 3u) << "backtracked one entry at a time";
    EXPECT_GE(rejections, 1u) << "the scenario did not need any backtracking";
    EXPECT_EQ(log_terms(c.raft(repaired)), log_terms(c.raft(leader)));
    EXPECT_EQ(c.raft(repaired).log().committed(), c.raft(leader).log().committed());
  }
}

// ---------------------------------------------------------------------------
// Probe and replicate states.

TEST(RaftReplication, AcceptedProbeMovesFollowerToReplicate) {
  Solo s({.tweak = classic()});
  win_election(s);
  EXPECT_EQ(progress_of(s, 2).state, ProgressState::kProbe);
  const LogIndex last = s.raft().log().last_index();
  s.step(append_ack(2, 1, 2, last));
  s.drain();
  EXPECT_EQ(progress_of(s, 2).state, ProgressState::kReplicate);
  EXPECT_EQ(progress_of(s, 2).match, last);
  EXPECT_EQ(progress_of(s, 2).next, last + 1);
}

// A rejection in replicate state means the optimistic pipeline went wrong
// (a lost message): fall back to probing from the last known match.
TEST(RaftReplication, RejectedAppendMovesReplicateToProbe) {
  Solo s({.tweak = classic()});
  lead(s, {2});
  const LogIndex match = progress_of(s, 2).match;
  ASSERT_TRUE(s.node().propose(Bytes("a")).ok());
  auto first = with_entries(s.drain(), 2);
  ASSERT_TRUE(s.node().propose(Bytes("b")).ok());
  auto second = with_entries(s.drain(), 2);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  // The first append was lost, so 2 rejects the second.
  Message reject = append_ack(2, 1, 2, second[0].index);
  reject.reject = true;
  reject.reject_hint = match;
  reject.log_term = term(2);
  s.step(reject);
  auto resent = with_entries(s.drain(), 2);
  EXPECT_EQ(progress_of(s, 2).state, ProgressState::kProbe);
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].index, match);
  EXPECT_EQ(resent[0].entries.front().index, match + 1);
}

// In probe state the leader does not know where the logs match, so it sends
// one append and waits: at most one per heartbeat round trip.
TEST(RaftReplication, ProbeSendsOneAppendPerHeartbeatInterval) {
  Solo s({.tweak = classic([](Config& c) {
            c.heartbeat_tick = 2;
            c.election_tick = 20;
          })});
  lead(s, {3});
  ASSERT_EQ(progress_of(s, 2).state, ProgressState::kProbe);
  size_t to3 = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(s.node().propose(Bytes("p" + std::to_string(i))).ok());
    auto sent = s.drain();
    EXPECT_TRUE(with_entries(sent, 2).empty()) << "a second probe before any answer";
    to3 += with_entries(sent, 3).size();
  }
  EXPECT_GE(to3, 1u);

  // A heartbeat round trip allows exactly one more probe.
  size_t probes = 0;
  for (int i = 0; i < 2; ++i) {
    s.node().tick();
    auto sent = s.drain();
    probes += with_entries(sent, 2).size();
    ASSERT_EQ(of_type_to(sent, MessageType::kHeartbeat, 2).size(), i == 1 ? 1u : 0u);
  }
  s.step(make_msg(MessageType::kHeartbeatResp, 2, 1, 2));
  probes += with_entries(s.drain(), 2).size();
  EXPECT_EQ(probes, 1u);
  ASSERT_TRUE(s.node().propose(Bytes("q")).ok());
  EXPECT_TRUE(with_entries(s.drain(), 2).empty());
}

TEST(RaftReplication, ReportUnreachableMovesReplicateToProbe) {
  Solo s({.tweak = classic()});
  lead(s, {2});
  s.node().report_unreachable(nid(2));
  EXPECT_EQ(progress_of(s, 2).state, ProgressState::kProbe);
  // Now at most one append goes to 2 until it answers.
  size_t sent = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(s.node().propose(Bytes("p" + std::to_string(i))).ok());
    sent += with_entries(s.drain(), 2).size();
  }
  EXPECT_LE(sent, 1u);
}

// ---------------------------------------------------------------------------
// Figure 3: Leader Append-Only, Log Matching, State Machine Safety.

// "A leader never overwrites or deletes entries in its log": not even when an
// old leader's append (a stale term) arrives.
TEST(RaftReplication, LeaderAppendOnlyIgnoresStaleAppends) {
  Solo s({.hard_state = {term(2), kNone, idx(1)},
          .entries = terms_from(2, {1, 2}),
          .tweak = classic()});
  win_election(s);
  ASSERT_EQ(s.raft().term(), term(3));
  const auto before = log_terms(s.raft());
  s.step(append(2, 1, 2, 1, 1, 1, {data_entry(2, 2, "old"), data_entry(3, 2, "old")}));
  s.drain();
  EXPECT_EQ(s.raft().role(), Role::kLeader);
  EXPECT_EQ(log_terms(s.raft()), before);
}


// "If two logs contain an entry with the same index and term, then the logs
// are identical in all entries up through the given index."
TEST(RaftReplication, LogMatchingHoldsAcrossAllPairs) {
  for (uint64_t seed = 21; seed <= 26; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    PropertyRun run(seed, {.propose_below = 50, .propose_anywhere = true});
    size_t matched_entries = 0;
    run.run(400, [&](TestCluster& c) {
      const auto ids = c.ids();
      std::map<uint64_t, std::vector<Entry>> logs;
      for (uint64_t id : ids) logs[id] = c.raft(id).log().all_entries();
      for (size_t a = 0; a < ids.size(); ++a) {
        for (size_t b = a + 1; b < ids.size(); ++b) {
          const auto& la = logs[ids[a]];
          const auto& lb = logs[ids[b]];
          ASSERT_TRUE(la.empty() || lb.empty() || la.front().index == lb.front().index);
          const size_t n = std::min(la.size(), lb.size());
          size_t highest_same_term = 0;  // count of a prefix ending in equal terms
          for (size_t i = 0; i < n; ++i) {
            if (la[i].term == lb[i].term) highest_same_term = i + 1;
          }
          for (size_t i = 0; i < highest_same_term; ++i) {
            ASSERT_EQ(la[i], lb[i]) << "nodes " << ids[a] << " and " << ids[b] << " differ at "
                                    << la[i].index << " below a matching entry";
          }
          matched_entries += highest_same_term;
        }
      }
    });
    EXPECT_GT(matched_entries, 0u);
  }
}

// A leader only appends to its log while it leads a term.
TEST(RaftReplication, LeaderAppendOnlyDuringItsTerm) {
  for (uint64_t seed = 31; seed <= 36; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    PropertyRun run(seed, {.propose_below = 50, .propose_anywhere = true});
    std::map<uint64_t, std::pair<Term, std::vector<Entry>>> last_seen;  // by leader id
    size_t grown = 0;
    run.run(400, [&](TestCluster& c) {
      for (uint64_t id : c.ids()) {
        const Raft& r = c.raft(id);
        if (r.role() != Role::kLeader || run.is_down(id)) {
          last_seen.erase(id);
          continue;
        }
        auto now = r.log().all_entries();
        auto it = last_seen.find(id);
        if (it != last_seen.end() && it->second.first == r.term()) {
          const auto& before = it->second.second;
          ASSERT_GE(now.size(), before.size()) << "leader " << id << " shrank its log";
          for (size_t i = 0; i < before.size(); ++i) {
            ASSERT_EQ(now[i], before[i]) << "leader " << id << " rewrote " << before[i].index;
          }
          if (now.size() > before.size()) ++grown;
        }
        last_seen[id] = {r.term(), std::move(now)};
      }
    });
    EXPECT_GT(grown, 0u);
  }
}

// "If a server has applied a log entry at a given index to its state machine,
// no other server will ever apply a different log entry for the same index."
TEST(RaftReplication, StateMachineSafetyAppliedEntriesAgree) {
  for (uint64_t seed = 41; seed <= 46; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    PropertyRun run(seed, {.propose_below = 50, .propose_anywhere = true});
    std::map<LogIndex, Entry> applied_anywhere;
    run.run(400, [&](TestCluster& c) {
      for (uint64_t id : c.ids()) {
        const auto& applied = c.peer(id).applied;
        for (size_t i = 0; i < applied.size(); ++i) {
          if (i > 0) {
            ASSERT_LT(applied[i - 1].index, applied[i].index) << "applied out of order";
          }
          auto [it, inserted] = applied_anywhere.emplace(applied[i].index, applied[i]);
          if (!inserted) {
            ASSERT_EQ(it->second, applied[i])
                << "node " << id << " applied a different entry at " << applied[i].index;
          }
        }
      }
    });
    EXPECT_GT(applied_anywhere.size(), 10u);
  }
}

}  // namespace
}  // namespace synod::raft::testing
