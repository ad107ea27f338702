#include "raft/raft_log.h"

#include <algorithm>
#include <limits>
#include <string>

#include "base/assert.h"

namespace synod::raft {

using base::Errc;
using base::Error;

RaftLog::RaftLog(const Storage* storage, uint64_t max_committed_size_per_ready_bytes)
    : storage_(storage),
      max_committed_size_per_ready_bytes_(max_committed_size_per_ready_bytes == 0
                                              ? std::numeric_limits<uint64_t>::max()
                                              : max_committed_size_per_ready_bytes) {
  SYNOD_ASSERT(storage_ != nullptr, "a raft log needs storage");
  unstable_offset_ = storage_->last_index() + 1;
  // Everything in storage before its first index is in its snapshot, which
  // the state machine already reflects.
  committed_ = storage_->first_index() - 1;
  applied_ = committed_;
}

LogIndex RaftLog::first_index() const {
  if (unstable_snapshot_) return unstable_snapshot_->meta.index + 1;
  return storage_->first_index();
}

LogIndex RaftLog::last_index() const {
  if (!unstable_entries_.empty()) return unstable_offset_ + (unstable_entries_.size() - 1);
  if (unstable_snapshot_) return unstable_snapshot_->meta.index;
  return storage_->last_index();
}

Term RaftLog::last_term() const {
  auto t = term(last_index());
  SYNOD_ASSERT(t.ok(), "the last entry's term must always be known");
  return *t;
}

base::Result<Term> RaftLog::term(LogIndex index) const {
  // The entry just before the first is the snapshot's: its term is known.
  const LogIndex dummy = first_index() - 1;
  if (index < dummy) return Error(Errc::kCompacted);
  if (index > last_index()) return Error(Errc::kUnavailable);
  if (unstable_snapshot_ && index == unstable_snapshot_->meta.index) {
    return unstable_snapshot_->meta.term;
  }
  if (!unstable_entries_.empty() && index >= unstable_offset_) {
    return unstable_entries_[index - unstable_offset_].term;
  }
  return storage_->term(index);
}

Term RaftLog::term_or_zero(LogIndex index) const {
  auto t = term(index);
  return t.ok() ? *t : Term{0};
}

bool RaftLog::match_term(LogIndex index, Term t) const {
  auto actual = term(index);
  return actual.ok() && *actual == t;
}

bool RaftLog::is_up_to_date(LogIndex index, Term t) const {
  const Term last = last_term();
  return t > last || (t == last && index >= last_index());
}

base::Result<std::vector<Entry>> RaftLog::entries(LogIndex low, uint64_t max_bytes) const {
  if (low > last_index()) return std::vector<Entry>{};
  return slice(low, last_index() + 1, max_bytes);
}

base::Result<std::vector<Entry>> RaftLog::slice(LogIndex low, LogIndex high,
                                                uint64_t max_bytes) const {
  SYNOD_ASSERT(low <= high, "slice bounds out of order");
  if (low < first_index()) return Error(Errc::kCompacted);
  SYNOD_ASSERT(high <= last_index() + 1, "slice past the end of the log");
  std::vector<Entry> out;
  if (low == high) return out;
  uint64_t bytes = 0;
  // The stable part comes from storage.
  const LogIndex stable_end = std::min(high, unstable_offset_);
  if (low < stable_end) {
    auto stored = storage_->entries(low, stable_end, max_bytes);
    if (!stored.ok()) {
      if (stored.code() == Errc::kCompacted) return stored.error();
      SYNOD_ASSERT(false, "storage lost entries it reported having");
    }
    out = std::move(stored).value();
    for (const Entry& e : out) bytes += e.size_bytes();
    // Storage stopped early at the size cap: do not add unstable ones.
    if (out.size() < stable_end - low) return out;
  }
  if (high > unstable_offset_) {
    const LogIndex from = std::max(low, unstable_offset_);
    for (LogIndex i = from; i < high; ++i) {
      const Entry& e = unstable_entries_[i - unstable_offset_];
      bytes += e.size_bytes();
      if (!out.empty() && bytes > max_bytes) break;
      out.push_back(e);
    }
  }
  return out;
}

std::vector<Entry> RaftLog::all_entries() const {
  auto all = entries(first_index(), std::numeric_limits<uint64_t>::max());
  SYNOD_ASSERT(all.ok(), "reading the whole log failed");
  return std::move(all).value();
}

std::optional<LogIndex> RaftLog::maybe_append(LogIndex index, Term log_term, LogIndex committed,
                                              const std::vector<Entry>& entries) {
  if (!match_term(index, log_term)) return std::nullopt;
  const LogIndex last_new = index + entries.size();
  const LogIndex conflict = find_conflict(entries);
  if (conflict != LogIndex{0}) {
    // Raft never rewrites committed entries: a conflict there is a bug or a
    // corrupted log, and continuing would break state machine safety.
    SYNOD_ASSERT(conflict > committed_, "entry conflicts with a committed entry");
    const uint64_t skip = conflict - (index + 1);
    append(std::vector<Entry>(entries.begin() + static_cast<ptrdiff_t>(skip), entries.end()));
  }
  commit_to(std::min(committed, last_new));
  return last_new;
}

LogIndex RaftLog::append(const std::vector<Entry>& entries) {
  if (entries.empty()) return last_index();
  SYNOD_ASSERT(entries.front().index > committed_, "appending over committed entries");
  truncate_and_append_unstable(entries);
  return last_index();
}

void RaftLog::truncate_and_append_unstable(const std::vector<Entry>& entries) {
  const LogIndex after = entries.front().index;
  if (after == unstable_offset_ + unstable_entries_.size()) {
    unstable_entries_.insert(unstable_entries_.end(), entries.begin(), entries.end());
  } else if (after <= unstable_offset_) {
    // Replaces stable entries too: the host overwrites them when it persists.
    unstable_offset_ = after;
    unstable_entries_ = entries;
  } else {
    unstable_entries_.resize(after - unstable_offset_);
    unstable_entries_.insert(unstable_entries_.end(), entries.begin(), entries.end());
  }
}

LogIndex RaftLog::find_conflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!match_term(e.index, e.term)) return e.index;
  }
  return LogIndex{0};
}

std::pair<LogIndex, Term> RaftLog::find_conflict_by_term(LogIndex index, Term t) const {
  index = std::min(index, last_index());
  while (true) {
    auto ours = term(index);
    if (!ours.ok()) return {index, Term{0}};
    if (*ours <= t) return {index, *ours};
    if (index == LogIndex{0}) return {index, *ours};
    --index;
  }
}

bool RaftLog::maybe_commit(LogIndex max_index, Term t) {
  if (max_index > committed_ && term_or_zero(max_index) == t) {
    commit_to(max_index);
    return true;
  }
  return false;
}

void RaftLog::commit_to(LogIndex index) {
  if (committed_ >= index) return;  // never decrease the commit index
  SYNOD_ASSERT(index <= last_index(), "commit index beyond the log (corrupt or truncated log?)");
  committed_ = index;
}

void RaftLog::applied_to(LogIndex index) {
  if (index == LogIndex{0}) return;
  SYNOD_ASSERT(index <= committed_, "applied beyond committed");
  SYNOD_ASSERT(index >= applied_, "applied index went backwards");
  applied_ = index;
}

bool RaftLog::has_next_committed_entries() const {
  if (unstable_snapshot_) return false;  // the snapshot is applied first
  const LogIndex from = std::max(applied_ + 1, first_index());
  return committed_ + 1 > from;
}

std::vector<Entry> RaftLog::next_committed_entries() const {
  if (!has_next_committed_entries()) return {};
  const LogIndex from = std::max(applied_ + 1, first_index());
  auto out = slice(from, committed_ + 1, max_committed_size_per_ready_bytes_);
  SYNOD_ASSERT(out.ok(), "committed entries must be readable");
  return std::move(out).value();
}

base::Result<Snapshot> RaftLog::snapshot() const {
  if (unstable_snapshot_) return *unstable_snapshot_;
  return storage_->snapshot();
}

void RaftLog::stable_to(LogIndex index, Term t) {
  if (unstable_entries_.empty() || index < unstable_offset_) return;
  if (index - unstable_offset_ >= unstable_entries_.size()) return;
  // If the entry was replaced since the Ready was taken, the persisted one is
  // stale and the new one is still unstable.
  if (unstable_entries_[index - unstable_offset_].term != t) return;
  const uint64_t count = index + 1 - unstable_offset_;
  if (count == unstable_entries_.size()) {
    unstable_entries_.clear();
  } else {
    unstable_entries_.erase(unstable_entries_.begin(),
                            unstable_entries_.begin() + static_cast<ptrdiff_t>(count));
  }
  unstable_offset_ = index + 1;
}

void RaftLog::stable_snapshot_to(LogIndex index) {
  if (unstable_snapshot_ && unstable_snapshot_->meta.index == index) unstable_snapshot_.reset();
}

LogIndex RaftLog::stable_last_index() const {
  if (!unstable_entries_.empty()) return unstable_offset_ - 1;
  return last_index();
}

void RaftLog::restore(const Snapshot& snapshot) {
  committed_ = snapshot.meta.index;
  unstable_offset_ = snapshot.meta.index + 1;
  unstable_entries_.clear();
  unstable_snapshot_ = snapshot;
}

}  // namespace synod::raft
