// Elections: the rules of Figure 2 for all servers, voters and candidates,
// randomized timeouts, PreVote (thesis §9.6), CheckQuorum and leader
// stickiness, and the Figure 3 properties Election Safety and Leader
// Completeness. White-box tests drive one RawNode with hand-made messages
// (the test plays every peer); scenario tests use the deterministic cluster.
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



// ---------------------------------------------------------------------------
// All servers.

// Figure 2, all servers: "If RPC request or response contains term T >
// currentTerm: set currentTerm = T, convert to follower."
TEST(RaftElection, HigherTermInAnyMessageMakesFollower) {
  const std::vector<MessageType> types = {
      MessageType::kApp,     MessageType::kHeartbeat,     MessageType::kVote,
      MessageType::kAppResp, MessageType::kHeartbeatResp, MessageType::kVoteResp,
  };
  const std::vector<Role> starting = {Role::kFollower, Role::kCandidate, Role::kLeader};
  for (Role start : starting) {
    for (MessageType type : types) {
      SCOPED_TRACE(::testing::Message()
                   << role_name(start) << " receives " << message_type_name(type));
      Solo s({.tweak = classic()});
      if (start == Role::kCandidate) {
        ASSERT_TRUE(s.node().campaign().ok());
        s.drain();
      } else if (start == Role::kLeader) {
        win_election(s);
      }
      ASSERT_EQ(s.raft().role(), start);
      ASSERT_LT(s.raft().term(), term(5));

      Message m = make_msg(type, 3, 1, 5);
      m.log_term = term(1);
      m.index = idx(1);
      if (type == MessageType::kVote) m.campaign = CampaignKind::kElection;
      if (type == MessageType::kVoteResp) m.reject = true;
      s.step(m);
      s.drain();

      EXPECT_EQ(s.raft().term(), term(5));
      EXPECT_EQ(s.raft().role(), Role::kFollower);
      if (type == MessageType::kApp || type == MessageType::kHeartbeat) {
        EXPECT_EQ(s.raft().leader(), nid(3));
      } else {
        EXPECT_EQ(s.raft().leader(), kNone);
      }
      // The new term is durable.
      EXPECT_EQ(s.storage().hard_state().term, term(5));
    }
  }
}

// ---------------------------------------------------------------------------
// RequestVote receiver.

// Figure 2, RequestVote receiver 1: "Reply false if term < currentTerm."
TEST(RaftElection, VoterRejectsCandidateWithStaleTerm) {
  for (bool pre_vote : {false, true}) {
    SCOPED_TRACE(pre_vote ? "pre_vote" : "no pre_vote");
    Solo s({.hard_state = {term(3), kNone, idx(1)},
            .tweak = [pre_vote](Config& c) { c.pre_vote = pre_vote; }});
    // A candidate with a longer log but an older term.
    s.step(vote_request(2, 1, 2, 2, 10));
    auto sent = s.drain();
    for (const Message& m : of_type(sent, MessageType::kVoteResp)) {
      EXPECT_TRUE(m.reject) << "granted a vote to a stale term";
    }
    EXPECT_EQ(s.raft().term(), term(3));
    EXPECT_EQ(s.raft().vote(), kNone);
    EXPECT_EQ(s.storage().hard_state().vote, kNone);
  }
}

// §5.4.1 up-to-date comparisons against a voter whose log ends at 3@2
// (entries 2@2, 3@2): shared by the vote and the pre-vote rule.
struct UpToDateCase {
  const char* name;
  uint64_t last_term;
  uint64_t last_index;
  bool want_grant;
};
const UpToDateCase kUpToDateCases[] = {
    {"older last term, longer log", 1, 9, false},
    {"same last term, shorter log", 2, 2, false},
    {"same last term, same length", 2, 3, true},
    {"same last term, longer log", 2, 4, true},
    {"newer last term, shorter log", 3, 2, true},
};

// §5.4.1: "If the logs have last entries with different terms, then the log
// with the later term is more up-to-date. If the logs end with the same term,
// then whichever log is longer is more up-to-date."
TEST(RaftElection, VoterRejectsCandidateWithStaleLog) {
  for (const UpToDateCase& c : kUpToDateCases) {
    SCOPED_TRACE(c.name);
    Solo s({.hard_state = {term(2), kNone, idx(1)}, .entries = terms_from(2, {2, 2})});
    s.step(vote_request(2, 1, 3, c.last_term, c.last_index));
    auto resps = of_type_to(s.drain(), MessageType::kVoteResp, 2);
    ASSERT_EQ(resps.size(), 1u);
    EXPECT_EQ(!resps[0].reject, c.want_grant);
    EXPECT_EQ(s.raft().term(), term(3));  // the higher term is adopted either way
    EXPECT_EQ(s.raft().vote(), c.want_grant ? nid(2) : kNone);
    EXPECT_EQ(s.storage().hard_state().vote, c.want_grant ? nid(2) : kNone);
  }
}

// Figure 2, RequestVote receiver 2: grant only "if votedFor is null or
// candidateId": at most one candidate per term.
TEST(RaftElection, VoterGrantsAtMostOneVotePerTerm) {
  struct Case {
    const char* name;
    uint64_t voted_for;
    bool want_grant;
  };
  const std::vector<Case> cases = {
      {"not voted yet", 0, true},
      {"already voted for this candidate (a retry)", 2, true},
      {"already voted for another", 3, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Solo s({.hard_state = {term(2), nid(c.voted_for), idx(1)}});
    s.step(vote_request(2, 1, 2, 1, 1));
    auto resps = of_type_to(s.drain(), MessageType::kVoteResp, 2);
    ASSERT_EQ(resps.size(), 1u);
    EXPECT_EQ(!resps[0].reject, c.want_grant);
    EXPECT_EQ(s.raft().term(), term(2));
    EXPECT_EQ(s.raft().vote(), c.voted_for == 0 ? nid(2) : nid(c.voted_for));
  }
}

// The same, in sequence on one voter: having voted for 2 in term 2, it refuses
// 3 in term 2, then may vote for 3 in term 3.
TEST(RaftElection, VoterGrantsOneVotePerTermInSequence) {
  Solo s({});
  struct Step {
    uint64_t candidate;
    uint64_t at_term;
    bool want_grant;
  };
  const std::vector<Step> steps = {{2, 2, true}, {3, 2, false}, {2, 2, true}, {3, 3, true},
                                   {2, 3, false}};
  for (const Step& st : steps) {
    SCOPED_TRACE(::testing::Message() << "candidate " << st.candidate << " term " << st.at_term);
    s.step(vote_request(st.candidate, 1, st.at_term, 1, 1));
    auto resps = of_type_to(s.drain(), MessageType::kVoteResp, st.candidate);
    ASSERT_EQ(resps.size(), 1u);
    EXPECT_EQ(!resps[0].reject, st.want_grant);
  }
}

// The vote is part of HardState: after a crash the voter still refuses a
// second candidate in the same term.
TEST(RaftElection, VoteIsPersistedAndSurvivesRestart) {
  Solo s({});
  s.step(vote_request(2, 1, 2, 1, 1));
  auto first = of_type_to(s.drain(), MessageType::kVoteResp, 2);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_FALSE(first[0].reject);
  EXPECT_EQ(s.storage().hard_state().term, term(2));
  EXPECT_EQ(s.storage().hard_state().vote, nid(2));

  s.start();  // crash and restart from storage
  EXPECT_EQ(s.raft().term(), term(2));
  EXPECT_EQ(s.raft().vote(), nid(2));
  s.step(vote_request(3, 1, 2, 1, 1));
  auto second = of_type_to(s.drain(), MessageType::kVoteResp, 3);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_TRUE(second[0].reject) << "voted twice in term 2 across a restart";
}

// A granted vote promises the vote is on disk: it travels in
// messages_after_persist of the Ready whose hard_state records it.
TEST(RaftElection, VoteResponseIsSentOnlyAfterPersist) {
  for (bool pre_vote : {false, true}) {
    SCOPED_TRACE(pre_vote ? "pre_vote" : "no pre_vote");
    Solo s({.tweak = [pre_vote](Config& c) { c.pre_vote = pre_vote; }});
    s.step(vote_request(2, 1, 2, 1, 1));
    ASSERT_TRUE(s.node().has_ready());
    Ready rd = s.take_ready();
    EXPECT_TRUE(of_type(rd.messages, MessageType::kVoteResp).empty())
        << "a vote was sent before it was persisted";
    auto resps = of_type_to(rd.messages_after_persist, MessageType::kVoteResp, 2);
    ASSERT_EQ(resps.size(), 1u);
    EXPECT_FALSE(resps[0].reject);
    ASSERT_TRUE(rd.hard_state.has_value());
    EXPECT_EQ(rd.hard_state->term, term(2));
    EXPECT_EQ(rd.hard_state->vote, nid(2));
    EXPECT_TRUE(rd.must_sync);
  }
}

// ---------------------------------------------------------------------------
// Candidates.

// Figure 2, candidates: "increment currentTerm, vote for self, send
// RequestVote RPCs to all other servers" carrying the last log (term, index).
TEST(RaftElection, CandidateIncrementsTermVotesForSelfAndRequestsVotes) {
  Solo s({.hard_state = {term(1), kNone, idx(1)},
          .entries = terms_from(2, {1, 1}),
          .tweak = classic()});
  ASSERT_TRUE(s.node().campaign().ok());
  EXPECT_EQ(s.raft().role(), Role::kCandidate);
  EXPECT_EQ(s.raft().term(), term(2));
  EXPECT_EQ(s.raft().vote(), nid(1));
  auto sent = s.drain();
  EXPECT_EQ(s.storage().hard_state().term, term(2));
  EXPECT_EQ(s.storage().hard_state().vote, nid(1));
  for (uint64_t peer : {2u, 3u}) {
    auto votes = of_type_to(sent, MessageType::kVote, peer);
    ASSERT_EQ(votes.size(), 1u) << "to " << peer;
    EXPECT_EQ(votes[0].term, term(2));
    EXPECT_EQ(votes[0].log_term, term(1));
    EXPECT_EQ(votes[0].index, idx(3));
  }
}

// Figure 2, candidates: "If votes received from majority of servers: become
// leader"; a candidate that cannot win any more steps down.
TEST(RaftElection, CandidateBecomesLeaderOnlyWithMajority) {
  struct Case {
    const char* name;
    std::vector<uint64_t> voters;
    std::vector<uint64_t> grants;
    std::vector<uint64_t> rejects;
    Role want;
  };
  const std::vector<Case> cases = {
      {"3 voters, 1 grant", {1, 2, 3}, {2}, {}, Role::kLeader},
      {"3 voters, all reject", {1, 2, 3}, {}, {2, 3}, Role::kFollower},
      {"3 voters, no answer", {1, 2, 3}, {}, {}, Role::kCandidate},
      {"5 voters, 1 grant", {1, 2, 3, 4, 5}, {2}, {}, Role::kCandidate},
      {"5 voters, 1 grant 2 rejects", {1, 2, 3, 4, 5}, {2}, {3, 4}, Role::kCandidate},
      {"5 voters, 2 grants", {1, 2, 3, 4, 5}, {2, 3}, {}, Role::kLeader},
      {"5 voters, 2 rejects then 2 grants", {1, 2, 3, 4, 5}, {4, 5}, {2, 3}, Role::kLeader},
      {"5 voters, 3 rejects", {1, 2, 3, 4, 5}, {2}, {3, 4, 5}, Role::kFollower},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Solo s({.voters = c.voters, .tweak = classic()});
    ASSERT_TRUE(s.node().campaign().ok());
    s.drain();
    for (uint64_t r : c.rejects) s.step(vote_response(r, 1, 2, false));
    for (uint64_t g : c.grants) s.step(vote_response(g, 1, 2, true));
    s.drain();
    EXPECT_EQ(s.raft().role(), c.want);
    EXPECT_EQ(s.raft().term(), term(2));
    if (c.want == Role::kLeader) {
      EXPECT_EQ(s.raft().leader(), nid(1));
    }
  }
}

// Figure 2, candidates: "If AppendEntries RPC received from new leader:
// convert to follower" (same term: someone else won).
TEST(RaftElection, CandidateStepsDownOnAppendFromLeaderOfSameTerm) {
  for (MessageType type : {MessageType::kApp, MessageType::kHeartbeat}) {
    SCOPED_TRACE(message_type_name(type));
    Solo s({.tweak = classic()});
    ASSERT_TRUE(s.node().campaign().ok());
    s.drain();
    ASSERT_EQ(s.raft().role(), Role::kCandidate);
    Message m = make_msg(type, 3, 1, 2);
    m.log_term = term(1);
    m.index = idx(1);
    m.commit = idx(1);
    s.step(m);
    s.drain();
    EXPECT_EQ(s.raft().role(), Role::kFollower);
    EXPECT_EQ(s.raft().term(), term(2));
    EXPECT_EQ(s.raft().leader(), nid(3));
    EXPECT_EQ(s.raft().vote(), nid(1)) << "the vote of term 2 must not be forgotten";
  }
}

// Figure 2, candidates: "If election timeout elapses: start new election".
TEST(RaftElection, CandidateStartsNewElectionAfterTimeout) {
  Solo s({.tweak = classic()});
  ASSERT_TRUE(s.node().campaign().ok());
  s.drain();
  ASSERT_EQ(s.raft().term(), term(2));
  const int timeout = s.raft().randomized_election_timeout();
  for (int i = 1; i < timeout; ++i) {
    s.node().tick();
    ASSERT_EQ(s.raft().term(), term(2)) << "re-campaigned after " << i << " of " << timeout;
  }
  s.node().tick();
  EXPECT_EQ(s.raft().role(), Role::kCandidate);
  EXPECT_EQ(s.raft().term(), term(3));
  auto sent = s.drain();
  auto votes = of_type(sent, MessageType::kVote);
  ASSERT_EQ(votes.size(), 2u);
  for (const Message& m : votes) EXPECT_EQ(m.term, term(3));
}

// Figure 2, followers: "If election timeout elapses without receiving
// AppendEntries from current leader or granting vote to candidate: convert
// to candidate" (to pre-candidate under PreVote).
TEST(RaftElection, FollowerCampaignsOnlyAfterElectionTimeout) {
  struct Case {
    bool pre_vote;
    Role want_role;
    MessageType want_request;
    uint64_t want_term;  // the node's own term afterwards
  };
  const std::vector<Case> cases = {
      {false, Role::kCandidate, MessageType::kVote, 2},
      {true, Role::kPreCandidate, MessageType::kPreVote, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pre_vote ? "pre_vote" : "no pre_vote");
    Solo s({.tweak = [&](Config& cfg) { cfg.pre_vote = c.pre_vote; }});
    const int timeout = s.raft().randomized_election_timeout();
    for (int i = 1; i < timeout; ++i) s.node().tick();
    EXPECT_EQ(s.raft().role(), Role::kFollower);
    EXPECT_TRUE(of_type(s.drain(), c.want_request).empty());
    s.node().tick();
    EXPECT_EQ(s.raft().role(), c.want_role);
    EXPECT_EQ(s.raft().term(), term(c.want_term));
    EXPECT_EQ(of_type(s.drain(), c.want_request).size(), 2u);
  }
}

// Hearing from the leader restarts the follower's election timer.
TEST(RaftElection, FollowerHearingFromLeaderDoesNotCampaign) {
  Solo s({.tweak = classic()});
  for (int round = 0; round < 5; ++round) {
    const int timeout = s.raft().randomized_election_timeout();
    for (int i = 1; i < timeout; ++i) s.node().tick();
    Message hb = make_msg(MessageType::kHeartbeat, 2, 1, 2);
    hb.commit = idx(1);
    s.step(hb);
    s.drain();
  }
  EXPECT_EQ(s.raft().role(), Role::kFollower);
  EXPECT_EQ(s.raft().term(), term(2));
  EXPECT_EQ(s.raft().leader(), nid(2));
}

// ---------------------------------------------------------------------------
// Leaders.

// Figure 2, leaders: "Upon election: send initial empty AppendEntries RPCs
// (heartbeat) to each server" — to every peer, including ones that did not
// vote, at the new term.
TEST(RaftElection, LeaderAnnouncesItselfToEveryPeerOnElection) {
  Solo s({.voters = {1, 2, 3, 4, 5}, .tweak = classic()});
  ASSERT_TRUE(s.node().campaign().ok());
  s.drain();
  s.step(vote_response(2, 1, 2, true));
  s.step(vote_response(3, 1, 2, true));
  auto sent = s.drain();
  ASSERT_EQ(s.raft().role(), Role::kLeader);
  for (uint64_t peer : {2u, 3u, 4u, 5u}) {
    auto apps = of_type_to(sent, MessageType::kApp, peer);
    auto hbs = of_type_to(sent, MessageType::kHeartbeat, peer);
    EXPECT_GE(apps.size() + hbs.size(), 1u) << "nothing sent to " << peer;
    for (const Message& m : apps) EXPECT_EQ(m.term, term(2));
    for (const Message& m : hbs) EXPECT_EQ(m.term, term(2));
  }
}

// Figure 2, leaders: "repeat [heartbeats] during idle periods to prevent
// election timeouts" — every heartbeat_tick ticks, to every peer.
TEST(RaftElection, LeaderHeartbeatsEveryHeartbeatTick) {
  struct Case {
    int heartbeat_tick;
    int election_tick;
  };
  for (const Case& c : std::vector<Case>{{1, 10}, {3, 20}, {5, 30}}) {
    SCOPED_TRACE(::testing::Message() << "heartbeat_tick " << c.heartbeat_tick);
    Solo s({.tweak = classic([&](Config& cfg) {
              cfg.heartbeat_tick = c.heartbeat_tick;
              cfg.election_tick = c.election_tick;
            })});
    win_election(s);
    for (int tick = 1; tick <= 3 * c.heartbeat_tick; ++tick) {
      s.node().tick();
      auto hbs = of_type(s.drain(), MessageType::kHeartbeat);
      const size_t want = tick % c.heartbeat_tick == 0 ? 2 : 0;
      EXPECT_EQ(hbs.size(), want) << "at tick " << tick;
      for (const Message& m : hbs) EXPECT_EQ(m.term, term(2));
    }
    EXPECT_EQ(s.raft().role(), Role::kLeader);
  }
}

// ---------------------------------------------------------------------------
// Randomized election timeouts (§5.2).

TEST(RaftElection, RandomizedElectionTimeoutIsInRangeAndVariesBySeed) {
  for (int election_tick : {3, 10, 25}) {
    SCOPED_TRACE(election_tick);
    std::set<int> seen;
    for (uint64_t seed = 1; seed <= 100; ++seed) {
      Solo s({.seed = seed, .tweak = [&](Config& c) { c.election_tick = election_tick; }});
      const int timeout = s.raft().randomized_election_timeout();
      EXPECT_GE(timeout, election_tick);
      EXPECT_LT(timeout, 2 * election_tick);
      seen.insert(timeout);
    }
    // Draws from seeds must spread over the range, or split votes repeat.
    EXPECT_GE(seen.size(), static_cast<size_t>(std::min(election_tick, 3)));
  }
}

// Every new term draws the timeout afresh, still within range.
TEST(RaftElection, RandomizedElectionTimeoutIsRedrawnEachTerm) {
  Solo s({.tweak = classic()});
  std::set<int> seen;
  for (uint64_t t = 2; t <= 40; ++t) {
    Message hb = make_msg(MessageType::kHeartbeat, 2, 1, t);
    hb.commit = idx(1);
    s.step(hb);
    s.drain();
    ASSERT_EQ(s.raft().term(), term(t));
    const int timeout = s.raft().randomized_election_timeout();
    EXPECT_GE(timeout, 10);
    EXPECT_LT(timeout, 20);
    seen.insert(timeout);
  }
  EXPECT_GE(seen.size(), 3u);
}

TEST(RaftElection, RandomizedElectionTimeoutDiffersAcrossNodes) {
  TestCluster c({1, 2, 3, 4, 5});
  std::set<int> seen;
  for (uint64_t id : c.ids()) seen.insert(c.raft(id).randomized_election_timeout());
  EXPECT_GE(seen.size(), 2u);
}

// With randomized timeouts and no outside help, ticking alone elects exactly
// one leader, also after the leader fails.
TEST(RaftElection, TimeoutsAloneElectOneLeader) {
  for (size_t size : {3u, 5u}) {
    SCOPED_TRACE(size);
    std::vector<uint64_t> ids;
    for (uint64_t i = 1; i <= size; ++i) ids.push_back(i);
    TestCluster c(ids);
    for (int i = 0; i < 200 && c.leader() == 0; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    const uint64_t first = c.leader();
    ASSERT_NE(first, 0u);
    c.crash(first);
    for (int i = 0; i < 400 && c.leader() == 0; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    const uint64_t second = c.leader();
    ASSERT_NE(second, 0u);
    EXPECT_NE(second, first);
    EXPECT_GT(c.raft(second).term(), c.raft(first).term());
  }
}

// ---------------------------------------------------------------------------
// PreVote (thesis §9.6).

TEST(RaftPreVote, PreCandidateDoesNotIncrementTerm) {
  Solo s({.entries = terms_from(2, {1})});
  ASSERT_TRUE(s.node().campaign().ok());
  EXPECT_EQ(s.raft().role(), Role::kPreCandidate);
  EXPECT_EQ(s.raft().term(), term(1));
  EXPECT_EQ(s.raft().vote(), kNone);
  auto sent = s.drain();
  EXPECT_EQ(s.storage().hard_state().term, term(1));
  EXPECT_EQ(s.storage().hard_state().vote, kNone);
  EXPECT_TRUE(of_type(sent, MessageType::kVote).empty());
  for (uint64_t peer : {2u, 3u}) {
    auto pre = of_type_to(sent, MessageType::kPreVote, peer);
    ASSERT_EQ(pre.size(), 1u);
    // It asks about the term it would campaign in.
    EXPECT_EQ(pre[0].term, term(2));
    EXPECT_EQ(pre[0].log_term, term(1));
    EXPECT_EQ(pre[0].index, idx(2));
  }
}

TEST(RaftPreVote, PreCandidateCampaignsOnlyAfterPreVoteQuorum) {
  struct Case {
    const char* name;
    std::vector<uint64_t> grants;
    std::vector<uint64_t> rejects;
    Role want_role;
    uint64_t want_term;
  };
  const std::vector<Case> cases = {
      {"quorum of pre-votes", {2}, {}, Role::kCandidate, 2},
      {"no answer", {}, {}, Role::kPreCandidate, 1},
      {"rejected by all", {}, {2, 3}, Role::kFollower, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Solo s({});
    ASSERT_TRUE(s.node().campaign().ok());
    s.drain();
    // Rejections carry the voter's own (unchanged) term.
    for (uint64_t r : c.rejects) s.step(vote_response(r, 1, 1, false, /*pre=*/true));
    for (uint64_t g : c.grants) s.step(vote_response(g, 1, 2, true, /*pre=*/true));
    auto sent = s.drain();
    EXPECT_EQ(s.raft().role(), c.want_role);
    EXPECT_EQ(s.raft().term(), term(c.want_term));
    EXPECT_EQ(of_type(sent, MessageType::kVote).size(), c.want_role == Role::kCandidate ? 2u : 0u);
  }
}

// A pre-vote is granted on the same log comparison as a vote, and changes
// nothing on the voter (no term, no vote).
TEST(RaftPreVote, PreVoteGrantedOnlyToUpToDateLog) {
  for (const UpToDateCase& c : kUpToDateCases) {
    SCOPED_TRACE(c.name);
    Solo s({.hard_state = {term(2), kNone, idx(1)}, .entries = terms_from(2, {2, 2})});
    s.step(vote_request(2, 1, 3, c.last_term, c.last_index, /*pre=*/true));
    auto sent = s.drain();
    auto resps = of_type_to(sent, MessageType::kPreVoteResp, 2);
    ASSERT_EQ(resps.size(), 1u);
    EXPECT_EQ(!resps[0].reject, c.want_grant);
    EXPECT_TRUE(of_type(sent, MessageType::kVoteResp).empty());
    EXPECT_EQ(s.raft().term(), term(2));
    EXPECT_EQ(s.raft().vote(), kNone);
    EXPECT_EQ(s.raft().role(), Role::kFollower);
  }
}

// The reason for PreVote: a node cut off from the group keeps timing out, but
// without PreVote each timeout bumps its term, and on rejoining it would
// depose a healthy leader. With PreVote it rejoins quietly.
TEST(RaftPreVote, RejoiningPartitionedNodeDoesNotDisruptLeader) {
  for (bool pre_vote : {true, false}) {
    SCOPED_TRACE(pre_vote ? "pre_vote" : "no pre_vote (control)");
    TestCluster c({1, 2, 3}, [pre_vote](Config& cfg) { cfg.pre_vote = pre_vote; });
    c.elect(1);
    ASSERT_EQ(c.leader(), 1u);
    const Term leader_term = c.raft(1).term();
    c.propose(1, "x");

    c.isolate(3);
    for (int i = 0; i < 100; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    ASSERT_EQ(c.leader(), 1u);
    if (!pre_vote) {
      // The control: without PreVote the isolated node did bump its term.
      EXPECT_GT(c.raft(3).term(), leader_term);
      continue;
    }
    EXPECT_EQ(c.raft(3).term(), leader_term) << "a pre-candidate raised its term";

    c.heal();
    for (int i = 0; i < 50; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    EXPECT_EQ(c.leader(), 1u);
    for (uint64_t id : c.ids()) {
      EXPECT_EQ(c.raft(id).term(), leader_term) << "node " << id;
      EXPECT_EQ(c.raft(id).leader(), nid(1)) << "node " << id;
    }
    c.propose(1, "y");
    EXPECT_EQ(c.peer(3).applied.size(), 2u);
  }
}

// ---------------------------------------------------------------------------
// CheckQuorum (thesis §6.2).

TEST(RaftCheckQuorum, LeaderWithoutQuorumStepsDown) {
  for (bool check_quorum : {true, false}) {
    SCOPED_TRACE(check_quorum ? "check_quorum" : "no check_quorum");
    TestCluster c({1, 2, 3}, [check_quorum](Config& cfg) { cfg.check_quorum = check_quorum; });
    c.elect(1);
    ASSERT_EQ(c.leader(), 1u);
    const int election_tick = c.raft(1).config().election_tick;
    // A leader that hears from its followers stays.
    for (int i = 0; i < 3 * election_tick; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    ASSERT_EQ(c.raft(1).role(), Role::kLeader);

    c.isolate(1);
    for (int i = 0; i < 2 * election_tick + 1; ++i) {
      c.tick(1);
      c.deliver_all();
    }
    if (check_quorum) {
      EXPECT_NE(c.raft(1).role(), Role::kLeader) << "kept leading without a quorum";
    } else {
      EXPECT_EQ(c.raft(1).role(), Role::kLeader);
    }
  }
}

// A follower that heard from its leader within the election timeout ignores
// vote requests (it believes the leader is alive), so a node that merely
// missed some heartbeats cannot force an election.
TEST(RaftCheckQuorum, FollowerIgnoresVoteRequestsWithinLeaderLease) {
  for (bool check_quorum : {true, false}) {
    SCOPED_TRACE(check_quorum ? "check_quorum" : "no check_quorum");
    TestCluster c({1, 2, 3}, [check_quorum](Config& cfg) {
      cfg.check_quorum = check_quorum;
      cfg.pre_vote = false;
    });
    c.elect(1);
    ASSERT_EQ(c.leader(), 1u);
    c.propose(1, "x");
    const Term t = c.raft(1).term();
    const RaftLog& log = c.raft(3).log();
    // An up-to-date candidate 3 at a higher term.
    (void)c.node(2).step(vote_request(3, 2, t.value() + 1, log.last_term().value(),
                                      log.last_index().value()));
    c.process_ready(2);
    if (check_quorum) {
      EXPECT_EQ(c.raft(2).term(), t);
      EXPECT_EQ(c.raft(2).leader(), nid(1));
      EXPECT_NE(c.raft(2).vote(), nid(3));
    } else {
      EXPECT_EQ(c.raft(2).term(), t + 1);
      EXPECT_EQ(c.raft(2).vote(), nid(3));
    }
  }
}

// Leader stickiness: a node that merely stops hearing heartbeats (its link
// from the leader is lossy) times out and asks for votes. Under CheckQuorum
// the others, who still hear the leader, refuse, and the leader stays; without
// it (the control) PreVote alone does not stop the disruption.
TEST(RaftCheckQuorum, LeaderStickinessSurvivesAnEagerCandidate) {
  for (bool check_quorum : {true, false}) {
    SCOPED_TRACE(check_quorum ? "check_quorum" : "no check_quorum (control)");
    TestCluster c({1, 2, 3}, [check_quorum](Config& cfg) { cfg.check_quorum = check_quorum; });
    c.elect(1);
    ASSERT_EQ(c.leader(), 1u);
    const Term t = c.raft(1).term();
    c.set_drop_filter([](const Message& m) {
      return m.from == nid(1) && m.to == nid(3) &&
             (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp);
    });
    for (int i = 0; i < 60; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    if (check_quorum) {
      EXPECT_EQ(c.leader(), 1u);
      EXPECT_EQ(c.raft(1).term(), t);
      EXPECT_EQ(c.raft(2).term(), t);
    } else {
      EXPECT_GT(c.raft(2).term(), t);
    }
  }
}

// ---------------------------------------------------------------------------
// Figure 3: Election Safety and Leader Completeness, checked after every step
// of runs with random partitions, crashes and proposals.


// "At most one leader can be elected in a given term."
TEST(RaftElection, ElectionSafetyAtMostOneLeaderPerTerm) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    PropertyRun run(seed);
    std::map<Term, uint64_t> leader_of_term;
    size_t leaders_seen = 0;
    run.run(500, [&](TestCluster& c) {
      for (uint64_t id : c.ids()) {
        const Raft& r = c.raft(id);
        if (r.role() != Role::kLeader) continue;
        auto [it, inserted] = leader_of_term.emplace(r.term(), id);
        if (inserted) ++leaders_seen;
        ASSERT_EQ(it->second, id) << "two leaders in term " << r.term();
      }
    });
    EXPECT_GE(leaders_seen, 5u) << "the run elected too few leaders to test anything";
  }
}

// "If a log entry is committed in a given term, then that entry will be
// present in the logs of the leaders for all higher-numbered terms." An entry
// seen committed by a node at term u was committed in a term ≤ u, so every
// leader of a term > u must hold it.
TEST(RaftElection, LeaderCompletenessLeadersHoldEarlierCommittedEntries) {
  for (uint64_t seed = 11; seed <= 18; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    PropertyRun run(seed);
    struct Committed {
      Term entry_term;
      Term committed_by;  // an upper bound on the term it was committed in
    };
    std::map<LogIndex, Committed> committed;
    size_t checks = 0;
    run.run(500, [&](TestCluster& c) {
      for (uint64_t id : c.ids()) {
        if (run.is_down(id)) continue;
        const Raft& r = c.raft(id);
        const RaftLog& log = r.log();
        for (LogIndex i = log.first_index(); i <= log.committed(); ++i) {
          const Term t = log.term_or_zero(i);
          auto [it, inserted] = committed.emplace(i, Committed{t, r.term()});
          if (!inserted) {
            // State Machine Safety on the way: one committed entry per index.
            ASSERT_EQ(it->second.entry_term, t) << "index " << i << " committed twice";
            it->second.committed_by = std::min(it->second.committed_by, r.term());
          }
        }
      }
      for (uint64_t id : c.ids()) {
        if (run.is_down(id)) continue;
        const Raft& r = c.raft(id);
        if (r.role() != Role::kLeader) continue;
        for (const auto& [i, entry] : committed) {
          if (entry.committed_by >= r.term() || i < r.log().first_index()) continue;
          ++checks;
          ASSERT_EQ(r.log().term_or_zero(i), entry.entry_term)
              << "leader " << id << " of term " << r.term() << " lacks committed index " << i;
        }
      }
    });
    EXPECT_GT(checks, 0u);
  }
}

// Leader Completeness in one small story: a node that missed committed
// entries cannot win, an up-to-date one can.
TEST(RaftElection, LeaderCompletenessStaleNodeCannotWin) {
  struct Case {
    uint64_t candidate;
    bool want_win;
  };
  for (const Case& cs : std::vector<Case>{{3, false}, {2, true}}) {
    SCOPED_TRACE(::testing::Message() << "candidate " << cs.candidate);
    TestCluster c({1, 2, 3}, classic());
    c.elect(1);
    c.isolate(3);
    c.propose(1, "a");
    c.propose(1, "b");
    ASSERT_EQ(c.peer(2).applied.size(), 2u);
    ASSERT_EQ(c.peer(3).applied.size(), 0u);
    c.heal();
    ASSERT_TRUE(c.node(cs.candidate).campaign().ok());
    c.deliver_all();
    EXPECT_EQ(c.raft(cs.candidate).role() == Role::kLeader, cs.want_win);

    // Whoever leads next holds both committed entries, and so does everyone.
    for (int i = 0; i < 200 && c.leader() == 0; ++i) {
      c.tick_all();
      c.deliver_all();
    }
    const uint64_t lead = c.leader();
    ASSERT_NE(lead, 0u);
    if (!cs.want_win) {
      EXPECT_NE(lead, 3u);
    }
    c.propose(lead, "c");
    for (uint64_t id : c.ids()) {
      ASSERT_EQ(c.peer(id).applied.size(), 3u) << "node " << id;
      EXPECT_EQ(c.peer(id).applied[0].data.str(), "a");
      EXPECT_EQ(c.peer(id).applied[1].data.str(), "b");
      EXPECT_EQ(c.peer(id).applied[2].data.str(), "c");
    }
  }
}

}  // namespace
}  // namespace synod::raft::testing
