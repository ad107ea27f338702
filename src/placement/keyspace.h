// Keyspaces: named sets of keys with their own consistency mode, replication
// factor and partition count. A key belongs to keyspace K when it starts with
// "K:" and K is defined (the longest such K), otherwise to "default". Each
// keyspace's partitions are Raft groups first_group .. first_group +
// partitions - 1 (the meta group hands out the range when it creates the
// keyspace).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace synod::placement {

enum class Mode : uint8_t { kStrong = 1, kEventual = 2 };
std::string_view mode_name(Mode mode);

// Where a keyspace is in its life. While it is being created or dropped its
// keys are served by no one (TRYAGAIN): until every member knows of the
// change, two nodes could otherwise route one key to two different groups
// (docs/placement.md, "Not built yet").
enum class KeyspaceState : uint8_t { kCreating = 1, kActive = 2, kDropping = 3 };
std::string_view state_name(KeyspaceState state);

inline constexpr std::string_view kDefaultKeyspace = "default";
inline constexpr uint32_t kPartitionsMax = 4096;
inline constexpr uint32_t kReplicasMax = 7;

struct Keyspace {
  std::string name;
  Mode mode = Mode::kStrong;
  uint32_t replicas = 3;
  uint32_t partitions = 4;  // a power of two
  // Replicas of a partition go to distinct zones first ("spread"), or
  // anywhere ("any").
  std::string zone_policy = "spread";
  // Eventual keyspaces (carried by the schema from the start): default
  // write and read quorums and the merge policy.
  uint32_t write_quorum = 0;
  uint32_t read_quorum = 0;
  std::string merge;
  uint64_t first_group = 0;  // set by the meta group at creation
  KeyspaceState state = KeyspaceState::kActive;

  uint64_t group_of_partition(uint32_t partition) const { return first_group + partition; }
  friend bool operator==(const Keyspace&, const Keyspace&) = default;
};

// kInvalidArgument naming the first problem: a name of 1-64 characters from
// [a-z0-9_-], a power-of-two partition count up to 4096, 1-7 replicas, a
// known zone policy, quorums no larger than the replicas (eventual only).
// Names are parts of a-z, 0-9, _ and - joined by ':' ("app:users").
base::Status validate(const Keyspace& keyspace);

// A keyspace named `name` from option pairs as a person writes them (ctl's
// flags, the RESP command's arguments, the HTTP query): mode, replicas,
// partitions, zone-policy, w, r, merge; names are case-insensitive. An
// unknown option, a value that is not a number where one is needed, or an
// invalid result is kInvalidArgument naming it.
base::Result<Keyspace> keyspace_from_options(
    const std::string& name, const std::vector<std::pair<std::string, std::string>>& options);

// An administrative request about keyspaces, as ctl, the HTTP API and the
// RESP KEYSPACE command all make it.
struct KeyspaceCall {
  enum class Op : uint8_t { kCreate, kDrop, kList, kDescribe, kMove };
  Op op = Op::kList;
  std::string name;  // kCreate, kDrop, kDescribe, kMove
  // kCreate: the keyspace's options; kMove: partition, from and to (node ids).
  std::vector<std::pair<std::string, std::string>> options;
};

std::string encode_keyspace(const Keyspace& keyspace);
base::Result<Keyspace> decode_keyspace(std::string_view bytes);

// Why a keyspace's keys are not served now ("keyspace 'app' is being
// created"); empty while it is active.
std::string not_served_reason(const Keyspace& keyspace);

// Every keyspace a node knows, for routing keys.
class Catalog {
 public:
  // Replaces the keyspace of that name (validated by the caller).
  void put(Keyspace keyspace);
  void erase(const std::string& name);
  const Keyspace* find(const std::string& name) const;
  // The keyspace `key` belongs to: the longest defined K with "K:" a prefix
  // of the key, else "default" (null only if no default is defined).
  const Keyspace* keyspace_of(std::string_view key) const;
  // The keyspace whose partitions include Raft group `group` (null: none).
  const Keyspace* keyspace_of_group(uint64_t group) const;
  // The Raft group that holds `key`, or 0 when its keyspace is being
  // created or dropped (`why` says which).
  uint64_t group_of(std::string_view key, std::string* why = nullptr) const;
  const std::map<std::string, Keyspace>& all() const { return keyspaces_; }

 private:
  std::map<std::string, Keyspace> keyspaces_;
};

}  // namespace synod::placement
