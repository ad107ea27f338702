#include "node/kv_engine.h"

#include <string>

namespace synod::node {

using base::Errc;
using base::Error;
using base::Status;

Status check_key_size(std::string_view key, std::string_view what) {
  if (key.size() <= kMaxKeyBytes) return {};
  return Error(Errc::kInvalidArgument, std::string(what) + " of " + std::to_string(key.size()) +
                                           " bytes is over the cap of " +
                                           std::to_string(kMaxKeyBytes));
}

Status check_value_size(std::string_view value) {
  if (value.size() <= kMaxValueBytes) return {};
  return Error(Errc::kInvalidArgument, "value of " + std::to_string(value.size()) +
                                           " bytes is over the cap of " +
                                           std::to_string(kMaxValueBytes));
}

Status check_batch_limits(const WriteBatch& batch) {
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.kind) {
      case WriteBatch::Kind::kPut:
        if (Status s = check_key_size(op.key); !s.ok()) return s;
        if (Status s = check_value_size(op.value); !s.ok()) return s;
        break;
      case WriteBatch::Kind::kDelete:
        if (Status s = check_key_size(op.key); !s.ok()) return s;
        break;
      case WriteBatch::Kind::kDeleteRange:
        if (Status s = check_key_size(op.key, "range begin"); !s.ok()) return s;
        if (Status s = check_key_size(op.value, "range end"); !s.ok()) return s;
        break;
    }
  }
  return {};
}

}  // namespace synod::node
