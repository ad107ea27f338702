// What the WAL crash loop writes, as a pure function of the index: the child
// (wal_crash_child.cc) appends these entries and the test
// (wal_crash_test.cc) checks every replayed one against them, so neither has
// to remember what was written. One definition for both sides: if they
// disagreed, every recovery would look corrupt.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/rng.h"
#include "raft/types.h"

namespace synod::storage {

// The crash loop writes group 1 only.
constexpr raft::GroupId kCrashGroup{1};

// Entry `index`'s payload: 1..value_bytes_max bytes, seeded by the index.
inline std::string crash_entry_data(uint64_t index, uint64_t value_bytes_max) {
  base::Rng rng(index * 0x9e3779b97f4a7c15ULL ^ 0x5157a11c0ffeeULL);
  const uint64_t length = 1 + rng.uniform(value_bytes_max);
  std::string data(length, '\0');
  for (uint64_t i = 0; i < length; i += 8) {
    const uint64_t word = rng.next();
    std::memcpy(data.data() + i, &word, std::min<uint64_t>(8, length - i));
  }
  return data;
}

// Entry `index`'s term: a new term every 1024 entries.
inline raft::Term crash_entry_term(uint64_t index) { return raft::Term{1 + index / 1024}; }

}  // namespace synod::storage
