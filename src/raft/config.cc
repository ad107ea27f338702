#include "raft/config.h"

#include <string>

namespace synod::raft {

using base::Errc;
using base::Error;

base::Status Config::validate() const {
  auto invalid = [](std::string why) { return base::Status(Error(Errc::kInvalidArgument, why)); };
  if (id.is_none()) return invalid("raft config: id must not be 0 (0 means \"no node\")");
  if (heartbeat_tick <= 0) return invalid("raft config: heartbeat_tick must be > 0");
  if (election_tick <= heartbeat_tick) {
    return invalid("raft config: election_tick (" + std::to_string(election_tick) +
                   ") must be greater than heartbeat_tick (" + std::to_string(heartbeat_tick) + ")");
  }
  if (storage == nullptr) return invalid("raft config: storage is required");
  if (max_size_per_msg_bytes == 0) return invalid("raft config: max_size_per_msg_bytes must be > 0");
  if (max_inflight_msgs == 0) return invalid("raft config: max_inflight_msgs must be > 0");
  if (max_inflight_bytes != 0 && max_inflight_bytes < max_size_per_msg_bytes) {
    return invalid("raft config: max_inflight_bytes must be 0 or ≥ max_size_per_msg_bytes");
  }
  if (snapshot_chunk_bytes == 0) return invalid("raft config: snapshot_chunk_bytes must be > 0");
  if (read_only_option == ReadOnlyOption::kLeaseBased && !check_quorum) {
    return invalid(
        "raft config: lease-based reads need check_quorum (without it a deposed leader "
        "cannot know it lost its lease)");
  }
  if (!(max_clock_drift_ratio >= 0.0 && max_clock_drift_ratio < 0.5)) {
    return invalid("raft config: max_clock_drift_ratio must be in [0, 0.5)");
  }
  return {};
}

}  // namespace synod::raft
