#include "raft/confchange.h"

#include <string>

#include "base/codec.h"

namespace synod::raft {

using base::Errc;
using base::Error;

namespace {

constexpr uint8_t kConfChangeFormatVersion = 1;
// A group never has more members than this; a count above it is garbage.
constexpr uint64_t kMaxChangesPerConfChange = 1024;
constexpr uint64_t kMaxContextBytes = 1 << 20;

Error corrupt(const std::string& why) {
  return Error(Errc::kCorruption, "conf change entry: " + why);
}

}  // namespace

bool ConfChange::enters_joint(bool* auto_leave) const {
  // One change is applied directly unless a joint transition was asked for.
  if (transition != ConfChangeTransition::kAuto || changes.size() > 1) {
    *auto_leave = transition != ConfChangeTransition::kJointExplicit;
    return true;
  }
  *auto_leave = false;
  return false;
}

std::string encode_conf_change(const ConfChange& change) {
  std::string out;
  base::Encoder encoder(out);
  encoder.byte(kConfChangeFormatVersion);
  encoder.varint(static_cast<uint64_t>(change.transition));
  encoder.varint(change.changes.size());
  for (const ConfChangeSingle& single : change.changes) {
    encoder.varint(static_cast<uint64_t>(single.type));
    encoder.varint(single.node.value());
  }
  encoder.bytes(change.context.view());
  return out;
}

base::Result<ConfChange> decode_conf_change(std::string_view data) {
  if (data.empty()) return corrupt("empty");
  if (static_cast<uint8_t>(data[0]) != kConfChangeFormatVersion) {
    return corrupt("unknown format version " + std::to_string(static_cast<uint8_t>(data[0])));
  }
  base::Decoder reader(data.substr(1));
  ConfChange change;
  uint64_t transition = 0;
  uint64_t count = 0;
  if (!reader.varint(&transition)) return corrupt("truncated transition");
  if (transition > static_cast<uint64_t>(ConfChangeTransition::kJointExplicit)) {
    return corrupt("unknown transition " + std::to_string(transition));
  }
  change.transition = static_cast<ConfChangeTransition>(transition);
  if (!reader.varint(&count)) return corrupt("truncated change count");
  if (count > kMaxChangesPerConfChange) {
    return corrupt("change count " + std::to_string(count) + " over the cap of " +
                   std::to_string(kMaxChangesPerConfChange));
  }
  change.changes.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t type = 0;
    uint64_t node = 0;
    if (!reader.varint(&type) || !reader.varint(&node)) return corrupt("truncated change");
    if (type > static_cast<uint64_t>(ConfChangeType::kAddLearnerNode)) {
      return corrupt("unknown change type " + std::to_string(type));
    }
    if (node == 0) return corrupt("change names node 0");
    change.changes.push_back({static_cast<ConfChangeType>(type), NodeId{node}});
  }
  std::string_view context;
  if (!reader.bytes(&context, kMaxContextBytes)) {
    return corrupt("context truncated or over the cap of " + std::to_string(kMaxContextBytes) +
                   " bytes");
  }
  if (!reader.done()) return corrupt("trailing bytes");
  change.context = Bytes(context);
  return change;
}

}  // namespace synod::raft
