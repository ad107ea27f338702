// Which nodes hold each partition's replicas.
//
// Why not plain consistent hashing: a token ring or rendezvous hashing alone
// spreads 1,024 partitions x 3 replicas over 100 nodes like balls into bins
// (about 31 per node, standard deviation about 5.5), so the busiest node
// holds about 1.4x the mean; and neither knows about zones. Placement here
// is therefore computed from the previous placement, which the meta group
// keeps (with an epoch), and rendezvous hashing only breaks ties:
//
//   1. Replicas on nodes that are no longer members are dropped; the rest
//      stay where they are.
//   2. Each missing replica goes, partition by partition, to the member
//      whose zone the partition uses least, then the least loaded, then the
//      highest rendezvous score for (partition, node): distinct zones first,
//      then balance, then a stable pseudo-random spread.
//   3. While the most and least loaded members differ by 2 or more, one
//      replica moves from the first to the second (a partition whose zones
//      stay as distinct as they were, highest rendezvous score first).
//
// So adding a member moves onto it about 1/(n+1) of the replicas and moves
// nothing between members that stay (step 3 only ever takes from the
// busiest to the new, emptiest one); removing one moves only its replicas;
// loads stay within one replica of each other wherever zones allow. The
// tests measure all of it (tests/placement).
//
// Pure and deterministic: the same members, counts and previous placement
// give the same result, whatever order the members are listed in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace synod::placement {

struct Member {
  uint64_t id = 0;
  std::string zone;
};

// replicas[p]: the node ids holding partition p; at most one replica per
// node, min(replication, members) of them.
struct Placement {
  std::vector<std::vector<uint64_t>> replicas;
  friend bool operator==(const Placement&, const Placement&) = default;
};

// A placement of `partitions` partitions, `replication` replicas each, over
// `members`, moving as little as it can from `previous` (empty, or of another
// partition count: placed from scratch). kInvalidArgument for no members, a
// repeated or zero id, or zero partitions or replication.
base::Result<Placement> place(const std::vector<Member>& members, uint32_t partitions,
                              uint32_t replication, const Placement& previous);

// The placement as bytes (a record of the meta group) and back; decoding
// refuses damaged bytes and more than `partitions_max` partitions.
std::string encode_placement(const Placement& placement);
base::Result<Placement> decode_placement(std::string_view bytes, uint32_t partitions_max);

// A placement's identity for compare-and-set (hex of a checksum of its
// encoding).
std::string placement_version(const Placement& placement);

// Replica counts per node id, ascending by id (members holding none appear
// with zero when listed in `members`).
std::vector<std::pair<uint64_t, uint64_t>> loads(const Placement& placement,
                                                 const std::vector<Member>& members);

// Replicas that are in `after` but were not in `before` (per partition).
uint64_t replicas_moved(const Placement& before, const Placement& after);

}  // namespace synod::placement
