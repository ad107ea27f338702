// Log entries for storage tests: each entry's bytes say its index, so an
// entry read back from the wrong place does not compare equal.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "raft/types.h"

namespace synod::test_support {

inline raft::Entry numbered_entry(uint64_t index, uint64_t term, size_t bytes = 100) {
  std::string data(bytes, static_cast<char>('a' + index % 26));
  data.replace(0, std::min(bytes, std::to_string(index).size()), std::to_string(index));
  return raft::Entry{raft::Term{term}, raft::LogIndex{index}, raft::EntryType::kNormal,
                     base::Bytes(data)};
}

// Entries `from`..`to` inclusive, all of `term`.
inline std::vector<raft::Entry> numbered_entries(uint64_t from, uint64_t to, uint64_t term,
                                                 size_t bytes = 100) {
  std::vector<raft::Entry> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back(numbered_entry(i, term, bytes));
  return out;
}

}  // namespace synod::test_support
