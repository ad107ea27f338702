// The KV crash loop's command stream: entry i of group 1's committed log as a
// pure function of i. The child (kv_crash_child.cc) applies it and the test
// (kv_crash_test.cc) replays any prefix of it through a model, so neither has
// to remember what was applied. One definition for both sides: if they
// disagreed, every recovery would look wrong.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "node/kv_state_machine.h"
#include "raft/types.h"

namespace synod::node::kv_crash {

// The crash loop applies group 1 only.
constexpr raft::GroupId kGroup{1};

constexpr uint64_t kClients = 5;
constexpr int kRetryChainStepsMax = 32;

enum class SlotKind { kEmpty, kFresh, kClientless, kRetry, kStaleRetry };

inline uint64_t stream_mix(uint64_t index, uint64_t salt) {
  uint64_t z = index * 0x9e3779b97f4a7c15ULL ^ salt * 0xd6e8feb86659fd93ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// What entry `index` carries: nothing (4%), a new command of client
// 1 + index % 5 (sequence = index) or of no client (15%), the retry of that
// client's previous command (10%), or a retry of an older one (3%).
inline SlotKind slot_kind(uint64_t index) {
  const uint64_t roll = stream_mix(index, 1) % 100;
  if (roll < 4) return SlotKind::kEmpty;
  if (roll < 14) return SlotKind::kRetry;
  if (roll < 17) return SlotKind::kStaleRetry;
  if (roll < 32) return SlotKind::kClientless;
  return SlotKind::kFresh;
}

// The index whose new command entry `index` carries (itself unless it is a
// retry), or 0 for an empty entry. A retry repeats the command of the
// client's previous slot (index - 5), which is that client's latest request
// unless that slot held no request of the client; then the retry is a new
// command instead. A stale retry repeats the slot before that (index - 10),
// whose sequence is below the client's latest.
inline uint64_t command_origin(uint64_t index) {
  const SlotKind kind = slot_kind(index);
  if (kind == SlotKind::kEmpty) return 0;
  if (kind == SlotKind::kStaleRetry) {
    return (index > 2 * kClients && slot_kind(index - 2 * kClients) == SlotKind::kFresh)
               ? index - 2 * kClients
               : index;
  }
  uint64_t at = index;
  for (int step = 0; step < kRetryChainStepsMax && slot_kind(at) == SlotKind::kRetry; ++step) {
    if (at <= kClients) return index;
    const SlotKind before = slot_kind(at - kClients);
    if (before == SlotKind::kFresh) return at - kClients;
    if (before != SlotKind::kRetry) return index;
    at -= kClients;
  }
  return index;
}

// The new command first issued at `origin`. Three key families keep the
// operations meaningful: counters (INCRBY), registers (PUT/CAS), logs
// (APPEND, where applying twice or skipping shows for good).
inline Command fresh_command(uint64_t origin) {
  Command command;
  if (slot_kind(origin) != SlotKind::kClientless) {
    command.client_id = 1 + origin % kClients;
    command.sequence = origin;
  }
  const uint64_t key_roll = stream_mix(origin, 2) % 50;
  const uint64_t op_roll = stream_mix(origin, 3) % 100;
  const uint64_t value_roll = stream_mix(origin, 4);
  char key[16];
  if (key_roll < 15) {
    std::snprintf(key, sizeof key, "ctr/%02llu", static_cast<unsigned long long>(key_roll));
    if (op_roll < 70) {
      command.op = CommandOp::kIncrBy;
      command.value = std::to_string(static_cast<int64_t>(value_roll % 41) - 20);
    } else if (op_roll < 80) {
      command.op = CommandOp::kDelete;
    } else if (op_roll < 90) {
      command.op = CommandOp::kCas;
      command.expect_absent = true;
      command.value = "100";
    } else {
      command.op = CommandOp::kCas;
      command.expected = std::to_string(value_roll % 8);
      command.value = "1000";
    }
  } else if (key_roll < 30) {
    std::snprintf(key, sizeof key, "reg/%02llu", static_cast<unsigned long long>(key_roll - 15));
    if (op_roll < 45) {
      command.op = CommandOp::kPut;
      command.value = "v" + std::to_string(value_roll % 4);
    } else if (op_roll < 75) {
      command.op = CommandOp::kCas;
      command.expected = "v" + std::to_string(value_roll % 4);
      command.value = "v" + std::to_string((value_roll >> 8) % 4);
    } else if (op_roll < 82) {
      command.op = CommandOp::kCas;
      command.expect_absent = true;
      command.value = "v0";
    } else if (op_roll < 92) {
      command.op = CommandOp::kDelete;
    } else {
      command.op = CommandOp::kIncrBy;  // on a non-integer: an error reply
      command.value = "1";
    }
  } else {
    std::snprintf(key, sizeof key, "log/%02llu", static_cast<unsigned long long>(key_roll - 30));
    if (op_roll < 88) {
      command.op = CommandOp::kAppend;
      command.value = std::to_string(origin) + ";";
    } else {
      command.op = CommandOp::kDelete;
    }
  }
  command.key = key;
  return command;
}

inline raft::Term stream_term(uint64_t index) { return raft::Term{1 + index / 512}; }

inline raft::Entry crash_stream_entry(uint64_t index) {
  raft::Entry entry{stream_term(index), raft::LogIndex{index}, raft::EntryType::kNormal,
                    base::Bytes()};
  const uint64_t origin = command_origin(index);
  if (origin != 0) entry.data = base::Bytes(encode_command(fresh_command(origin)));
  return entry;
}

inline raft::ConfState stream_conf_state() {
  raft::ConfState conf;
  conf.voters = {raft::NodeId{1}, raft::NodeId{2}, raft::NodeId{3}};
  return conf;
}

// A running hash of apply()'s answers to entries first applied in one run:
// the child reports it, the parent recomputes it from the model, so every
// reply (INCRBY's new value, APPEND's length, CAS's outcome, a retry answered
// from the dedupe table) is checked, not only the state left at the end.
inline uint64_t chain_answer(uint64_t chain, const AppliedEntry& answer) {
  auto absorb = [&chain](uint64_t word) { chain = stream_mix(chain ^ word, 5); };
  absorb(answer.index.value());
  absorb(answer.deduplicated ? 1 : 0);
  if (!answer.reply.has_value()) {
    absorb(0);
    return chain;
  }
  absorb(1 + static_cast<uint64_t>(answer.reply->kind));
  absorb(static_cast<uint64_t>(answer.reply->integer));
  absorb(answer.reply->error.size());
  for (char c : answer.reply->error) absorb(static_cast<unsigned char>(c));
  return chain;
}

}  // namespace synod::node::kv_crash
