#include "node/kv_state_machine.h"

#include <charconv>
#include <limits>
#include <map>

#include "base/codec.h"
#include "base/decimal.h"
#include "base/frame.h"
#include "placement/keyspace.h"
#include "placement/placement.h"

namespace synod::node {

using base::Decoder;
using base::Encoder;
using base::Errc;
using base::Error;
using base::Result;
using base::Status;
using raft::LogIndex;
using raft::Term;

namespace {

// 1: without flags; 2: with a flags byte at the end; 3: then now_ms and
// expire_at_ms as varints. All three are read.
constexpr uint8_t kCommandFormatVersion = 3;
constexpr uint8_t kSnapshotFormatVersion = 1;
// Snapshot frames: header, data blocks, trailer.
constexpr uint8_t kSnapshotHeader = 1;
constexpr uint8_t kSnapshotBlock = 2;
constexpr uint8_t kSnapshotTrailer = 3;
constexpr size_t kSnapshotBlockBytesTarget = 1u << 20;
constexpr uint32_t kSnapshotFramePayloadMax =
    static_cast<uint32_t>(kSnapshotBlockBytesTarget + kMaxKeyBytes + kMaxValueBytes + 64);
constexpr size_t kReplyErrorBytesMax = 4096;

Error corrupt_command(const std::string& why) {
  return Error(Errc::kInvalidArgument, "malformed command: " + why);
}

void append_be64(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

// The first key after every key that starts with `prefix`.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto last = static_cast<uint8_t>(prefix.back());
    if (last != 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;  // every key: an empty end means "to the end"
}

void encode_reply(Encoder& encoder, const CommandReply& reply) {
  encoder.byte(static_cast<uint8_t>(reply.kind));
  encoder.varint(static_cast<uint64_t>(reply.integer));
  encoder.bytes(reply.error);
  // The old value only when there is one to give back: records written
  // before values existed end here, and read the same.
  if (reply.value) {
    encoder.byte(1);
    encoder.bytes(*reply.value);
  }
}

bool decode_reply(Decoder& decoder, CommandReply* reply) {
  uint8_t kind = 0;
  uint64_t integer = 0;
  std::string_view error;
  if (!decoder.byte(&kind) || kind > 2 || !decoder.varint(&integer) ||
      !decoder.bytes(&error, kReplyErrorBytesMax)) {
    return false;
  }
  reply->kind = static_cast<CommandReply::Kind>(kind);
  reply->integer = static_cast<int64_t>(integer);
  reply->error = std::string(error);
  reply->value.reset();
  if (!decoder.done()) {
    uint8_t has_value = 0;
    std::string_view value;
    if (!decoder.byte(&has_value) || has_value != 1 || !decoder.bytes(&value, kMaxValueBytes)) {
      return false;
    }
    reply->value = std::string(value);
  }
  return true;
}

CommandReply error_reply(std::string message) {
  CommandReply reply;
  reply.kind = CommandReply::Kind::kError;
  reply.error = std::move(message);
  return reply;
}
CommandReply integer_reply(int64_t value) {
  CommandReply reply;
  reply.kind = CommandReply::Kind::kInteger;
  reply.integer = value;
  return reply;
}

bool parse_int64(std::string_view text, int64_t* value) {
  const std::optional<int64_t> parsed = base::parse_decimal_int64(text);
  if (parsed) *value = *parsed;
  return parsed.has_value();
}

std::string encode_applied(const AppliedState& state) {
  std::string out;
  Encoder encoder(out);
  encoder.varint(state.index.value());
  encoder.varint(state.term.value());
  raft::encode_conf_state(encoder, state.conf_state);
  return out;
}

bool decode_applied(std::string_view data, AppliedState* state) {
  Decoder decoder(data);
  uint64_t index = 0, term = 0;
  if (!decoder.varint(&index) || !decoder.varint(&term) ||
      !raft::decode_conf_state(decoder, &state->conf_state) || !decoder.done()) {
    return false;
  }
  state->index = LogIndex{index};
  state->term = Term{term};
  return true;
}

// Reads through the batch being built, so two commands on one key in one
// batch see each other.
class Overlay {
 public:
  explicit Overlay(const KvEngine* engine) : engine_(engine) {}
  Result<std::optional<std::string>> get(const std::string& key) const {
    if (wrote(key)) return written(key);
    return engine_->get(key);
  }
  // Whether this batch wrote (or deleted) `key`.
  bool wrote(const std::string& key) const { return pending_.contains(key); }
  // What it wrote there; nullopt: deleted (or not written).
  std::optional<std::string> written(const std::string& key) const {
    auto it = pending_.find(key);
    if (it == pending_.end() || !it->second) return std::nullopt;
    return batch_.ops()[*it->second].value;
  }
  // The value is moved into the batch, not copied: it may be 64 MiB.
  void put(const std::string& key, std::string value) {
    pending_[key] = batch_.ops().size();
    batch_.put_moved(key, std::move(value));
  }
  void del(const std::string& key) {
    batch_.del(key);
    pending_[key] = std::nullopt;
  }
  WriteBatch& batch() { return batch_; }

 private:
  const KvEngine* engine_;
  WriteBatch batch_;
  // Keys this batch wrote: the index of the op holding the value, or
  // nullopt when the key was deleted.
  std::map<std::string, std::optional<size_t>> pending_;
};

}  // namespace

std::string encode_command(const Command& command) {
  std::string out;
  Encoder encoder(out);
  encoder.byte(kCommandFormatVersion);
  encoder.varint(command.client_id);
  encoder.varint(command.sequence);
  encoder.byte(static_cast<uint8_t>(command.op));
  encoder.bytes(command.key);
  encoder.bytes(command.value);
  encoder.bytes(command.expected);
  encoder.byte(command.expect_absent ? 1 : 0);
  encoder.byte(command.flags);
  encoder.varint(command.now_ms);
  encoder.varint(command.expire_at_ms);
  return out;
}

Result<Command> decode_command(std::string_view data) {
  Decoder decoder(data);
  uint8_t version = 0, op = 0, absent = 0;
  Command command;
  std::string_view key, value, expected;
  if (!decoder.byte(&version)) return corrupt_command("empty");
  if (version < 1 || version > kCommandFormatVersion) {
    return corrupt_command("unknown format version " + std::to_string(version));
  }
  uint8_t flags = 0;
  if (!decoder.varint(&command.client_id) || !decoder.varint(&command.sequence) ||
      !decoder.byte(&op) || !decoder.bytes(&key, kMaxUserKeyBytes) ||
      !decoder.bytes(&value, kMaxValueBytes) || !decoder.bytes(&expected, kMaxValueBytes) ||
      !decoder.byte(&absent) || (version >= 2 && !decoder.byte(&flags)) ||
      (version >= 3 &&
       (!decoder.varint(&command.now_ms) || !decoder.varint(&command.expire_at_ms))) ||
      !decoder.done()) {
    return corrupt_command("truncated, over a size cap, or trailing bytes");
  }
  if (op < static_cast<uint8_t>(CommandOp::kPut) ||
      op > static_cast<uint8_t>(CommandOp::kSetPlacement)) {
    return corrupt_command("unknown operation " + std::to_string(op));
  }
  if (absent > 1) return corrupt_command("bad flag");
  if (flags > (kSetIfAbsent | kSetIfPresent | kSetReturnOld | kSetKeepTtl) ||
      (flags & (kSetIfAbsent | kSetIfPresent)) == (kSetIfAbsent | kSetIfPresent)) {
    return corrupt_command("bad SET flags " + std::to_string(flags));
  }
  command.flags = flags;
  command.op = static_cast<CommandOp>(op);
  command.key = std::string(key);
  command.value = std::string(value);
  command.expected = std::string(expected);
  command.expect_absent = absent == 1;
  return command;
}

KvStateMachine::KvStateMachine(raft::GroupId group, KvEngine* engine)
    : group_(group), engine_(engine) {}

std::string KvStateMachine::prefix(char kind) const {
  std::string out(1, kind);
  append_be64(out, group_.value());
  return out;
}
std::string KvStateMachine::data_key(std::string_view key) const {
  std::string out = prefix('d');
  out.append(key);
  return out;
}
std::string KvStateMachine::session_key(uint64_t client_id) const {
  std::string out = prefix('s');
  append_be64(out, client_id);
  return out;
}
std::string KvStateMachine::meta_key() const { return prefix('m'); }
std::string KvStateMachine::expiry_key(std::string_view key) const {
  std::string out = prefix('x');
  out.append(key);
  return out;
}

namespace {

std::string encode_expiry(uint64_t at_ms) {
  std::string out;
  append_be64(out, at_ms);
  return out;
}

std::optional<uint64_t> decode_expiry(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  uint64_t at = 0;
  for (char c : bytes) at = (at << 8) | static_cast<uint8_t>(c);
  return at;
}

}  // namespace

void KvStateMachine::remember_session(uint64_t client_id, std::string record) {
  if (auto it = sessions_.find(client_id); it != sessions_.end()) {
    sessions_bytes_ -= it->second.size();
    sessions_.erase(it);
  }
  // A record holding a large reply (GETDEL, SET ... GET of a big value) is
  // read from the engine when needed rather than kept in memory.
  if (record.size() > kSessionCacheRecordBytesMax) return;
  // Bounded: past either cap the cache starts over (a miss costs one read).
  if (sessions_.size() >= kSessionCacheEntriesMax ||
      sessions_bytes_ + record.size() > kSessionCacheBytesMax) {
    sessions_.clear();
    sessions_bytes_ = 0;
  }
  sessions_bytes_ += record.size();
  sessions_[client_id] = std::move(record);
}

Status KvStateMachine::load() {
  ++catalog_version_;
  sessions_.clear();
  sessions_bytes_ = 0;
  Result<std::optional<std::string>> stored = engine_->get(meta_key());
  if (!stored) return stored.error();
  applied_ = AppliedState{};
  if (stored->has_value() && !decode_applied(**stored, &applied_)) {
    return Error(Errc::kCorruption, "group " + std::to_string(group_.value()) +
                                        ": the stored applied state does not parse");
  }
  return {};
}

Status KvStateMachine::bootstrap(const AppliedState& state) {
  if (applied_.index != LogIndex{0}) {
    return Error(Errc::kFailedPrecondition, "group " + std::to_string(group_.value()) +
                                                " already applied up to " +
                                                std::to_string(applied_.index.value()));
  }
  WriteBatch batch;
  batch.put(meta_key(), encode_applied(state));
  if (Status status = engine_->write(batch, {.sync = true}); !status) return status;
  applied_ = state;
  return {};
}

Result<std::optional<std::string>> KvStateMachine::get(std::string_view key,
                                                       uint64_t now_ms) const {
  Result<std::optional<std::string>> value = engine_->get(data_key(key));
  if (!value || !value->has_value() || now_ms == 0) return value;
  Result<std::optional<std::string>> ttl = engine_->get(expiry_key(key));
  if (!ttl) return ttl.error();
  if (ttl->has_value()) {
    const std::optional<uint64_t> at = decode_expiry(**ttl);
    if (!at) return Error(Errc::kCorruption, "expiry record does not parse");
    if (*at <= now_ms) return std::optional<std::string>();  // expired
  }
  return value;
}

Result<std::vector<std::pair<std::string, std::string>>> KvStateMachine::scan(
    std::string_view start, size_t limit) const {
  const std::string begin = data_key(start);
  const size_t skip = begin.size() - start.size();  // the group's data prefix
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<KvIterator> it = engine_->iterate();
  for (it->seek(begin); it->valid() && out.size() < limit; it->next()) {
    const std::string_view key = it->key();
    if (key.substr(0, begin.size()) != begin) break;
    out.emplace_back(std::string(key.substr(skip)), std::string(it->value()));
  }
  if (Status status = it->status(); !status) return status.error();
  return out;
}

Result<std::vector<AppliedEntry>> KvStateMachine::apply(const std::vector<raft::Entry>& entries,
                                                        const raft::ConfState* conf_state,
                                                        WriteOptions options) {
  std::vector<AppliedEntry> out;
  out.reserve(entries.size());
  Overlay overlay(engine_);
  AppliedState next = applied_;
  // Dedupe records this batch writes; cached once the engine holds them.
  std::vector<std::pair<uint64_t, std::string>> sessions_written;
  bool catalog_changed = false;
  // The catalog's records: the keyspace (with the groups it is handed), its
  // placement, and the next free group, all in this batch.
  auto create_keyspace = [&](const Command& command) -> Result<CommandReply> {
    if (group_.value() != kMetaGroupId) return error_reply("ERR catalog commands belong to the meta group");
    Result<placement::Keyspace> keyspace = placement::decode_keyspace(command.value);
    if (!keyspace) return error_reply("ERR " + keyspace.error().message());
    Result<placement::Placement> where =
        placement::decode_placement(command.expected, placement::kPartitionsMax);
    if (!where || where->replicas.size() != keyspace->partitions || keyspace->name != command.key) {
      return error_reply("ERR a keyspace needs a placement for each of its partitions");
    }
    const std::string record = data_key(std::string(kKeyspaceRecordPrefix) + keyspace->name);
    Result<std::optional<std::string>> existing = overlay.get(record);
    if (!existing) return existing.error();
    if (existing->has_value() || keyspace->name == placement::kDefaultKeyspace) {
      return error_reply("ERR keyspace '" + keyspace->name + "' already exists");
    }
    const std::string next_key = data_key(std::string(kNextGroupRecord));
    Result<std::optional<std::string>> next = overlay.get(next_key);
    if (!next) return next.error();
    uint64_t first = kFirstKeyspaceGroup;
    if (next->has_value()) {
      Decoder decoder(**next);
      if (!decoder.varint(&first) || !decoder.done()) {
        return Error(Errc::kCorruption, "the meta group's next-group record does not parse");
      }
    }
    keyspace->first_group = first;
    keyspace->state = placement::KeyspaceState::kCreating;
    std::string next_value;
    Encoder(next_value).varint(first + keyspace->partitions);
    overlay.put(record, placement::encode_keyspace(*keyspace));
    overlay.put(data_key(std::string(kPlacementRecordPrefix) + keyspace->name), command.expected);
    overlay.put(data_key(std::string(kHeldRecordPrefix) + keyspace->name), command.expected);
    overlay.put(next_key, std::move(next_value));
    catalog_changed = true;
    return integer_reply(static_cast<int64_t>(first));
  };
  // The keyspace a later command names (and, when the command gives them,
  // the one with those groups: not one created again under the same name);
  // a reply when there is none.
  auto named_keyspace = [&](const Command& command,
                            placement::Keyspace* keyspace) -> std::optional<Result<CommandReply>> {
    Result<std::optional<std::string>> existing =
        overlay.get(data_key(std::string(kKeyspaceRecordPrefix) + command.key));
    if (!existing) return Result<CommandReply>(existing.error());
    if (!existing->has_value()) return error_reply("ERR no keyspace named '" + command.key + "'");
    Result<placement::Keyspace> decoded = placement::decode_keyspace(**existing);
    if (!decoded) return Result<CommandReply>(decoded.error());
    const std::string_view groups = std::string_view(command.expected).substr(
        0, std::string_view(command.expected).find('/'));
    if (!command.expected.empty() && groups != std::to_string(decoded->first_group)) {
      return error_reply("ERR keyspace '" + command.key + "' is not the one with groups from " +
                         command.expected);
    }
    *keyspace = std::move(*decoded);
    return std::nullopt;
  };
  // The later steps of a keyspace's life: each allowed from one state only.
  auto step_keyspace = [&](const Command& command) -> Result<CommandReply> {
    if (group_.value() != kMetaGroupId) return error_reply("ERR catalog commands belong to the meta group");
    const std::string record = data_key(std::string(kKeyspaceRecordPrefix) + command.key);
    if (command.key == placement::kDefaultKeyspace) {
      return error_reply("ERR the default keyspace cannot be dropped");
    }
    placement::Keyspace keyspace;
    if (auto refused = named_keyspace(command, &keyspace)) return std::move(*refused);
    using State = placement::KeyspaceState;
    const State from = keyspace.state;
    const bool allowed = (command.op == CommandOp::kDropKeyspace && from != State::kDropping) ||
                         (command.op == CommandOp::kActivateKeyspace && from == State::kCreating) ||
                         (command.op == CommandOp::kForgetKeyspace && from == State::kDropping);
    if (!allowed) {
      return error_reply("ERR keyspace '" + command.key + "' is " +
                         std::string(placement::state_name(from)));
    }
    if (command.op == CommandOp::kForgetKeyspace) {
      overlay.del(record);
      overlay.del(data_key(std::string(kPlacementRecordPrefix) + command.key));
      overlay.del(data_key(std::string(kHeldRecordPrefix) + command.key));
    } else {
      keyspace.state = command.op == CommandOp::kDropKeyspace ? State::kDropping : State::kActive;
      overlay.put(record, placement::encode_keyspace(keyspace));
    }
    catalog_changed = true;
    return integer_reply(1);
  };
  // A new target placement for an active keyspace's partitions.
  auto set_placement = [&](const Command& command) -> Result<CommandReply> {
    if (group_.value() != kMetaGroupId) return error_reply("ERR catalog commands belong to the meta group");
    placement::Keyspace keyspace;
    if (auto refused = named_keyspace(command, &keyspace)) return std::move(*refused);
    if (keyspace.state != placement::KeyspaceState::kActive) {
      return error_reply("ERR keyspace '" + command.key + "' is " +
                         std::string(placement::state_name(keyspace.state)) +
                         "; only an active keyspace's replicas move");
    }
    Result<placement::Placement> where =
        placement::decode_placement(command.value, placement::kPartitionsMax);
    if (!where || where->replicas.size() != keyspace.partitions) {
      return error_reply("ERR a placement needs an entry for each of the keyspace's partitions");
    }
    for (const std::vector<uint64_t>& replicas : where->replicas) {
      std::vector<uint64_t> sorted = replicas;
      std::sort(sorted.begin(), sorted.end());
      if (sorted.empty() || sorted.front() == 0 ||
          std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
        return error_reply("ERR each partition needs distinct, non-zero replicas");
      }
    }
    auto stored = [&](std::string_view prefix) -> Result<placement::Placement> {
      Result<std::optional<std::string>> bytes =
          overlay.get(data_key(std::string(prefix) + command.key));
      if (!bytes) return bytes.error();
      if (!bytes->has_value()) return Error(Errc::kCorruption, "keyspace '" + command.key + "' has no " + std::string(prefix) + " record");
      return placement::decode_placement(**bytes, placement::kPartitionsMax);
    };
    Result<placement::Placement> current = stored(kPlacementRecordPrefix);
    if (!current) return current.error();
    const size_t slash = command.expected.find('/');
    if (slash != std::string::npos &&
        command.expected.substr(slash + 1) != placement::placement_version(*current)) {
      return error_reply("ERR keyspace '" + command.key +
                         "' has another placement than the one this change was made from; "
                         "read it again");
    }
    Result<placement::Placement> held = stored(kHeldRecordPrefix);
    if (!held) return held.error();
    for (uint32_t p = 0; p < keyspace.partitions; ++p) {
      for (uint64_t node : where->replicas[p]) {
        const auto& now = current->replicas[p];
        const auto& before = held->replicas[p];
        if (std::find(now.begin(), now.end(), node) == now.end() &&
            std::find(before.begin(), before.end(), node) != before.end()) {
          return error_reply("ERR node " + std::to_string(node) + " held partition " +
                             std::to_string(p) + " of keyspace '" + command.key +
                             "' before; moving a replica back onto a node is not supported yet");
        }
      }
      for (uint64_t node : where->replicas[p]) {
        auto& before = held->replicas[p];
        if (std::find(before.begin(), before.end(), node) == before.end()) before.push_back(node);
      }
    }
    overlay.put(data_key(std::string(kHeldRecordPrefix) + command.key),
                placement::encode_placement(*held));
    overlay.put(data_key(std::string(kPlacementRecordPrefix) + command.key), command.value);
    catalog_changed = true;
    return integer_reply(1);
  };
  for (const raft::Entry& entry : entries) {
    AppliedEntry applied{entry.index, std::nullopt, false, 0, 0};
    if (entry.index <= applied_.index) {
      out.push_back(std::move(applied));  // applied before a restart
      continue;
    }
    SYNOD_ASSERT(entry.index == next.index + 1,
                 "committed entries applied out of order or with a gap");
    next.index = entry.index;
    next.term = entry.term;
    if (entry.type != raft::EntryType::kNormal || entry.data.empty()) {
      out.push_back(std::move(applied));
      continue;
    }
    Result<Command> decoded = decode_command(entry.data.view());
    if (!decoded) {
      // Every replica decodes the same bytes the same way: answering with an
      // error keeps them identical.
      applied.reply = error_reply("ERR " + decoded.error().message());
      out.push_back(std::move(applied));
      continue;
    }
    Command& command = *decoded;  // its value is moved into the batch below
    applied.client_id = command.client_id;
    applied.sequence = command.sequence;
    const std::string session = session_key(command.client_id);
    if (command.client_id != 0 && !SYNOD_BUG(bugs_, base::Bug::kSkipDedupe)) {
      Result<std::optional<std::string>> stored = std::optional<std::string>();
      if (overlay.wrote(session)) {
        stored = overlay.written(session);
      } else if (auto cached = sessions_.find(command.client_id); cached != sessions_.end()) {
        stored = std::optional<std::string>(cached->second);
      } else {
        stored = engine_->get(session);
        if (!stored) return stored.error();
        if (stored->has_value()) remember_session(command.client_id, **stored);
      }
      if (stored->has_value()) {
        Decoder decoder(**stored);
        uint64_t last_sequence = 0;
        CommandReply last_reply;
        if (!decoder.varint(&last_sequence) || !decode_reply(decoder, &last_reply)) {
          return Error(Errc::kCorruption, "dedupe record of client " +
                                              std::to_string(command.client_id) + " does not parse");
        }
        if (command.sequence == last_sequence) {
          applied.reply = last_reply;
          applied.deduplicated = true;
          out.push_back(std::move(applied));
          continue;
        }
        if (command.sequence < last_sequence) {
          applied.reply = error_reply("ERR request " + std::to_string(command.sequence) +
                                      " of client " + std::to_string(command.client_id) +
                                      " is older than its last one (" +
                                      std::to_string(last_sequence) + "); not applied");
          applied.deduplicated = true;
          out.push_back(std::move(applied));
          continue;
        }
      }
    }
    const std::string key = data_key(command.key);
    const std::string expiry = expiry_key(command.key);
    // The catalog's commands name a keyspace, not a key: nothing to read.
    const bool catalog = command.op >= CommandOp::kCreateKeyspace;
    // A plain SET replaces whatever is there: it need not read it.
    const bool blind = catalog || command.op == CommandOp::kPut ||
                       (command.op == CommandOp::kSet &&
                        (command.flags & (kSetIfAbsent | kSetIfPresent | kSetReturnOld)) == 0);
    const Result<std::optional<std::string>> absent = std::optional<std::string>();
    Result<std::optional<std::string>> current = blind ? absent : overlay.get(key);
    if (!current) return current.error();
    Result<std::optional<std::string>> ttl = catalog ? absent : overlay.get(expiry);
    if (!ttl) return ttl.error();
    if (ttl->has_value()) {
      const std::optional<uint64_t> at = decode_expiry(**ttl);
      if (!at) {
        return Error(Errc::kCorruption, "expiry record of a key of group " +
                                            std::to_string(group_.value()) + " does not parse");
      }
      if (command.now_ms != 0 && *at <= command.now_ms) {
        // Expired as of this command: gone, on every replica alike.
        overlay.del(key);
        overlay.del(expiry);
        *current = std::nullopt;
        *ttl = std::nullopt;
      }
    }
    CommandReply reply;
    switch (command.op) {
      case CommandOp::kPut:
        overlay.put(key, std::move(command.value));
        if (ttl->has_value()) overlay.del(expiry);  // SET forgets the TTL
        break;
      case CommandOp::kDelete:
        reply = integer_reply(current->has_value() ? 1 : 0);
        if (current->has_value()) overlay.del(key);
        if (ttl->has_value()) overlay.del(expiry);
        break;
      case CommandOp::kCas: {
        const bool matches = command.expect_absent ? !current->has_value()
                                                   : (current->has_value() && **current == command.expected);
        if (matches) {
          overlay.put(key, std::move(command.value));
          if (ttl->has_value()) overlay.del(expiry);
        }
        reply = integer_reply(matches ? 1 : 0);
        break;
      }
      case CommandOp::kIncrBy: {
        int64_t value = 0, delta = 0;
        if (current->has_value() && !parse_int64(**current, &value)) {
          reply = error_reply("ERR value is not an integer or out of range");
          break;
        }
        if (!parse_int64(command.value, &delta)) {
          reply = error_reply("ERR value is not an integer or out of range");
          break;
        }
        if ((delta > 0 && value > std::numeric_limits<int64_t>::max() - delta) ||
            (delta < 0 && value < std::numeric_limits<int64_t>::min() - delta)) {
          reply = error_reply("ERR increment or decrement would overflow");
          break;
        }
        overlay.put(key, std::to_string(value + delta));
        reply = integer_reply(value + delta);
        break;
      }
      case CommandOp::kSet: {
        const bool present = current->has_value();
        const bool allowed = !((command.flags & kSetIfAbsent) && present) &&
                             !((command.flags & kSetIfPresent) && !present);
        if (command.flags & kSetReturnOld) reply.value = *current;
        reply.kind = CommandReply::Kind::kInteger;
        reply.integer = allowed ? 1 : 0;
        if (allowed) {
          overlay.put(key, std::move(command.value));
          if (command.expire_at_ms != 0) {
            overlay.put(expiry, encode_expiry(command.expire_at_ms));
          } else if (!(command.flags & kSetKeepTtl) && ttl->has_value()) {
            overlay.del(expiry);
          }
        }
        break;
      }
      case CommandOp::kGetDel:
        reply.value = *current;
        if (current->has_value()) overlay.del(key);
        if (ttl->has_value()) overlay.del(expiry);
        break;
      case CommandOp::kCreateKeyspace: {
        auto created = create_keyspace(command);
        if (!created) return created.error();
        reply = std::move(*created);
        break;
      }
      case CommandOp::kSetPlacement: {
        auto set = set_placement(command);
        if (!set) return set.error();
        reply = std::move(*set);
        break;
      }
      case CommandOp::kDropKeyspace:
      case CommandOp::kActivateKeyspace:
      case CommandOp::kForgetKeyspace: {
        auto stepped = step_keyspace(command);
        if (!stepped) return stepped.error();
        reply = std::move(*stepped);
        break;
      }
      case CommandOp::kAppend: {
        std::string value = current->value_or("");
        if (value.size() + command.value.size() > kMaxValueBytes) {
          reply = error_reply("ERR string exceeds maximum allowed size");
          break;
        }
        value += command.value;
        reply = integer_reply(static_cast<int64_t>(value.size()));
        overlay.put(key, std::move(value));
        break;
      }
    }
    if (command.client_id != 0) {
      std::string record;
      Encoder encoder(record);
      encoder.varint(command.sequence);
      encode_reply(encoder, reply);
      sessions_written.emplace_back(command.client_id, record);
      overlay.put(session, std::move(record));
    }
    applied.reply = std::move(reply);
    out.push_back(std::move(applied));
  }
  if (next.index == applied_.index) return out;  // nothing new
  if (conf_state != nullptr) next.conf_state = *conf_state;
  overlay.batch().put(meta_key(), encode_applied(next));
  if (Status status = engine_->write(overlay.batch(), options); !status) return status.error();
  applied_ = std::move(next);
  if (catalog_changed) ++catalog_version_;
  for (auto& [client, record] : sessions_written) remember_session(client, std::move(record));
  return out;
}

Status KvStateMachine::remove_all(WriteOptions options) {
  WriteBatch batch;
  for (char kind : {'d', 's', 'x', 'm'}) {
    const std::string begin = prefix(kind);
    batch.delete_range(begin, prefix_end(begin));
  }
  if (Status status = engine_->write(batch, options); !status) return status;
  applied_ = AppliedState{};
  sessions_.clear();
  sessions_bytes_ = 0;
  return {};
}

Result<raft::Snapshot> KvStateMachine::snapshot() const {
  std::unique_ptr<KvSnapshot> view = engine_->snapshot();
  Result<std::optional<std::string>> stored = view->get(meta_key());
  if (!stored) return stored.error();
  AppliedState state;
  if (stored->has_value() && !decode_applied(**stored, &state)) {
    return Error(Errc::kCorruption, "the stored applied state does not parse");
  }
  std::string data;
  std::string payload;
  Encoder header(payload);
  header.byte(kSnapshotFormatVersion);
  header.varint(group_.value());
  header.raw(encode_applied(state));
  base::append_frame(data, kSnapshotHeader, payload);

  uint64_t items = 0, blocks = 0;
  payload.clear();
  std::unique_ptr<KvIterator> it = view->iterate();
  for (char kind : {'d', 's', 'x'}) {
    const std::string begin = prefix(kind);
    const std::string end = prefix_end(begin);
    for (it->seek(begin); it->valid() && it->key() < end; it->next()) {
      Encoder block(payload);
      block.byte(static_cast<uint8_t>(kind));
      block.bytes(it->key().substr(begin.size()));
      block.bytes(it->value());
      ++items;
      if (payload.size() >= kSnapshotBlockBytesTarget) {
        base::append_frame(data, kSnapshotBlock, payload);
        payload.clear();
        ++blocks;
      }
    }
    if (Status status = it->status(); !status) return status.error();
  }
  if (!payload.empty()) {
    base::append_frame(data, kSnapshotBlock, payload);
    ++blocks;
  }
  payload.clear();
  Encoder trailer(payload);
  trailer.varint(items);
  trailer.varint(blocks);
  base::append_frame(data, kSnapshotTrailer, payload);

  raft::Snapshot snapshot;
  snapshot.meta.index = state.index;
  snapshot.meta.term = state.term;
  snapshot.meta.conf_state = state.conf_state;
  snapshot.data = base::Bytes(std::move(data));
  return snapshot;
}

Status KvStateMachine::install(const raft::Snapshot& snapshot, WriteOptions options) {
  auto corrupt = [](const std::string& why) {
    return Error(Errc::kCorruption, "snapshot refused, nothing installed: " + why);
  };
  std::string_view data = snapshot.data.view();
  WriteBatch batch;
  for (char kind : {'d', 's', 'x'}) {
    const std::string begin = prefix(kind);
    batch.delete_range(begin, prefix_end(begin));
  }
  AppliedState state;
  bool header_seen = false, trailer_seen = false;
  uint64_t items = 0, blocks = 0;
  while (!data.empty()) {
    const base::Frame frame = base::read_frame(data, kSnapshotFramePayloadMax);
    if (frame.status != base::FrameStatus::kOk) {
      return corrupt(base::describe_frame_problem(frame, kSnapshotFramePayloadMax) + " at byte " +
                     std::to_string(snapshot.data.size() - data.size()));
    }
    data.remove_prefix(frame.frame_bytes);
    Decoder decoder(frame.payload);
    if (!header_seen) {
      uint8_t version = 0;
      uint64_t group = 0;
      if (frame.type != kSnapshotHeader || !decoder.byte(&version) ||
          version != kSnapshotFormatVersion || !decoder.varint(&group)) {
        return corrupt("no header of a format this build reads");
      }
      if (group != group_.value()) {
        return corrupt("it is group " + std::to_string(group) + "'s, not group " +
                       std::to_string(group_.value()) + "'s");
      }
      if (!decode_applied(frame.payload.substr(decoder.position()), &state)) {
        return corrupt("the applied state in its header does not parse");
      }
      if (state.index != snapshot.meta.index || state.term != snapshot.meta.term) {
        return corrupt("its header says index " + std::to_string(state.index.value()) +
                       ", Raft says " + std::to_string(snapshot.meta.index.value()));
      }
      header_seen = true;
      continue;
    }
    if (trailer_seen) return corrupt("bytes after the trailer");
    if (frame.type == kSnapshotTrailer) {
      uint64_t want_items = 0, want_blocks = 0;
      if (!decoder.varint(&want_items) || !decoder.varint(&want_blocks) || !decoder.done() ||
          want_items != items || want_blocks != blocks) {
        return corrupt("the trailer's counts disagree with the blocks received");
      }
      trailer_seen = true;
      continue;
    }
    if (frame.type != kSnapshotBlock) return corrupt("a frame of unknown type");
    ++blocks;
    while (!decoder.done()) {
      uint8_t kind = 0;
      std::string_view key, value;
      if (!decoder.byte(&kind) || (kind != 'd' && kind != 's' && kind != 'x') ||
          !decoder.bytes(&key, kMaxUserKeyBytes) || !decoder.bytes(&value, kMaxValueBytes)) {
        return corrupt("a block that does not parse");
      }
      std::string full = prefix(static_cast<char>(kind));
      full.append(key);
      batch.put(full, value);
      ++items;
    }
  }
  if (!header_seen || !trailer_seen) return corrupt("it is incomplete (no header or no trailer)");
  state.conf_state = snapshot.meta.conf_state;
  batch.put(meta_key(), encode_applied(state));
  if (Status status = engine_->write(batch, options); !status) return status;
  applied_ = std::move(state);
  ++catalog_version_;
  sessions_.clear();
  sessions_bytes_ = 0;
  return {};
}

}  // namespace synod::node
