#include "raft/memory_storage.h"

#include <string>

namespace synod::raft {

using base::Errc;
using base::Error;

MemoryStorage::MemoryStorage() { entries_.push_back(Entry{}); }

base::Result<InitialState> MemoryStorage::initial_state() const {
  return InitialState{hard_state_, snapshot_.meta.conf_state};
}

LogIndex MemoryStorage::first_index() const { return offset() + 1; }

LogIndex MemoryStorage::last_index() const { return offset() + (entries_.size() - 1); }

base::Result<Term> MemoryStorage::term(LogIndex index) const {
  if (index < offset()) return Error(Errc::kCompacted);
  if (index - offset() >= entries_.size()) return Error(Errc::kUnavailable);
  return entries_[index - offset()].term;
}

base::Result<std::vector<Entry>> MemoryStorage::entries(LogIndex low, LogIndex high,
                                                        uint64_t max_bytes) const {
  if (low <= offset()) return Error(Errc::kCompacted);
  if (high > last_index() + 1) {
    return Error(Errc::kUnavailable, "entries up to " + std::to_string(high.value() - 1) +
                                         " requested, last is " +
                                         std::to_string(last_index().value()));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (LogIndex i = low; i < high; ++i) {
    const Entry& e = entries_[i - offset()];
    bytes += e.size_bytes();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

base::Result<Snapshot> MemoryStorage::snapshot() const {
  if (snapshot_unavailable_) return Error(Errc::kSnapshotTemporarilyUnavailable);
  return snapshot_;
}

base::Status MemoryStorage::apply_snapshot(const Snapshot& snapshot) {
  if (snapshot.meta.index <= snapshot_.meta.index && !snapshot_.is_empty()) {
    return Error(Errc::kSnapshotOutOfDate);
  }
  snapshot_ = snapshot;
  entries_.assign(1, Entry{snapshot.meta.term, snapshot.meta.index, EntryType::kNormal, Bytes()});
  return {};
}

base::Result<Snapshot> MemoryStorage::create_snapshot(LogIndex index, const ConfState* conf_state,
                                                      Bytes data) {
  if (index <= snapshot_.meta.index) return Error(Errc::kSnapshotOutOfDate);
  if (index > last_index()) {
    return Error(Errc::kInvalidArgument, "snapshot index " + std::to_string(index.value()) +
                                             " is past the last index " +
                                             std::to_string(last_index().value()));
  }
  snapshot_.meta.index = index;
  snapshot_.meta.term = entries_[index - offset()].term;
  if (conf_state != nullptr) snapshot_.meta.conf_state = *conf_state;
  snapshot_.data = std::move(data);
  return snapshot_;
}

base::Status MemoryStorage::compact(LogIndex index) {
  if (index <= offset()) return Error(Errc::kCompacted);
  if (index > last_index()) {
    return Error(Errc::kInvalidArgument, "compact " + std::to_string(index.value()) +
                                             " is past the last index " +
                                             std::to_string(last_index().value()));
  }
  const uint64_t drop = index - offset();
  // entries_[drop] becomes the new dummy: keep its index and term only.
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<ptrdiff_t>(drop));
  entries_.front().data = Bytes();
  entries_.front().type = EntryType::kNormal;
  return {};
}

base::Status MemoryStorage::append(const std::vector<Entry>& entries) {
  if (entries.empty()) return {};
  const LogIndex first = first_index();
  const LogIndex last = entries.back().index;
  if (last < first) return {};  // all already compacted
  size_t skip = 0;
  if (first > entries.front().index) skip = first - entries.front().index;
  const LogIndex start = entries[skip].index;
  if (start - offset() > entries_.size()) {
    return Error(Errc::kInvalidArgument, "append at " + std::to_string(start.value()) +
                                             " leaves a gap after " +
                                             std::to_string(last_index().value()));
  }
  entries_.resize(start - offset());
  entries_.insert(entries_.end(), entries.begin() + static_cast<ptrdiff_t>(skip), entries.end());
  return {};
}

}  // namespace synod::raft
