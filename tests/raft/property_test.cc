// Pure pieces of the core, by table and by property: quorum arithmetic
// (majority and joint), the in-flight window, Progress state transitions, the
// conf change codec and the seeded generator.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/rng.h"
#include "raft/confchange.h"
#include "raft/progress.h"
#include "raft/quorum.h"
#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

constexpr uint64_t kMaxIndex = std::numeric_limits<uint64_t>::max();

MajorityConfig majority(std::initializer_list<uint64_t> ids) {
  std::set<NodeId> voters;
  for (uint64_t id : ids) voters.insert(nid(id));
  return MajorityConfig(std::move(voters));
}

// Acks by id; ids missing from the map have not acknowledged anything.
AckedIndexFn acks_from(const std::map<uint64_t, uint64_t>& acks) {
  return [acks](NodeId id) -> std::optional<LogIndex> {
    auto it = acks.find(id.value());
    if (it == acks.end()) return std::nullopt;
    return idx(it->second);
  };
}

std::map<NodeId, bool> votes_from(const std::map<uint64_t, bool>& votes) {
  std::map<NodeId, bool> out;
  for (const auto& [id, granted] : votes) out[nid(id)] = granted;
  return out;
}

// ---------------------------------------------------------------------------
// Majority and joint configurations, by table

TEST(RaftQuorum, MajorityCommittedIndexTable) {
  struct Case {
    MajorityConfig config;
    std::map<uint64_t, uint64_t> acks;
    uint64_t want;
  };
  const std::vector<Case> cases = {
      // An empty config agrees to everything.
      {majority({}), {}, kMaxIndex},
      {majority({1}), {}, 0},
      {majority({1}), {{1, 5}}, 5},
      {majority({1, 2}), {{1, 5}}, 0},
      {majority({1, 2}), {{1, 5}, {2, 3}}, 3},
      {majority({1, 2, 3}), {{1, 5}}, 0},
      {majority({1, 2, 3}), {{1, 5}, {2, 3}}, 3},
      {majority({1, 2, 3}), {{1, 5}, {2, 3}, {3, 1}}, 3},
      {majority({1, 2, 3}), {{1, 7}, {2, 7}, {3, 7}}, 7},
      // Acks from non-voters do not count.
      {majority({1, 2, 3}), {{1, 9}, {4, 9}, {5, 9}}, 0},
      // Even sizes need n/2 + 1.
      {majority({1, 2, 3, 4}), {{1, 5}, {2, 4}, {3, 3}, {4, 2}}, 3},
      {majority({1, 2, 3, 4}), {{1, 5}, {2, 5}}, 0},
      {majority({1, 2, 3, 4}), {{1, 5}, {2, 5}, {3, 1}}, 1},
      {majority({1, 2, 3, 4, 5}), {{1, 9}, {2, 8}, {3, 7}, {4, 1}, {5, 1}}, 7},
      {majority({1, 2, 3, 4, 5, 6}), {{1, 9}, {2, 8}, {3, 7}, {4, 6}, {5, 1}}, 6},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(cases[i].config.committed_index(acks_from(cases[i].acks)), idx(cases[i].want))
        << "case " << i;
  }
}

TEST(RaftQuorum, MajorityVoteResultTable) {
  struct Case {
    MajorityConfig config;
    std::map<uint64_t, bool> votes;
    VoteResult want;
  };
  const std::vector<Case> cases = {
      {majority({}), {}, VoteResult::kWon},
      {majority({1}), {}, VoteResult::kPending},
      {majority({1}), {{1, true}}, VoteResult::kWon},
      {majority({1}), {{1, false}}, VoteResult::kLost},
      {majority({1, 2}), {{1, true}}, VoteResult::kPending},
      {majority({1, 2}), {{1, true}, {2, false}}, VoteResult::kLost},
      {majority({1, 2}), {{1, true}, {2, true}}, VoteResult::kWon},
      {majority({1, 2, 3}), {{1, true}}, VoteResult::kPending},
      {majority({1, 2, 3}), {{1, true}, {2, false}}, VoteResult::kPending},
      {majority({1, 2, 3}), {{1, false}, {2, false}}, VoteResult::kLost},
      {majority({1, 2, 3}), {{1, true}, {3, true}}, VoteResult::kWon},
      // Votes of non-voters are ignored.
      {majority({1, 2, 3}), {{1, true}, {4, true}, {5, true}}, VoteResult::kPending},
      {majority({1, 2, 3, 4}), {{1, true}, {2, true}}, VoteResult::kPending},
      {majority({1, 2, 3, 4}), {{1, true}, {2, true}, {3, false}}, VoteResult::kPending},
      {majority({1, 2, 3, 4}), {{1, true}, {2, true}, {3, false}, {4, false}}, VoteResult::kLost},
      {majority({1, 2, 3, 4}), {{1, true}, {2, true}, {4, true}}, VoteResult::kWon},
      {majority({1, 2, 3, 4, 5}), {{1, false}, {2, false}, {3, false}}, VoteResult::kLost},
      {majority({1, 2, 3, 4, 5}), {{1, true}, {2, true}, {3, false}, {4, false}},
       VoteResult::kPending},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(cases[i].config.vote_result(votes_from(cases[i].votes)), cases[i].want)
        << "case " << i;
  }
}

TEST(RaftQuorum, JointCommittedIndexIsTheMinimumOfBothHalves) {
  JointConfig joint;
  joint.incoming = majority({1, 2, 3});
  joint.outgoing = majority({3, 4, 5});
  ASSERT_TRUE(joint.is_joint());
  EXPECT_EQ(joint.ids().size(), 5u);
  // Incoming agrees on 8, outgoing only on 2.
  auto acks = acks_from({{1, 9}, {2, 8}, {3, 2}, {4, 1}, {5, 0}});
  EXPECT_EQ(joint.incoming.committed_index(acks), idx(8));
  EXPECT_EQ(joint.outgoing.committed_index(acks), idx(1));
  EXPECT_EQ(joint.committed_index(acks), idx(1));
  acks = acks_from({{1, 1}, {2, 1}, {3, 6}, {4, 7}, {5, 7}});
  EXPECT_EQ(joint.committed_index(acks), idx(1));
  acks = acks_from({{1, 4}, {2, 4}, {3, 4}, {4, 4}, {5, 4}});
  EXPECT_EQ(joint.committed_index(acks), idx(4));
  // Not joint: the incoming half alone decides.
  JointConfig simple;
  simple.incoming = majority({1, 2, 3});
  EXPECT_FALSE(simple.is_joint());
  EXPECT_EQ(simple.committed_index(acks_from({{1, 5}, {2, 4}})), idx(4));
}

TEST(RaftQuorum, JointVoteNeedsBothHalves) {
  JointConfig joint;
  joint.incoming = majority({1, 2, 3});
  joint.outgoing = majority({3, 4, 5});
  // Won in the incoming half only.
  EXPECT_EQ(joint.vote_result(votes_from({{1, true}, {2, true}})), VoteResult::kPending);
  // Won in both (3 is in both halves).
  EXPECT_EQ(joint.vote_result(votes_from({{1, true}, {3, true}, {4, true}})), VoteResult::kWon);
  // Lost in one half is lost, even if the other is won.
  EXPECT_EQ(joint.vote_result(votes_from({{1, true}, {2, true}, {4, false}, {5, false}})),
            VoteResult::kLost);
  EXPECT_EQ(joint.vote_result(votes_from({})), VoteResult::kPending);
}

// ---------------------------------------------------------------------------
// Inflights and Progress

TEST(RaftInflights, FullAtTheCountCapAndFreedUpToAnIndex) {
  Inflights window(3, 0);
  EXPECT_FALSE(window.full());
  window.add(idx(10), 100);
  window.add(idx(20), 100);
  EXPECT_FALSE(window.full());
  window.add(idx(30), 100);
  EXPECT_TRUE(window.full());
  EXPECT_EQ(window.count(), 3u);
  EXPECT_EQ(window.bytes(), 300u);
  // Freeing below the first flight frees nothing.
  window.free_le(idx(9));
  EXPECT_EQ(window.count(), 3u);
  // An ack in the middle of a flight frees only flights wholly acknowledged.
  window.free_le(idx(25));
  EXPECT_EQ(window.count(), 1u);
  EXPECT_EQ(window.bytes(), 100u);
  EXPECT_FALSE(window.full());
  window.add(idx(40), 1);
  window.add(idx(50), 1);
  EXPECT_TRUE(window.full());
  window.free_le(idx(1000));
  EXPECT_EQ(window.count(), 0u);
  EXPECT_EQ(window.bytes(), 0u);
  window.add(idx(60), 5);
  window.reset();
  EXPECT_EQ(window.count(), 0u);
  EXPECT_EQ(window.bytes(), 0u);
}

TEST(RaftInflights, FullAtTheByteCap) {
  Inflights window(100, 1000);
  window.add(idx(1), 600);
  EXPECT_FALSE(window.full());
  window.add(idx(2), 400);
  EXPECT_TRUE(window.full()) << "1000 of 1000 bytes in flight";
  window.free_le(idx(1));
  EXPECT_FALSE(window.full());
  EXPECT_EQ(window.bytes(), 400u);
  window.add(idx(3), 5000);  // one oversized flight fills the window alone
  EXPECT_TRUE(window.full());
}

TEST(RaftProgress, ProbeReplicateSnapshotTransitions) {
  Progress pr(idx(5), 4, 0);
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_FALSE(pr.is_paused());
  // A probe pauses until answered.
  pr.sent_entries(idx(7), 10);
  EXPECT_TRUE(pr.is_paused());
  // The answer moves match and next; then replicate.
  EXPECT_TRUE(pr.maybe_update(idx(7)));
  EXPECT_FALSE(pr.is_paused());
  EXPECT_EQ(pr.match, idx(7));
  EXPECT_EQ(pr.next, idx(8));
  EXPECT_FALSE(pr.maybe_update(idx(6))) << "a stale ack";
  pr.become_replicate();
  EXPECT_EQ(pr.state, ProgressState::kReplicate);
  EXPECT_EQ(pr.next, idx(8));

  // Replicate pipelines: next runs ahead, up to the window.
  for (uint64_t last = 10; last <= 40; last += 10) {
    EXPECT_FALSE(pr.is_paused());
    pr.sent_entries(idx(last), 1);
  }
  EXPECT_EQ(pr.next, idx(41));
  EXPECT_TRUE(pr.is_paused()) << "four in flight, window of four";
  EXPECT_TRUE(pr.maybe_update(idx(20)));
  pr.inflights.free_le(idx(20));
  EXPECT_EQ(pr.inflights.count(), 2u);
  // A rejection at or below match is stale in replicate.
  EXPECT_FALSE(pr.maybe_decr_to(idx(15), idx(15)));
  // A real one sends next back to match + 1.
  EXPECT_TRUE(pr.maybe_decr_to(idx(30), idx(25)));
  EXPECT_EQ(pr.next, idx(21));

  pr.become_probe();
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_EQ(pr.next, idx(21));
  EXPECT_EQ(pr.inflights.count(), 0u);
  // In probe, only the rejection of the last probe counts, and it follows
  // the hint.
  EXPECT_FALSE(pr.maybe_decr_to(idx(25), idx(22)));
  pr.next = idx(30);
  EXPECT_TRUE(pr.maybe_decr_to(idx(29), idx(24)));
  EXPECT_EQ(pr.next, idx(25));

  pr.become_snapshot(idx(100));
  EXPECT_EQ(pr.state, ProgressState::kSnapshot);
  EXPECT_EQ(pr.pending_snapshot, idx(100));
  EXPECT_TRUE(pr.is_paused()) << "no appends while a snapshot is in flight";
  // Leaving snapshot state probes just past the snapshot.
  pr.become_probe();
  EXPECT_EQ(pr.state, ProgressState::kProbe);
  EXPECT_EQ(pr.next, idx(101));
  EXPECT_EQ(pr.pending_snapshot, idx(0));
}

// ---------------------------------------------------------------------------
// Properties: quorum arithmetic

struct AckCase {
  std::vector<uint64_t> acks;   // per voter 1..n
  std::vector<bool> missing;    // voter i has not acknowledged
  std::map<uint64_t, uint64_t> map() const {
    std::map<uint64_t, uint64_t> out;
    for (size_t i = 0; i < acks.size(); ++i) {
      if (!missing[i]) out[i + 1] = acks[i];
    }
    return out;
  }
  MajorityConfig config() const {
    std::set<NodeId> voters;
    for (size_t i = 0; i < acks.size(); ++i) voters.insert(nid(i + 1));
    return MajorityConfig(std::move(voters));
  }
  std::vector<uint64_t> effective() const {
    std::vector<uint64_t> out;
    for (size_t i = 0; i < acks.size(); ++i) out.push_back(missing[i] ? 0 : acks[i]);
    return out;
  }
};

AckCase gen_ack_case(size_t max_voters) {
  const auto n = *rc::gen::inRange<size_t>(1, max_voters + 1);
  AckCase out;
  out.acks = *rc::gen::container<std::vector<uint64_t>>(n, rc::gen::inRange<uint64_t>(0, 50));
  out.missing = *rc::gen::container<std::vector<bool>>(
      n, rc::gen::map(rc::gen::inRange(0, 5), [](int x) { return x == 0; }));
  return out;
}

RC_GTEST_PROP(RaftQuorumProperty, MajorityCommittedIndexIsTheMiddleOfDescendingAcks, ()) {
  const AckCase ack = gen_ack_case(15);
  std::vector<uint64_t> sorted = ack.effective();
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const LogIndex committed = ack.config().committed_index(acks_from(ack.map()));
  RC_ASSERT(committed == idx(sorted[sorted.size() / 2]));
}

RC_GTEST_PROP(RaftQuorumProperty, MajorityCommittedIndexIsHeldByAMajorityAndIsTheLargestSuch,
              ()) {
  const AckCase ack = gen_ack_case(15);
  const std::vector<uint64_t> values = ack.effective();
  const uint64_t committed = ack.config().committed_index(acks_from(ack.map())).value();
  const auto holding = [&](uint64_t index) {
    return static_cast<size_t>(
        std::count_if(values.begin(), values.end(), [&](uint64_t v) { return v >= index; }));
  };
  RC_ASSERT(holding(committed) > values.size() / 2);
  RC_ASSERT(holding(committed + 1) <= values.size() / 2);
}

RC_GTEST_PROP(RaftQuorumProperty, MajorityCommittedIndexIsMonotoneInAcks, ()) {
  AckCase ack = gen_ack_case(15);
  const LogIndex before = ack.config().committed_index(acks_from(ack.map()));
  const auto who = *rc::gen::inRange<size_t>(0, ack.acks.size());
  const auto delta = *rc::gen::inRange<uint64_t>(0, 30);
  if (ack.missing[who]) {
    ack.missing[who] = false;
    ack.acks[who] = delta;
  } else {
    ack.acks[who] += delta;
  }
  const LogIndex after = ack.config().committed_index(acks_from(ack.map()));
  RC_ASSERT(after >= before);
}

RC_GTEST_PROP(RaftQuorumProperty, MajorityVoteResultCountsGrantsAgainstTheQuorum, ()) {
  const auto n = *rc::gen::inRange<size_t>(0, 10);
  std::set<NodeId> voters;
  std::map<NodeId, bool> votes;
  size_t granted = 0;
  size_t missing = 0;
  for (size_t i = 1; i <= n; ++i) {
    voters.insert(nid(i));
    const int answer = *rc::gen::inRange(0, 3);  // 0 missing, 1 granted, 2 rejected
    if (answer == 0) {
      ++missing;
    } else {
      votes[nid(i)] = answer == 1;
      granted += answer == 1;
    }
  }
  // Votes from non-voters never change the outcome.
  votes[nid(100)] = *rc::gen::arbitrary<bool>();
  const VoteResult result = MajorityConfig(voters).vote_result(votes);
  if (n == 0) {
    RC_ASSERT(result == VoteResult::kWon);
    return;
  }
  const size_t quorum = n / 2 + 1;
  if (granted >= quorum) {
    RC_ASSERT(result == VoteResult::kWon);
  } else if (granted + missing >= quorum) {
    RC_ASSERT(result == VoteResult::kPending);
  } else {
    RC_ASSERT(result == VoteResult::kLost);
  }
}

RC_GTEST_PROP(RaftQuorumProperty, JointCommittedIndexIsTheMinimumOfTheHalves, ()) {
  // Two overlapping voter sets drawn from nine nodes; outgoing may be empty.
  std::set<NodeId> in;
  std::set<NodeId> out;
  std::map<uint64_t, uint64_t> acks;
  for (uint64_t id = 1; id <= 9; ++id) {
    if (*rc::gen::arbitrary<bool>()) in.insert(nid(id));
    if (*rc::gen::arbitrary<bool>()) out.insert(nid(id));
    if (*rc::gen::inRange(0, 4) != 0) acks[id] = *rc::gen::inRange<uint64_t>(0, 40);
  }
  if (in.empty()) in.insert(nid(1));
  JointConfig joint;
  joint.incoming = MajorityConfig(in);
  joint.outgoing = MajorityConfig(out);
  const AckedIndexFn fn = acks_from(acks);
  const LogIndex want = std::min(joint.incoming.committed_index(fn), joint.outgoing.committed_index(fn));
  RC_ASSERT(joint.committed_index(fn) == want);
  if (out.empty()) RC_ASSERT(joint.committed_index(fn) == joint.incoming.committed_index(fn));
}

// ---------------------------------------------------------------------------
// Properties: the conf change codec

rc::Gen<ConfChange> arbitrary_conf_change() {
  return rc::gen::exec([] {
    ConfChange change;
    change.transition = static_cast<ConfChangeTransition>(*rc::gen::inRange(0, 3));
    const auto count = *rc::gen::inRange<size_t>(0, 12);
    for (size_t i = 0; i < count; ++i) {
      ConfChangeSingle single;
      single.type = static_cast<ConfChangeType>(*rc::gen::inRange(0, 3));
      single.node = NodeId{*rc::gen::oneOf(rc::gen::inRange<uint64_t>(1, 20),
                                           rc::gen::inRange<uint64_t>(1, kMaxIndex))};
      change.changes.push_back(single);
    }
    change.context = Bytes(*rc::gen::container<std::string>(rc::gen::arbitrary<char>()));
    return change;
  });
}

RC_GTEST_PROP(RaftConfChangeProperty, EncodeDecodeRoundTrips, ()) {
  const ConfChange change = *arbitrary_conf_change();
  const std::string encoded = encode_conf_change(change);
  auto decoded = decode_conf_change(encoded);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == change);
}

RC_GTEST_PROP(RaftConfChangeProperty, EveryStrictPrefixOfAnEncodingIsRejected, ()) {
  const std::string encoded = encode_conf_change(*arbitrary_conf_change());
  const auto len = *rc::gen::inRange<size_t>(0, encoded.size());
  RC_ASSERT(!decode_conf_change(std::string_view(encoded).substr(0, len)).ok());
}

// Whatever decodes, decodes to a change that encodes and decodes to itself.
void check_decode_is_total(const std::string& bytes) {
  auto decoded = decode_conf_change(bytes);
  if (!decoded.ok()) {
    RC_ASSERT(decoded.code() == base::Errc::kCorruption);
    RC_ASSERT(!decoded.error().message().empty());
    return;
  }
  for (const ConfChangeSingle& single : decoded->changes) RC_ASSERT(!single.node.is_none());
  auto again = decode_conf_change(encode_conf_change(*decoded));
  RC_ASSERT(again.ok());
  RC_ASSERT(*again == *decoded);
}

RC_GTEST_PROP(RaftConfChangeProperty, DecodingArbitraryBytesFailsCleanlyOrRoundTrips, ()) {
  const auto body = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  // Mostly the right version byte, so decoding gets past it.
  const bool versioned = *rc::gen::inRange(0, 4) != 0;
  check_decode_is_total(versioned ? std::string("\x01") + body : body);
}

RC_GTEST_PROP(RaftConfChangeProperty, DecodingAMutatedEncodingFailsCleanlyOrRoundTrips, ()) {
  std::string bytes = encode_conf_change(*arbitrary_conf_change());
  const auto mutations = *rc::gen::inRange(1, 4);
  for (int i = 0; i < mutations && !bytes.empty(); ++i) {
    const auto at = *rc::gen::inRange<size_t>(0, bytes.size());
    switch (*rc::gen::inRange(0, 3)) {
      case 0: bytes[at] = *rc::gen::arbitrary<char>(); break;
      case 1: bytes.erase(at, 1); break;
      case 2: bytes.insert(at, 1, *rc::gen::arbitrary<char>()); break;
    }
  }
  check_decode_is_total(bytes);
}

// ---------------------------------------------------------------------------
// Properties: the seeded generator

RC_GTEST_PROP(RaftRngProperty, UniformStaysInRange, (uint64_t seed)) {
  const auto bound = *rc::gen::oneOf(rc::gen::inRange<uint64_t>(1, 100),
                                     rc::gen::inRange<uint64_t>(1, kMaxIndex),
                                     rc::gen::just(kMaxIndex), rc::gen::just(uint64_t{1}));
  base::Rng rng(seed);
  for (int i = 0; i < 100; ++i) RC_ASSERT(rng.uniform(bound) < bound);
  const auto low = *rc::gen::inRange<uint64_t>(0, 1000);
  const auto high = low + *rc::gen::inRange<uint64_t>(0, 1000);
  for (int i = 0; i < 100; ++i) {
    const uint64_t v = rng.between(low, high);
    RC_ASSERT(v >= low);
    RC_ASSERT(v <= high);
  }
}

RC_GTEST_PROP(RaftRngProperty, SameSeedSameStream, (uint64_t seed)) {
  base::Rng a(seed);
  base::Rng b(seed);
  for (int i = 0; i < 20; ++i) RC_ASSERT(a.uniform(1000) == b.uniform(1000));
}

TEST(RaftRng, UniformCoversASmallRange) {
  base::Rng rng(42);
  std::vector<int> seen(7, 0);
  for (int i = 0; i < 7000; ++i) ++seen[rng.uniform(7)];
  // Each of 7 values near 1000 times; far outside means bias or a stuck value.
  for (int count : seen) {
    EXPECT_GT(count, 800);
    EXPECT_LT(count, 1200);
  }
}

}  // namespace
}  // namespace synod::raft::testing
