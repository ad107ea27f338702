// Which partition a key belongs to: XXH3-64 of the key, then Lamping and
// Veach's jump consistent hash into the partition count ("A Fast, Minimal
// Memory, Consistent Hash Algorithm", 2014). Jump hash moves only 1/n of the
// keys when the count grows from n-1 to n, needs no table, and spreads keys
// evenly; partitions are then placed on nodes separately.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/frame.h"

namespace synod::placement {

inline uint32_t jump_consistent_hash(uint64_t key, uint32_t buckets) {
  int64_t chosen = -1;
  int64_t next = 0;
  while (next < static_cast<int64_t>(buckets)) {
    chosen = next;
    key = key * 2862933555777941757ULL + 1;
    next = static_cast<int64_t>(static_cast<double>(chosen + 1) *
                                (static_cast<double>(1LL << 31) /
                                 static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<uint32_t>(chosen);
}

inline uint32_t partition_of(std::string_view key, uint32_t partitions) {
  return jump_consistent_hash(base::checksum64(key, 0), partitions);
}

}  // namespace synod::placement
