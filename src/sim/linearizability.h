// Linearizability checker for histories of single-key register operations.
//
// A history is linearizable when every operation can be given a point in
// time between its call and its return at which it took effect, so that the
// results are those of running the operations one at a time in the order of
// those points (Herlihy & Wing). The checker searches for such an order.
//
// How (Wing & Gong's search with Lowe's improvements, as Knossos and
// Porcupine do it):
//   - P-compositionality: every operation touches one key, and a history is
//     linearizable iff the history of each key is, so keys are checked one
//     at a time, in key order.
//   - First a quick direct proof of the commonest violations: a read of a
//     value every writer of which had been overwritten by an acknowledged
//     operation before the read began (overwritten_read.h).
//   - Then, for a key, a depth-first search over "which operation takes
//     effect next". Only an operation called before the earliest return
//     among those not yet placed may go next (minimal-call ordering); the
//     search backs up when none fits.
//   - Lowe's cache: a configuration (the set of operations placed, the
//     register's value) already explored is not explored again; nor is one
//     that differs only by having placed more unknown operations.
//   - Values that nothing reads (not integers, never returned by a get,
//     never expected by a cas) are one value to the search.
//
// The model is a register per key with Redis-like semantics: absent at
// first; set writes; get reads the value or "absent"; cas(expected | absent,
// new) swaps iff the register holds `expected` (or is absent) and says
// whether it swapped; incr(delta) treats absent as 0 and returns the new
// value; an incr of a non-integer, or one that would overflow, takes no
// effect (a history records such an operation as `fail`). Integers are
// parsed as the state machine parses them: Redis's rules (base/decimal.h).
//
// Outcomes: `fail` operations did not take effect and are dropped. `unknown`
// operations may take effect at any point after their call (their return is
// taken as +infinity) or never; their outputs are not checked. An unknown
// get changes nothing and is dropped. Unknown operations are placed only
// where they change the register for an acknowledged operation that needs
// it; placing none at all is always allowed. (These restrictions skip only
// orders that another, explored order makes redundant; a test,
// tests/sim/linearizability_brute_force_test.cc, holds the checker to an
// unpruned search.)
//
// Cost: a history without unknown operations is checked in about linear
// time. Each unknown operation stays pending for the rest of the history, so
// many of them (unknown increments above all, which can explain many
// values) can make the search exponential; proving a violation, which means
// exhausting every order, suffers first. The search is bounded (steps and
// configurations per key): a history too hard to decide within the bounds is
// reported `inconclusive`, never hung on, and never passed. Deterministic
// and free of I/O; the caller measures time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "sim/history.h"

namespace synod::sim {

struct CheckOptions {
  // Candidate operations tried, per key, before the key is inconclusive
  // (some tens of millions a second).
  uint64_t steps_max_per_key = 100'000'000;
  // Memory the cache of explored configurations may take, per key (an
  // estimate: each one costs about 100 bytes plus a bit per unknown
  // operation on the key).
  uint64_t cache_bytes_max_per_key = uint64_t{512} << 20;
  // Operations of the longest linearizable prefix shown in an explanation.
  size_t prefix_operations_shown_max = 8;
  // Before searching a key, look for a read of a value that every writer of
  // it had lost (overwritten_read.h): a quick proof of the commonest
  // violations, which the search would otherwise have to exhaust every
  // order to prove. Turned off only to measure the search alone.
  bool overwritten_read_check = true;

  base::Status validate() const;
};

enum class Verdict : uint8_t { kOk, kViolation, kInconclusive };

std::string_view verdict_name(Verdict verdict);

struct CheckStats {
  uint64_t operations = 0;          // in the history
  uint64_t operations_checked = 0;  // after dropping `fail` ones and unknown gets
  uint64_t operations_unknown = 0;  // of those checked
  uint64_t keys = 0;
  uint64_t keys_checked = 0;  // keys searched before the verdict was known
  uint64_t configurations = 0;  // states explored (and remembered)
  uint64_t steps = 0;           // candidate operations tried
  uint64_t operations_per_key_max = 0;
};

struct CheckReport {
  Verdict verdict = Verdict::kOk;
  // For kViolation and kInconclusive: the first such key (in key order) and
  // the operations the explanation names.
  std::string key;
  std::vector<uint64_t> operation_ids;
  // For a person: which operation could not be placed and why, the longest
  // linearizable prefix found, and what could go next and why not.
  std::string explanation;
  CheckStats stats;
};

// Checks every key; stops at the first violation. Returns an error for an
// invalid history (see validate_history) or invalid options.
base::Result<CheckReport> check_linearizability(const History& history,
                                                const CheckOptions& options = {});

}  // namespace synod::sim
