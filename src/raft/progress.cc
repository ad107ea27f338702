#include "raft/progress.h"

#include <algorithm>

#include "base/assert.h"

namespace synod::raft {

void Inflights::add(LogIndex last_index, size_t bytes) {
  SYNOD_ASSERT(!full(), "adding to a full in-flight window");
  SYNOD_ASSERT(window_.empty() || window_.back().last_index < last_index,
               "in-flight appends must carry increasing indexes");
  window_.push_back({last_index, bytes});
  bytes_ += bytes;
}

void Inflights::free_le(LogIndex index) {
  while (!window_.empty() && window_.front().last_index <= index) {
    bytes_ -= window_.front().bytes;
    window_.pop_front();
  }
}

void Inflights::free_first_one() {
  if (window_.empty()) return;
  bytes_ -= window_.front().bytes;
  window_.pop_front();
}

void Inflights::reset() {
  window_.clear();
  bytes_ = 0;
}

bool Inflights::full() const {
  return window_.size() >= max_count_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
}

const char* progress_state_name(ProgressState state) {
  switch (state) {
    case ProgressState::kProbe: return "probe";
    case ProgressState::kReplicate: return "replicate";
    case ProgressState::kSnapshot: return "snapshot";
  }
  return "unknown";
}

namespace {
void reset_state(Progress& pr, ProgressState state) {
  pr.msg_app_flow_paused = false;
  pr.pending_snapshot = LogIndex{0};
  pr.snapshot_offset = 0;
  pr.state = state;
  pr.inflights.reset();
}
}  // namespace

void Progress::become_probe() {
  // Leaving snapshot state: the follower has at least the snapshot, so probe
  // just past it rather than from where we were.
  if (state == ProgressState::kSnapshot) {
    const LogIndex pending = pending_snapshot;
    reset_state(*this, ProgressState::kProbe);
    next = std::max(match + 1, pending + 1);
  } else {
    reset_state(*this, ProgressState::kProbe);
    next = match + 1;
  }
}

void Progress::become_replicate() {
  reset_state(*this, ProgressState::kReplicate);
  next = match + 1;
}

void Progress::become_snapshot(LogIndex snapshot_index) {
  reset_state(*this, ProgressState::kSnapshot);
  pending_snapshot = snapshot_index;
}

bool Progress::maybe_update(LogIndex index) {
  bool updated = false;
  if (match < index) {
    match = index;
    updated = true;
    msg_app_flow_paused = false;
  }
  next = std::max(next, index + 1);
  return updated;
}

void Progress::sent_entries(LogIndex last, size_t bytes) {
  switch (state) {
    case ProgressState::kReplicate:
      if (last >= next) {
        next = last + 1;
        inflights.add(last, bytes);
      }
      break;
    case ProgressState::kProbe:
      // One probe per heartbeat interval, until the follower answers.
      msg_app_flow_paused = true;
      break;
    case ProgressState::kSnapshot:
      SYNOD_UNREACHABLE("appends are not sent while a snapshot is in flight");
  }
}

bool Progress::maybe_decr_to(LogIndex rejected, LogIndex match_hint) {
  if (state == ProgressState::kReplicate) {
    // In replicate state a rejection below match is stale (reordered).
    if (rejected <= match) return false;
    next = match + 1;
    return true;
  }
  // In probe state only the rejection of the last probe counts.
  if (next - 1 != rejected) return false;
  // Never probe at or below `match`: a stale or duplicated rejection must
  // not send us back past what the follower is known to hold.
  next = std::max(std::min(rejected, match_hint + 1), match + 1);
  msg_app_flow_paused = false;
  return true;
}

bool Progress::is_paused() const {
  switch (state) {
    case ProgressState::kProbe: return msg_app_flow_paused;
    // The window itself decides: a heartbeat answer must not open a full one.
    case ProgressState::kReplicate: return inflights.full();
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

}  // namespace synod::raft
