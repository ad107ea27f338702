// A direct proof of the commonest linearizability violations on one key:
// a read of a value that every possible writer of it had lost before the
// read began (a stale read, a lost write, a read of a value never written).
//
// Rule: a get that returned v (or a cas that swapped, so saw v = its
// expected value) needs, at its point, a last operation that wrote v. Any
// writer w of v is ruled out if it was called after the read returned, or,
// if w was acknowledged, if an acknowledged operation c that leaves the
// register at some other value was called after w returned and returned
// before the read was called (c then lies between w and the read in every
// linearization, and nothing after c wrote v, or that writer would be the
// last one). An unknown write may take effect any time after its call, so
// only the first test can rule it out. If every writer is
// ruled out, and for "absent" the initial state too, no linearization
// exists. Writers counted: sets and cas of v, ok or unknown; ok incrs that
// returned v; any unknown incr when v is an integer. It proves a violation
// or says nothing: the search (linearizability.h) decides the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sim/history.h"

namespace synod::sim {

struct OverwrittenRead {
  const Operation* read = nullptr;
  // Each possible writer of the value read, with the operation that
  // overwrote it before the read (nullptr: it was called after the read
  // returned). A null writer stands for the initial "absent".
  std::vector<std::pair<const Operation*, const Operation*>> writers;
};

// The first such read (in call order) among `ops`, all on one key, with
// `fail` operations already left out. O(n log n); reads with more than
// `writers_max` possible writers are skipped.
std::optional<OverwrittenRead> find_overwritten_read(const std::vector<const Operation*>& ops,
                                                     size_t writers_max = 64);

// "not linearizable: get by client 3 at [t1, t2] returned "x", but no order
// of the 12 operations on key "k" can produce that." and a newline.
std::string violation_headline(const Operation& blamed, size_t operations);

// For a person: what was read, and how each writer was lost.
std::string explain_overwritten_read(const OverwrittenRead& violation, size_t operations,
                                     std::vector<uint64_t>* ids);

}  // namespace synod::sim
