// Ready: everything the host must do for a Raft group, in one struct.
//
// The contract, in order, for each Ready taken from a RawNode:
//   1. Send `messages` at once (the leader's appends and heartbeats may go out
//      while its own disk write is still running: Raft thesis §10.2.1).
//   2. Persist `hard_state`, `entries` and `snapshot` (entries may overwrite a
//      suffix of what is stored; the snapshot replaces what it covers), and
//      make them durable if `must_sync`.
//   3. Only then send `messages_after_persist`: votes and acknowledgements
//      that promise the state in step 2 is durable.
//   4. Apply `snapshot` then `committed_entries` to the state machine, and
//      release `read_states` once their index is applied. Committed entries
//      below the first of `entries` are already durable here (the previous
//      Ready was persisted before this one was taken) and may be applied
//      beside step 2 rather than after it; node::Node does.
//   5. Call `RawNode::advance()`.
#pragma once

#include <optional>
#include <vector>

#include "raft/types.h"

namespace synod::raft {

struct Ready {
  std::optional<SoftState> soft_state;
  std::optional<HardState> hard_state;
  std::vector<ReadState> read_states;
  std::vector<Entry> entries;
  std::optional<Snapshot> snapshot;
  std::vector<Entry> committed_entries;
  std::vector<Message> messages;
  std::vector<Message> messages_after_persist;
  // Whether step 2 needs an fsync (new entries, or a changed term or vote).
  bool must_sync = false;

  bool empty() const {
    return !soft_state && !hard_state && read_states.empty() && entries.empty() &&
           !snapshot && committed_entries.empty() && messages.empty() &&
           messages_after_persist.empty();
  }
};

}  // namespace synod::raft
