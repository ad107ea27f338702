// KV commands and their log entries for state machine tests.
#pragma once

#include <string>

#include "node/kv_state_machine.h"
#include "raft/types.h"

namespace synod::test_support {

inline node::Command kv_command(uint64_t client, uint64_t sequence, node::CommandOp op,
                                std::string key, std::string value = {}) {
  node::Command c;
  c.client_id = client;
  c.sequence = sequence;
  c.op = op;
  c.key = std::move(key);
  c.value = std::move(value);
  return c;
}

inline raft::Entry kv_entry(uint64_t index, const node::Command& command, uint64_t term = 1) {
  return raft::Entry{raft::Term{term}, raft::LogIndex{index}, raft::EntryType::kNormal,
                     base::Bytes(node::encode_command(command))};
}

}  // namespace synod::test_support
