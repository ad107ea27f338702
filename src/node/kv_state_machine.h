// The replicated key-value state machine of one Raft group, on a KvEngine.
//
// It applies committed log entries (encoded `Command`s) to the engine. Its
// guarantees across restarts:
//   - exactly once: the applied index, the data an entry changes and the
//     client's dedupe record are written in one atomic engine batch, so after
//     a crash the engine holds either all of an entry's effects or none, and
//     `apply` skips entries at or below the applied index it finds there;
//   - retries are deduplicated: a command carrying (client id, sequence)
//     that was already applied returns the stored reply and changes nothing
//     (one outstanding request per client, as in the Raft thesis §6.3);
//   - a snapshot is a consistent copy of this group's keys, sessions and
//     applied position, in checksummed blocks; installing one verifies every
//     block first and then replaces the group's state in one batch, so a
//     damaged or half-received snapshot never becomes visible.
//
// Engine layout, per group g (8-byte big-endian so groups sort apart):
//   'd' g key        → value          user data
//   's' g client_id  → sequence|reply dedupe table
//   'm' g            → applied index, applied term, conf state
//   'x' g key        → expiry, Unix ms, 8-byte big-endian (keys with a TTL)
//
// Expiry: a key whose expiry is at or before a command's `now_ms` is absent
// to that command, and a write that finds it so deletes it (lazily, the same
// way on every replica, since `now_ms` travels in the log). SET replaces the
// TTL (unless KEEPTTL); INCR and APPEND keep it; DEL and GETDEL drop it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/bugs.h"
#include "node/kv_engine.h"
#include "raft/types.h"

namespace synod::node {

enum class CommandOp : uint8_t {
  kPut = 1,     // value
  kDelete = 2,  //
  kCas = 3,     // expected (absent when `expect_absent`), value
  kIncrBy = 4,  // value = decimal delta
  kAppend = 5,  // value
  kSet = 6,     // value, with `flags` (Redis's SET NX / XX / GET)
  kGetDel = 7,  // deletes; replies with the old value
  // The meta group's catalog (these stay the last ops: the state machine
  // tells them by op >= kCreateKeyspace); a keyspace goes creating -> active ->
  // dropping -> gone, each step its own command (key = the name), so that
  // every member can learn of a step before the next (docs/placement.md).
  // kCreateKeyspace: value = the encoded placement::Keyspace, expected = its
  // encoded placement; replies with the first Raft group handed to it.
  kCreateKeyspace = 8,
  // The later steps name the keyspace in `key`; `expected`, if not empty,
  // is its first group in decimal, and the step is refused for any other.
  kDropKeyspace = 9,      // creating or active -> dropping
  kActivateKeyspace = 10,  // creating -> active
  kForgetKeyspace = 11,    // dropping -> gone (record and placement removed)
  // An active keyspace's target placement (value: encoded placement); its
  // groups' leaders then move replicas until each group's configuration
  // matches it. `expected` is "FIRST_GROUP/VERSION": VERSION (hex, from
  // placement::placement_version) must be the current placement's, so two
  // moves made from the same reading cannot undo each other. A placement
  // that names a node again for a partition it held before is refused (its
  // log would need resetting first).
  kSetPlacement = 12,
};

// Where the meta group keeps its catalog (user keys of group 1's machine,
// which no client key is ever routed to).
inline constexpr std::string_view kKeyspaceRecordPrefix = "keyspace/";
inline constexpr std::string_view kPlacementRecordPrefix = "placement/";
// Per partition, every node that ever held a replica (a placement may not
// name one of them again: see kSetPlacement).
inline constexpr std::string_view kHeldRecordPrefix = "held/";
inline constexpr std::string_view kNextGroupRecord = "next-group";
// The meta group: the only group whose machine takes catalog commands.
inline constexpr uint64_t kMetaGroupId = 1;
// Raft groups handed to created keyspaces start here (the default keyspace
// has groups 2 .. 4097 at most).
inline constexpr uint64_t kFirstKeyspaceGroup = uint64_t{1} << 20;

// kSet's flags.
inline constexpr uint8_t kSetIfAbsent = 1;   // NX
inline constexpr uint8_t kSetIfPresent = 2;  // XX
inline constexpr uint8_t kSetReturnOld = 4;  // GET
inline constexpr uint8_t kSetKeepTtl = 8;    // KEEPTTL

// A user key's bytes, at most: the engine key adds a 9-byte prefix (kind and
// group) and must stay within kMaxKeyBytes.
inline constexpr size_t kMaxUserKeyBytes = kMaxKeyBytes - 9;

struct Command {
  uint64_t client_id = 0;  // 0: no dedupe
  uint64_t sequence = 0;
  CommandOp op = CommandOp::kPut;
  std::string key;
  std::string value;
  std::string expected;
  bool expect_absent = false;
  uint8_t flags = 0;  // kSet only
  // Wall-clock milliseconds when the request was received, stamped by the
  // host: every replica judges expiry against this same time, so applying
  // stays deterministic. 0: nothing expires for this command.
  uint64_t now_ms = 0;
  // kSet: when the key expires (Unix ms), 0 for never (unless kSetKeepTtl).
  uint64_t expire_at_ms = 0;
};

std::string encode_command(const Command& command);
base::Result<Command> decode_command(std::string_view data);

// What applying one command produced.
struct CommandReply {
  enum class Kind : uint8_t { kOk = 0, kInteger = 1, kError = 2 };
  Kind kind = Kind::kOk;
  int64_t integer = 0;    // kInteger: INCRBY's new value, CAS's and SET's 1/0, DEL's count, APPEND's length
  std::string error;      // kError: a message for the client
  // The value the key held before: kSet with kSetReturnOld, and kGetDel.
  std::optional<std::string> value;
  friend bool operator==(const CommandReply&, const CommandReply&) = default;
};

struct AppliedEntry {
  raft::LogIndex index;
  // Absent for entries that carry no command (empty or conf change) and for
  // entries skipped because they were applied before a restart.
  std::optional<CommandReply> reply;
  bool deduplicated = false;  // a retry answered from the dedupe table
  // Whose command it was (zero when there was none), so a host can route
  // the reply to the request waiting for it.
  uint64_t client_id = 0;
  uint64_t sequence = 0;
};

struct AppliedState {
  raft::LogIndex index;
  raft::Term term;
  raft::ConfState conf_state;
  friend bool operator==(const AppliedState&, const AppliedState&) = default;
};

class KvStateMachine {
 public:
  KvStateMachine(raft::GroupId group, KvEngine* engine);

  // Reads the applied state back from the engine (zero if none).
  base::Status load();
  // A new replica of a group created by bootstrap (the configuration arrives
  // as a snapshot at `state.index`): records that position, durably. Refused
  // unless nothing was ever applied.
  base::Status bootstrap(const AppliedState& state);
  const AppliedState& applied() const { return applied_; }
  // Changes whenever the catalog's records may have changed (a catalog
  // command applied, a snapshot installed, the state loaded): a host
  // rereads the catalog when it differs from the value it last saw.
  uint64_t catalog_version() const { return catalog_version_; }
  // Injected bugs (the simulator only; base/bugs.h).
  void set_bugs(base::BugSet bugs) { bugs_ = bugs; }

  // Applies committed entries in one atomic engine batch. Entries at or
  // below the applied index are skipped. `conf_state`, when given, is the
  // configuration after the last of them (the host learns it from Raft).
  base::Result<std::vector<AppliedEntry>> apply(const std::vector<raft::Entry>& entries,
                                                const raft::ConfState* conf_state,
                                                WriteOptions options = {});

  // Reads a key of this group (for linearizable reads once applied); a key
  // expired at `now_ms` (when non-zero) reads as absent.
  base::Result<std::optional<std::string>> get(std::string_view key, uint64_t now_ms = 0) const;
  // Every (key, value) whose key starts with `prefix`, in key order, at
  // most `limit` of them (expiry is not judged: for the meta catalog).
  base::Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view start,
                                                                        size_t limit) const;

  // Deletes everything this group holds (data, sessions, expiries, its
  // applied state) in one batch: the replica is gone (its keyspace was
  // dropped). Loading afterwards finds nothing applied.
  base::Status remove_all(WriteOptions options = {});

  // A snapshot of this group's state at the applied index.
  base::Result<raft::Snapshot> snapshot() const;
  // Replaces this group's state with `snapshot`; refuses a damaged one with
  // kCorruption before changing anything.
  base::Status install(const raft::Snapshot& snapshot, WriteOptions options = {});

 private:
  std::string data_key(std::string_view key) const;
  std::string session_key(uint64_t client_id) const;
  std::string expiry_key(std::string_view key) const;
  std::string meta_key() const;
  std::string prefix(char kind) const;
  void remember_session(uint64_t client_id, std::string record);

  static constexpr size_t kSessionCacheEntriesMax = 100'000;
  static constexpr size_t kSessionCacheBytesMax = 16u << 20;
  static constexpr size_t kSessionCacheRecordBytesMax = 4096;

  // The dedupe record last read or written for a client, by client id: every
  // write reads its client's record, and the engine's lookup is a memtable
  // search while this is a hash probe. Filled only from what the engine
  // holds (after a successful write); emptied by load() and install().
  std::unordered_map<uint64_t, std::string> sessions_;
  size_t sessions_bytes_ = 0;  // of the records in sessions_

  raft::GroupId group_;
  KvEngine* engine_;
  AppliedState applied_;
  base::BugSet bugs_;
  uint64_t catalog_version_ = 0;
};

}  // namespace synod::node
