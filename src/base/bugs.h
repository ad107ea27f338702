// Deliberately injectable protocol bugs: the simulator's proof that its
// checkers have teeth. Each names a classic way to break a replicated store;
// `synod sim --bug NAME` switches one on and the simulator must catch it.
//
// Where they live: the code that would contain the bug asks
// `SYNOD_BUG(set, Bug::kName)`. A `BugSet` reaches that code only through the
// simulator's configuration (as CockroachDB's testing knobs do); nothing a
// production node reads can set one. Builds configured with
// `-DSYNOD_INJECTABLE_BUGS=OFF` compile every check to `false`, so the bug
// paths are not in the binary at all.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace synod::base {

enum class Bug : uint8_t {
  // Raft §5.4.2: a leader commits an entry of an earlier term as soon as a
  // majority holds it (Figure 8's lost write).
  kCommitPriorTermByCount = 0,
  // Votes and append acknowledgements leave before the state they promise
  // is fsynced, so a crash forgets what was promised.
  kAckBeforeFsync = 1,
  // A node grants a vote to a second candidate in the same term.
  kDoubleVote = 2,
  // A leader serves reads from its own state without ReadIndex or a lease,
  // so a deposed leader that has not noticed serves stale data.
  kStaleLeaderRead = 3,
  // The state machine applies a retried command again instead of answering
  // from the client's dedupe record.
  kSkipDedupe = 4,
  // The meta leader activates (or forgets) a keyspace as soon as it sees
  // it, without waiting for every node's catalog lease to run out, so a
  // node that has not heard of the keyspace still routes its keys to the
  // default keyspace.
  kSkipCatalogWait = 5,
};

inline constexpr size_t kBugCount = 6;

struct BugInfo {
  Bug bug;
  std::string_view name;
  std::string_view description;
};

inline constexpr std::array<BugInfo, kBugCount> kBugs{{
    {Bug::kCommitPriorTermByCount, "commit-prior-term",
     "a leader commits an entry of an earlier term by counting replicas (Raft Figure 8)"},
    {Bug::kAckBeforeFsync, "ack-before-fsync",
     "votes and append acknowledgements are sent before the state they promise is fsynced"},
    {Bug::kDoubleVote, "double-vote", "a node grants two votes in one term"},
    {Bug::kStaleLeaderRead, "stale-leader-read",
     "a leader serves reads locally without ReadIndex or a lease"},
    {Bug::kSkipDedupe, "skip-dedupe",
     "the state machine applies a retried command again instead of deduplicating it"},
    {Bug::kSkipCatalogWait, "skip-catalog-wait",
     "a keyspace is activated or forgotten without waiting for every catalog lease to run out"},
}};

inline std::optional<Bug> bug_from_name(std::string_view name) {
  for (const BugInfo& info : kBugs) {
    if (info.name == name) return info.bug;
  }
  return std::nullopt;
}

inline std::string_view bug_name(Bug bug) { return kBugs[static_cast<size_t>(bug)].name; }

// Which bugs are on; empty in every production configuration.
class BugSet {
 public:
  constexpr BugSet() = default;
  static constexpr BugSet of(Bug bug) {
    BugSet set;
    set.bits_ = uint32_t{1} << static_cast<uint32_t>(bug);
    return set;
  }
  constexpr bool has(Bug bug) const {
    return (bits_ >> static_cast<uint32_t>(bug)) & 1u;
  }
  constexpr bool empty() const { return bits_ == 0; }
  friend constexpr bool operator==(BugSet, BugSet) = default;

 private:
  uint32_t bits_ = 0;
};

// Whether this build can inject bugs at all.
#if defined(SYNOD_INJECTABLE_BUGS) && SYNOD_INJECTABLE_BUGS
inline constexpr bool kBugsCompiledIn = true;
#define SYNOD_BUG(set, bug) ((set).has(bug))
#else
inline constexpr bool kBugsCompiledIn = false;
#define SYNOD_BUG(set, bug) false
#endif

}  // namespace synod::base
