// RaftLog: the follower's append rule, conflict search, commit and
// persistence bookkeeping, and snapshot restore (raft_log.h), table-driven in
// the manner of etcd/raft's log_test.go.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "raft/memory_storage.h"
#include "raft/raft_log.h"
#include "raft/test_cluster.h"

namespace synod::raft {
namespace {

using testing::idx;
using testing::term;

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

Entry entry(uint64_t index, uint64_t entry_term, std::string data = {}) {
  return Entry{term(entry_term), idx(index), EntryType::kNormal, Bytes(std::move(data))};
}

// Entries first, first+1, ... with the given terms.
std::vector<Entry> entries_from(uint64_t first, std::vector<uint64_t> terms) {
  std::vector<Entry> out;
  for (uint64_t t : terms) out.push_back(entry(first++, t));
  return out;
}

// A storage whose snapshot is (snap_index, snap_term) followed by `stable`.
std::unique_ptr<MemoryStorage> make_storage(uint64_t snap_index, uint64_t snap_term,
                                            const std::vector<Entry>& stable) {
  auto storage = std::make_unique<MemoryStorage>();
  if (snap_index > 0) {
    Snapshot snap;
    snap.meta.index = idx(snap_index);
    snap.meta.term = term(snap_term);
    snap.meta.conf_state.voters = {NodeId{1}};
    EXPECT_TRUE(storage->apply_snapshot(snap).ok());
  }
  EXPECT_TRUE(storage->append(stable).ok());
  return storage;
}

std::vector<uint64_t> terms_of(const std::vector<Entry>& entries) {
  std::vector<uint64_t> out;
  for (const Entry& e : entries) out.push_back(e.term.value());
  return out;
}

// §5.3: the follower appends only when its log holds (index, log_term), keeps
// entries that agree with the leader's, truncates at the first conflict, and
// sets commit = min(leader_commit, index of the last new entry), never lower.
TEST(RaftLog, MaybeAppendFollowsTheAppendEntriesReceiverRules) {
  // Log [1@1 2@2 3@3], committed 1.
  const uint64_t last = 3;
  const uint64_t last_term = 3;
  const uint64_t commit = 1;
  struct Case {
    const char* name;
    uint64_t log_term;
    uint64_t index;
    uint64_t leader_commit;
    std::vector<Entry> entries;
    std::optional<uint64_t> want_last_new;  // nullopt: rejected
    uint64_t want_commit;
    std::vector<uint64_t> want_terms;  // the whole log afterwards, from index 1
  };
  const std::vector<Case> cases = {
      {"term mismatch at prev", last_term - 1, last, last, {entry(4, 4)}, std::nullopt, commit,
       {1, 2, 3}},
      {"prev beyond the log", last_term, last + 1, last, {entry(5, 4)}, std::nullopt, commit,
       {1, 2, 3}},
      {"heartbeat-like, commit to leader commit", last_term, last, last, {}, last, last,
       {1, 2, 3}},
      {"commit capped by last new entry", last_term, last, last + 1, {}, last, last, {1, 2, 3}},
      {"commit follows leader commit below last", last_term, last, last - 1, {}, last, last - 1,
       {1, 2, 3}},
      {"commit never decreases", last_term, last, 0, {}, last, commit, {1, 2, 3}},
      {"match at index 0", 0, 0, last, {}, 0, commit, {1, 2, 3}},
      {"append one", last_term, last, last, {entry(4, 4)}, 4, last, {1, 2, 3, 4}},
      {"append one, commit it", last_term, last, last + 1, {entry(4, 4)}, 4, 4, {1, 2, 3, 4}},
      {"append one, commit capped at it", last_term, last, last + 2, {entry(4, 4)}, 4, 4,
       {1, 2, 3, 4}},
      {"append two, commit both", last_term, last, last + 2, {entry(4, 4), entry(5, 4)}, 5, 5,
       {1, 2, 3, 4, 4}},
      {"conflict in the middle truncates", last_term - 1, last - 1, last, {entry(3, 4)}, 3, 3,
       {1, 2, 4}},
      {"conflict truncates all that follows", last_term - 2, last - 2, last, {entry(2, 4)}, 2, 2,
       {1, 4}},
      {"conflict replaced by longer suffix", last_term - 2, last - 2, last,
       {entry(2, 4), entry(3, 4)}, 3, 3, {1, 4, 4}},
      // An old append whose entries we already have must not cut off what
      // follows them (a reordered or duplicated message).
      {"matching entries are not truncated", 1, 1, last, {entry(2, 2)}, 2, 2, {1, 2, 3}},
      {"partly new entries", 2, 2, last, {entry(3, 3), entry(4, 3)}, 4, 3, {1, 2, 3, 3}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto storage = make_storage(0, 0, {});
    RaftLog log(storage.get(), 0);
    log.append(entries_from(1, {1, 2, 3}));
    log.commit_to(idx(commit));

    auto got = log.maybe_append(idx(c.index), term(c.log_term), idx(c.leader_commit), c.entries);
    ASSERT_EQ(got.has_value(), c.want_last_new.has_value());
    if (got) {
      EXPECT_EQ(*got, idx(*c.want_last_new));
    }
    EXPECT_EQ(log.committed(), idx(c.want_commit));
    EXPECT_EQ(terms_of(log.all_entries()), c.want_terms);
  }
}

// Rewriting a committed entry would break State Machine Safety: the log must
// stop loudly instead.
TEST(RaftLogDeathTest, MaybeAppendRefusesToOverwriteCommittedEntry) {
  auto storage = make_storage(0, 0, {});
  RaftLog log(storage.get(), 0);
  log.append(entries_from(1, {1, 2, 3}));
  log.commit_to(idx(3));
  EXPECT_DEATH((void)log.maybe_append(idx(0), term(0), idx(3), {entry(1, 4)}), "");
}

TEST(RaftLog, FindConflictReturnsFirstEntryWithDifferentTerm) {
  struct Case {
    std::vector<Entry> entries;
    uint64_t want;
  };
  const std::vector<Case> cases = {
      {{}, 0},
      // Everything already present.
      {entries_from(1, {1, 2, 3}), 0},
      {entries_from(2, {2, 3}), 0},
      {entries_from(3, {3}), 0},
      // New entries past the end.
      {entries_from(1, {1, 2, 3, 4, 4}), 4},
      {entries_from(2, {2, 3, 4, 4}), 4},
      {entries_from(3, {3, 4, 4}), 4},
      {entries_from(4, {4, 4}), 4},
      // Conflicts with existing entries.
      {entries_from(1, {4, 4}), 1},
      {entries_from(2, {1, 4, 4}), 2},
      {entries_from(3, {1, 2, 4, 4}), 3},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    auto storage = make_storage(0, 0, {});
    RaftLog log(storage.get(), 0);
    log.append(entries_from(1, {1, 2, 3}));
    EXPECT_EQ(log.find_conflict(cases[i].entries), idx(cases[i].want));
  }
}

// Fast backtracking: the largest index ≤ `index` whose term is ≤ `term`; where
// the term is unknown (compacted) the index is returned with term 0, as a
// possible match.
TEST(RaftLog, FindConflictByTermFindsLargestIndexWithTermAtMost) {
  struct Case {
    const char* name;
    uint64_t snap_index;
    uint64_t snap_term;
    std::vector<uint64_t> terms;  // entries after the snapshot
    uint64_t index;
    uint64_t query_term;
    uint64_t want_index;
    uint64_t want_term;
  };
  const std::vector<Case> cases = {
      // Log from index 1: [1@2 2@2 3@5 4@5 5@5].
      {"higher term matches last", 0, 0, {2, 2, 5, 5, 5}, 5, 6, 5, 5},
      {"equal term matches", 0, 0, {2, 2, 5, 5, 5}, 5, 5, 5, 5},
      {"skips a whole term", 0, 0, {2, 2, 5, 5, 5}, 5, 4, 2, 2},
      {"lands on last entry of term", 0, 0, {2, 2, 5, 5, 5}, 5, 2, 2, 2},
      {"nothing at or below term", 0, 0, {2, 2, 5, 5, 5}, 5, 1, 0, 0},
      {"start in the middle", 0, 0, {2, 2, 5, 5, 5}, 1, 2, 1, 2},
      {"start in the middle, lower", 0, 0, {2, 2, 5, 5, 5}, 1, 1, 0, 0},
      {"index 0", 0, 0, {2, 2, 5, 5, 5}, 0, 0, 0, 0},
      // Snapshot at 10@3, then [11@3 12@3 13@4 14@4 15@4].
      {"compacted: higher term", 10, 3, {3, 3, 4, 4, 4}, 14, 9, 14, 4},
      {"compacted: equal term", 10, 3, {3, 3, 4, 4, 4}, 14, 4, 14, 4},
      {"compacted: earlier term", 10, 3, {3, 3, 4, 4, 4}, 14, 3, 12, 3},
      {"compacted: falls into the compacted part", 10, 3, {3, 3, 4, 4, 4}, 14, 2, 9, 0},
      {"compacted: first entry", 10, 3, {3, 3, 4, 4, 4}, 11, 5, 11, 3},
      {"compacted: snapshot index is known", 10, 3, {3, 3, 4, 4, 4}, 10, 5, 10, 3},
      {"compacted: snapshot index, lower term", 10, 3, {3, 3, 4, 4, 4}, 10, 2, 9, 0},
      {"compacted: below the snapshot", 10, 3, {3, 3, 4, 4, 4}, 4, 2, 4, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto storage = make_storage(c.snap_index, c.snap_term, entries_from(c.snap_index + 1, c.terms));
    RaftLog log(storage.get(), 0);
    auto [got_index, got_term] = log.find_conflict_by_term(idx(c.index), term(c.query_term));
    EXPECT_EQ(got_index, idx(c.want_index));
    EXPECT_EQ(got_term, term(c.want_term));
  }
}

TEST(RaftLog, TermCoversSnapshotStableAndUnstableEntries) {
  // Snapshot 3@3, stable [4@4 5@5], unstable [6@6].
  auto storage = make_storage(3, 3, entries_from(4, {4, 5}));
  RaftLog log(storage.get(), 0);
  log.append({entry(6, 6)});
  struct Case {
    uint64_t index;
    base::Errc want_error;
    uint64_t want_term;
  };
  const std::vector<Case> cases = {
      {2, base::Errc::kCompacted, 0},    // below the snapshot
      {3, base::Errc::kOk, 3},           // the snapshot's own index
      {4, base::Errc::kOk, 4},           // stable
      {5, base::Errc::kOk, 5},           // stable
      {6, base::Errc::kOk, 6},           // unstable
      {7, base::Errc::kUnavailable, 0},  // past the end
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.index);
    auto got = log.term(idx(c.index));
    EXPECT_EQ(got.code(), c.want_error);
    if (got.ok()) {
      EXPECT_EQ(*got, term(c.want_term));
    }
    EXPECT_EQ(log.term_or_zero(idx(c.index)), term(c.want_term));
  }
  EXPECT_EQ(log.first_index(), idx(4));
  EXPECT_EQ(log.last_index(), idx(6));
  EXPECT_EQ(log.last_term(), term(6));
}

// §5.4.1: compare the last terms; only if equal, the longer log wins.
TEST(RaftLog, IsUpToDateComparesLastTermThenIndex) {
  auto storage = make_storage(0, 0, {});
  RaftLog log(storage.get(), 0);
  log.append(entries_from(1, {1, 2, 3}));
  struct Case {
    uint64_t index;
    uint64_t last_term;
    bool want;
  };
  const std::vector<Case> cases = {
      {2, 4, true},  {3, 4, true},  {4, 4, true},   // higher last term wins regardless of length
      {2, 2, false}, {3, 2, false}, {4, 2, false},  // lower last term loses regardless of length
      {2, 3, false}, {3, 3, true},  {4, 3, true},   // same last term: at least as long
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "index " << c.index << " term " << c.last_term);
    EXPECT_EQ(log.is_up_to_date(idx(c.index), term(c.last_term)), c.want);
  }
}

TEST(RaftLog, AppendTruncatesConflictingSuffix) {
  struct Case {
    std::vector<Entry> entries;
    uint64_t want_last;
    std::vector<uint64_t> want_terms;
    uint64_t want_unstable_from;
  };
  // Stable [1@1 2@2].
  const std::vector<Case> cases = {
      {{}, 2, {1, 2}, 3},
      {{entry(3, 2)}, 3, {1, 2, 2}, 3},
      // Replaces everything.
      {{entry(1, 2)}, 1, {2}, 1},
      // Replaces from the middle.
      {{entry(2, 3), entry(3, 3)}, 3, {1, 3, 3}, 2},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    auto storage = make_storage(0, 0, entries_from(1, {1, 2}));
    RaftLog log(storage.get(), 0);
    EXPECT_EQ(log.append(cases[i].entries), idx(cases[i].want_last));
    EXPECT_EQ(terms_of(log.all_entries()), cases[i].want_terms);
    const auto& unstable = log.unstable_entries();
    if (!unstable.empty()) {
      EXPECT_EQ(unstable.front().index, idx(cases[i].want_unstable_from));
    }
  }
}

TEST(RaftLog, CommitToNeverDecreases) {
  auto storage = make_storage(0, 0, {});
  RaftLog log(storage.get(), 0);
  log.append(entries_from(1, {1, 2, 3}));
  struct Case {
    uint64_t commit;
    uint64_t want;
  };
  // Applied in sequence on the same log.
  const std::vector<Case> steps = {{2, 2}, {1, 2}, {3, 3}, {0, 3}, {2, 3}};
  for (const Case& c : steps) {
    log.commit_to(idx(c.commit));
    EXPECT_EQ(log.committed(), idx(c.want)) << "after commit_to(" << c.commit << ")";
  }
}

TEST(RaftLogDeathTest, CommitToBeyondLastIndexStops) {
  auto storage = make_storage(0, 0, {});
  RaftLog log(storage.get(), 0);
  log.append(entries_from(1, {1, 2, 3}));
  EXPECT_DEATH(log.commit_to(idx(4)), "");
}

// Only entries of the given term commit by maybe_commit (the leader's
// current-term rule, §5.4.2).
TEST(RaftLog, MaybeCommitRequiresMatchingTerm) {
  struct Case {
    uint64_t index;
    uint64_t at_term;
    bool want_changed;
    uint64_t want_commit;
  };
  const std::vector<Case> cases = {
      {3, 3, true, 3},   // the entry at 3 is of term 3
      {2, 3, false, 1},  // the entry at 2 is of term 2, not 3
      {3, 2, false, 1},
      {1, 1, false, 1},  // not beyond the current commit
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "index " << c.index << " term " << c.at_term);
    auto storage = make_storage(0, 0, {});
    RaftLog log(storage.get(), 0);
    log.append(entries_from(1, {1, 2, 3}));
    log.commit_to(idx(1));
    EXPECT_EQ(log.maybe_commit(idx(c.index), term(c.at_term)), c.want_changed);
    EXPECT_EQ(log.committed(), idx(c.want_commit));
  }
}

// The host persisted up to (index, term): those entries leave the unstable
// part, unless the entry there was replaced since (a stale acknowledgement).
TEST(RaftLog, StableToReleasesPersistedUnstableEntries) {
  struct Case {
    const char* name;
    uint64_t index;
    uint64_t at_term;
    size_t want_unstable;
    uint64_t want_stable_last;
  };
  // Unstable [1@1 2@2] over an empty storage.
  const std::vector<Case> cases = {
      {"first", 1, 1, 1, 1},
      {"all", 2, 2, 0, 2},
      {"wrong term", 2, 1, 2, 0},
      {"beyond the log", 3, 1, 2, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto storage = make_storage(0, 0, {});
    RaftLog log(storage.get(), 0);
    log.append(entries_from(1, {1, 2}));
    // Persist what the host would have written, so reads stay valid.
    EXPECT_TRUE(storage->append(log.unstable_entries()).ok());
    log.stable_to(idx(c.index), term(c.at_term));
    EXPECT_EQ(log.unstable_entries().size(), c.want_unstable);
    EXPECT_EQ(log.stable_last_index(), idx(c.want_stable_last));
    EXPECT_EQ(log.last_index(), idx(2));
  }
}

TEST(RaftLog, StableToIgnoresAcknowledgementOfReplacedEntry) {
  auto storage = make_storage(0, 0, {});
  RaftLog log(storage.get(), 0);
  log.append(entries_from(1, {1, 2}));
  // A new leader overwrote index 2 before the host finished persisting it.
  log.append({entry(2, 3)});
  log.stable_to(idx(2), term(2));
  ASSERT_EQ(log.unstable_entries().size(), 2u);
  EXPECT_EQ(log.unstable_entries().back().term, term(3));
}

TEST(RaftLog, NextCommittedEntriesAreThoseBetweenAppliedAndCommitted) {
  struct Case {
    uint64_t applied;
    uint64_t committed;
    std::vector<uint64_t> want_indexes;
  };
  // Snapshot 3@1, entries [4 5 6] (4 and 5 stable, 6 unstable).
  const std::vector<Case> cases = {
      {3, 5, {4, 5}},
      {4, 5, {5}},
      {5, 5, {}},
      {3, 3, {}},
      {3, 6, {4, 5, 6}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "applied " << c.applied << " committed " << c.committed);
    auto storage = make_storage(3, 1, entries_from(4, {1, 1}));
    RaftLog log(storage.get(), 0);
    log.append({entry(6, 1)});
    log.commit_to(idx(c.committed));
    log.applied_to(idx(c.applied));
    std::vector<uint64_t> got;
    for (const Entry& e : log.next_committed_entries()) got.push_back(e.index.value());
    EXPECT_EQ(got, c.want_indexes);
    EXPECT_EQ(log.has_next_committed_entries(), !c.want_indexes.empty());
  }
}

TEST(RaftLog, NextCommittedEntriesAreCappedBySizeButNeverEmpty) {
  struct Case {
    uint64_t max_bytes;
    size_t want_count;
  };
  // Three committed entries of 100 + 24 bytes each.
  const std::vector<Case> cases = {
      {0, 3},  // 0 means no cap
      {1, 1},  // at least one, however small the cap
      {124, 1},
      {248, 2},
      {371, 2},
      {372, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.max_bytes);
    auto storage = make_storage(0, 0,
                                {entry(1, 1, std::string(100, 'a')),
                                 entry(2, 1, std::string(100, 'b')),
                                 entry(3, 1, std::string(100, 'c'))});
    RaftLog log(storage.get(), c.max_bytes);
    log.commit_to(idx(3));
    EXPECT_EQ(log.next_committed_entries().size(), c.want_count);
  }
}

// A follower installing a snapshot drops its whole log; the snapshot's
// (index, term) become the new base and everything up to it is committed.
TEST(RaftLog, RestoreReplacesLogWithSnapshot) {
  auto storage = make_storage(0, 0, entries_from(1, {1, 1, 2}));
  RaftLog log(storage.get(), 0);
  log.append({entry(4, 2)});
  log.commit_to(idx(2));

  Snapshot snap;
  snap.meta.index = idx(100);
  snap.meta.term = term(7);
  snap.meta.conf_state.voters = {NodeId{1}};
  log.restore(snap);

  EXPECT_EQ(log.committed(), idx(100));
  EXPECT_EQ(log.first_index(), idx(101));
  EXPECT_EQ(log.last_index(), idx(100));
  EXPECT_EQ(log.last_term(), term(7));
  EXPECT_TRUE(log.unstable_entries().empty());
  EXPECT_TRUE(log.has_pending_snapshot());
  // The snapshot is applied before any entry after it.
  EXPECT_FALSE(log.has_next_committed_entries());
  auto t = log.term(idx(100));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, term(7));
  EXPECT_EQ(log.term(idx(99)).code(), base::Errc::kCompacted);
  auto s = log.snapshot();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->meta.index, idx(100));

  // Entries continue after the snapshot.
  EXPECT_EQ(log.maybe_append(idx(100), term(7), idx(101), {entry(101, 7)}), idx(101));
  EXPECT_EQ(log.committed(), idx(101));

  // Once the host persisted the snapshot it is no longer pending.
  EXPECT_TRUE(storage->apply_snapshot(snap).ok());
  log.stable_snapshot_to(idx(100));
  EXPECT_FALSE(log.has_pending_snapshot());
}

TEST(RaftLog, SliceHonoursSizeCapAcrossStableAndUnstable) {
  // Stable [1 2], unstable [3 4], each 100 + 24 bytes.
  auto storage = make_storage(0, 0,
                              {entry(1, 1, std::string(100, 'a')),
                               entry(2, 1, std::string(100, 'b'))});
  RaftLog log(storage.get(), 0);
  log.append({entry(3, 1, std::string(100, 'c')), entry(4, 1, std::string(100, 'd'))});
  struct Case {
    uint64_t low;
    uint64_t high;
    uint64_t max_bytes;
    std::vector<uint64_t> want;
  };
  const std::vector<Case> cases = {
      {1, 5, kNoLimit, {1, 2, 3, 4}},
      {1, 5, 1, {1}},
      {1, 5, 248, {1, 2}},
      {1, 5, 372, {1, 2, 3}},
      {2, 4, kNoLimit, {2, 3}},
      {3, 5, 124, {3}},
      {3, 3, kNoLimit, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "[" << c.low << "," << c.high << ") cap " << c.max_bytes);
    auto got = log.slice(idx(c.low), idx(c.high), c.max_bytes);
    ASSERT_TRUE(got.ok());
    std::vector<uint64_t> indexes;
    for (const Entry& e : *got) indexes.push_back(e.index.value());
    EXPECT_EQ(indexes, c.want);
  }
}

}  // namespace
}  // namespace synod::raft
