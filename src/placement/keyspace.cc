#include "placement/keyspace.h"

#include <algorithm>
#include <cctype>

#include "base/codec.h"
#include "placement/partition.h"

namespace synod::placement {

using base::Errc;
using base::Error;

namespace {

// 1: no state byte (read as active); 2: the state after the group range.
constexpr uint8_t kFormatVersion = 2;
constexpr size_t kNameBytesMax = 64;
constexpr size_t kFieldBytesMax = 64;

}  // namespace

std::string_view state_name(KeyspaceState state) {
  switch (state) {
    case KeyspaceState::kCreating: return "creating";
    case KeyspaceState::kActive: return "active";
    case KeyspaceState::kDropping: return "dropping";
  }
  return "?";
}

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kStrong: return "strong";
    case Mode::kEventual: return "eventual";
  }
  return "?";
}

base::Status validate(const Keyspace& k) {
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidArgument, "keyspace \"" + k.name + "\": " + why);
  };
  if (k.name.empty() || k.name.size() > kNameBytesMax ||
      !std::all_of(k.name.begin(), k.name.end(),
                   [](char c) {
                     return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                            c == '-' || c == ':';
                   }) ||
      k.name.front() == ':' || k.name.back() == ':' || k.name.find("::") != std::string::npos) {
    return bad("a name is 1 to 64 characters of a-z, 0-9, _ and -, in parts joined by ':'");
  }
  if (k.mode != Mode::kStrong && k.mode != Mode::kEventual) return bad("unknown mode");
  if (k.partitions == 0 || k.partitions > kPartitionsMax || (k.partitions & (k.partitions - 1)) != 0) {
    return bad("partitions must be a power of two from 1 to 4096, not " +
               std::to_string(k.partitions));
  }
  if (k.replicas == 0 || k.replicas > kReplicasMax) {
    return bad("replicas must be 1 to 7, not " + std::to_string(k.replicas));
  }
  if (k.zone_policy != "spread" && k.zone_policy != "any") {
    return bad("zone policy must be spread or any, not \"" + k.zone_policy + "\"");
  }
  if (k.write_quorum > k.replicas || k.read_quorum > k.replicas) {
    return bad("a quorum cannot be larger than the replicas");
  }
  if (k.mode == Mode::kStrong && (k.write_quorum != 0 || k.read_quorum != 0 || !k.merge.empty())) {
    return bad("quorums and merge policies belong to eventual keyspaces");
  }
  if (k.merge.size() > kFieldBytesMax) return bad("merge policy name too long");
  return {};
}

base::Result<Keyspace> keyspace_from_options(
    const std::string& name, const std::vector<std::pair<std::string, std::string>>& options) {
  Keyspace k;
  k.name = name;
  auto number = [&](const std::string& option, const std::string& text,
                    uint32_t* into) -> base::Status {
    if (text.empty() || text.size() > 9 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Error(Errc::kInvalidArgument, option + " must be a number, not \"" + text + "\"");
    }
    *into = static_cast<uint32_t>(std::stoul(text));
    return {};
  };
  for (const auto& [raw_option, value] : options) {
    std::string option = raw_option;
    std::transform(option.begin(), option.end(), option.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    base::Status parsed;
    if (option == "mode") {
      if (value == "strong") {
        k.mode = Mode::kStrong;
      } else if (value == "eventual") {
        k.mode = Mode::kEventual;
      } else {
        parsed = Error(Errc::kInvalidArgument, "mode must be strong or eventual, not \"" + value + "\"");
      }
    } else if (option == "replicas") {
      parsed = number(option, value, &k.replicas);
    } else if (option == "partitions") {
      parsed = number(option, value, &k.partitions);
    } else if (option == "zone-policy" || option == "zone_policy") {
      k.zone_policy = value;
    } else if (option == "w") {
      parsed = number(option, value, &k.write_quorum);
    } else if (option == "r") {
      parsed = number(option, value, &k.read_quorum);
    } else if (option == "merge") {
      k.merge = value;
    } else {
      parsed = Error(Errc::kInvalidArgument,
                     "unknown keyspace option \"" + raw_option +
                         "\" (mode, replicas, partitions, zone-policy, w, r, merge)");
    }
    if (!parsed) return parsed.error();
  }
  if (base::Status valid = validate(k); !valid) return valid.error();
  return k;
}

std::string encode_keyspace(const Keyspace& k) {
  std::string out;
  base::Encoder e(out);
  e.byte(kFormatVersion);
  e.bytes(k.name);
  e.byte(static_cast<uint8_t>(k.mode));
  e.varint(k.replicas);
  e.varint(k.partitions);
  e.bytes(k.zone_policy);
  e.varint(k.write_quorum);
  e.varint(k.read_quorum);
  e.bytes(k.merge);
  e.varint(k.first_group);
  e.byte(static_cast<uint8_t>(k.state));
  return out;
}

base::Result<Keyspace> decode_keyspace(std::string_view bytes) {
  base::Decoder d(bytes);
  uint8_t version = 0, mode = 0, state = static_cast<uint8_t>(KeyspaceState::kActive);
  uint64_t replicas = 0, partitions = 0, w = 0, r = 0;
  std::string_view name, zone_policy, merge;
  Keyspace k;
  if (!d.byte(&version) || version < 1 || version > kFormatVersion ||
      !d.bytes(&name, kNameBytesMax) ||
      !d.byte(&mode) || !d.varint(&replicas) || !d.varint(&partitions) ||
      !d.bytes(&zone_policy, kFieldBytesMax) || !d.varint(&w) || !d.varint(&r) ||
      !d.bytes(&merge, kFieldBytesMax) || !d.varint(&k.first_group) ||
      (version >= 2 && !d.byte(&state)) || !d.done() ||
      state < static_cast<uint8_t>(KeyspaceState::kCreating) ||
      state > static_cast<uint8_t>(KeyspaceState::kDropping) ||
      replicas > kReplicasMax || partitions > kPartitionsMax || w > kReplicasMax ||
      r > kReplicasMax) {
    return Error(Errc::kCorruption, "a keyspace record does not parse");
  }
  k.name = std::string(name);
  k.mode = static_cast<Mode>(mode);
  k.replicas = static_cast<uint32_t>(replicas);
  k.partitions = static_cast<uint32_t>(partitions);
  k.zone_policy = std::string(zone_policy);
  k.write_quorum = static_cast<uint32_t>(w);
  k.read_quorum = static_cast<uint32_t>(r);
  k.merge = std::string(merge);
  k.state = static_cast<KeyspaceState>(state);
  if (base::Status valid = validate(k); !valid) {
    return Error(Errc::kCorruption, "a stored keyspace is invalid: " + valid.error().message());
  }
  return k;
}

void Catalog::put(Keyspace keyspace) {
  std::string name = keyspace.name;
  keyspaces_[std::move(name)] = std::move(keyspace);
}

void Catalog::erase(const std::string& name) { keyspaces_.erase(name); }

const Keyspace* Catalog::find(const std::string& name) const {
  auto it = keyspaces_.find(name);
  return it == keyspaces_.end() ? nullptr : &it->second;
}

const Keyspace* Catalog::keyspace_of(std::string_view key) const {
  // Every "K:" prefix of the key, longest first ("app:users" before "app").
  for (size_t colon = key.rfind(':'); colon != std::string_view::npos && colon > 0;
       colon = key.rfind(':', colon - 1)) {
    auto it = keyspaces_.find(std::string(key.substr(0, colon)));
    if (it != keyspaces_.end()) return &it->second;
  }
  return find(std::string(kDefaultKeyspace));
}

const Keyspace* Catalog::keyspace_of_group(uint64_t group) const {
  for (const auto& [name, keyspace] : keyspaces_) {
    if (group >= keyspace.first_group && group < keyspace.first_group + keyspace.partitions) {
      return &keyspace;
    }
  }
  return nullptr;
}

std::string not_served_reason(const Keyspace& keyspace) {
  if (keyspace.state == KeyspaceState::kActive) return {};
  return "keyspace '" + keyspace.name + "' is being " +
         (keyspace.state == KeyspaceState::kCreating ? "created" : "dropped");
}

uint64_t Catalog::group_of(std::string_view key, std::string* why) const {
  const Keyspace* k = keyspace_of(key);
  if (k == nullptr) return 0;
  if (k->state != KeyspaceState::kActive) {
    if (why != nullptr) *why = not_served_reason(*k);
    return 0;
  }
  return k->group_of_partition(partition_of(key, k->partitions));
}

}  // namespace synod::placement
