#include "raft/confchange.h"

#include <string>

namespace synod::raft {

using base::Errc;
using base::Error;

namespace {

constexpr uint8_t kConfChangeFormatVersion = 1;
// A group never has more members than this; a count above it is garbage.
constexpr uint64_t kMaxChangesPerConfChange = 1024;
constexpr uint64_t kMaxContextBytes = 1 << 20;

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool varint(uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return false;
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *value = result;
        return true;
      }
    }
    return false;  // more than 10 bytes: not a varint we wrote
  }
  bool bytes(uint64_t count, std::string_view* out) {
    if (count > data_.size() - pos_) return false;
    *out = data_.substr(pos_, count);
    pos_ += count;
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

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
  out.push_back(static_cast<char>(kConfChangeFormatVersion));
  put_varint(out, static_cast<uint64_t>(change.transition));
  put_varint(out, change.changes.size());
  for (const ConfChangeSingle& single : change.changes) {
    put_varint(out, static_cast<uint64_t>(single.type));
    put_varint(out, single.node.value());
  }
  put_varint(out, change.context.size());
  out.append(change.context.view());
  return out;
}

base::Result<ConfChange> decode_conf_change(std::string_view data) {
  if (data.empty()) return corrupt("empty");
  if (static_cast<uint8_t>(data[0]) != kConfChangeFormatVersion) {
    return corrupt("unknown format version " + std::to_string(static_cast<uint8_t>(data[0])));
  }
  Reader reader(data.substr(1));
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
  uint64_t context_size = 0;
  std::string_view context;
  if (!reader.varint(&context_size)) return corrupt("truncated context length");
  if (context_size > kMaxContextBytes) return corrupt("context over the cap");
  if (!reader.bytes(context_size, &context)) return corrupt("truncated context");
  if (!reader.done()) return corrupt("trailing bytes");
  change.context = Bytes(context);
  return change;
}

}  // namespace synod::raft
