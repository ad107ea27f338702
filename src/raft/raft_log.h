// RaftLog: the log as the Raft state machine sees it — the host's stable
// Storage followed by the `unstable` entries (and possibly a snapshot) that
// were accepted but not yet persisted.
//
// Invariants: committed ≤ last_index; applied ≤ committed; every index in
// (snapshot index, last_index] has exactly one entry; `stable_index` (the last
// entry known to be persisted) ≤ last_index.
#pragma once

#include <optional>
#include <vector>

#include "base/result.h"
#include "raft/storage.h"
#include "raft/types.h"

namespace synod::raft {

class RaftLog {
 public:
  RaftLog(const Storage* storage, uint64_t max_committed_size_per_ready_bytes);

  LogIndex first_index() const;
  LogIndex last_index() const;
  Term last_term() const;
  // The term at `index`; kCompacted below the first index (except the
  // snapshot's own index), kUnavailable past the last.
  base::Result<Term> term(LogIndex index) const;
  // 0 when unknown (compacted or unavailable): comparisons then fail safely.
  Term term_or_zero(LogIndex index) const;
  bool match_term(LogIndex index, Term term) const;
  // Raft §5.4.1: is a log ending at (index, term) at least as up to date?
  bool is_up_to_date(LogIndex index, Term term) const;

  // Entries in [low, last] capped by `max_bytes` (at least one returned).
  base::Result<std::vector<Entry>> entries(LogIndex low, uint64_t max_bytes) const;
  base::Result<std::vector<Entry>> slice(LogIndex low, LogIndex high, uint64_t max_bytes) const;
  std::vector<Entry> all_entries() const;

  // Follower side of AppendEntries: if (index, log_term) matches, append what
  // does not conflict and return the new last index; else nullopt.
  std::optional<LogIndex> maybe_append(LogIndex index, Term log_term, LogIndex committed,
                                       const std::vector<Entry>& entries);
  // Appends after a possible truncation; returns the new last index.
  LogIndex append(const std::vector<Entry>& entries);
  // The first entry in `entries` whose term differs from ours, or 0.
  LogIndex find_conflict(const std::vector<Entry>& entries) const;
  // Fast backtracking (etcd's findConflictByTerm): the largest index ≤ `index`
  // whose term is ≤ `term`, and that term.
  std::pair<LogIndex, Term> find_conflict_by_term(LogIndex index, Term term) const;

  bool maybe_commit(LogIndex max_index, Term term);
  void commit_to(LogIndex index);
  void applied_to(LogIndex index);

  // Host-facing views.
  bool has_next_committed_entries() const;
  std::vector<Entry> next_committed_entries() const;
  const std::vector<Entry>& unstable_entries() const { return unstable_entries_; }
  const std::optional<Snapshot>& unstable_snapshot() const { return unstable_snapshot_; }
  bool has_pending_snapshot() const { return unstable_snapshot_.has_value(); }
  base::Result<Snapshot> snapshot() const;

  // The host persisted everything up to (index, term) / the snapshot at index.
  void stable_to(LogIndex index, Term term);
  void stable_snapshot_to(LogIndex index);
  // The host has applied up to `index`.
  LogIndex committed() const { return committed_; }
  LogIndex applied() const { return applied_; }
  // Largest index persisted locally (known to be in storage).
  LogIndex stable_last_index() const;

  // Replaces the whole log with a snapshot (follower installing one).
  void restore(const Snapshot& snapshot);

 private:
  LogIndex unstable_offset() const { return unstable_offset_; }
  void truncate_and_append_unstable(const std::vector<Entry>& entries);

  const Storage* storage_;
  // Entries at indexes ≥ unstable_offset_ not yet persisted.
  std::vector<Entry> unstable_entries_;
  LogIndex unstable_offset_;
  std::optional<Snapshot> unstable_snapshot_;
  LogIndex committed_;
  LogIndex applied_;
  uint64_t max_committed_size_per_ready_bytes_;
};

}  // namespace synod::raft
