// Snapshots: log compaction, a lagging follower brought back by a snapshot
// streamed in chunks, atomic installation, stale snapshots, and restart from
// an installed snapshot.
#include <gtest/gtest.h>

#include <limits>
#include <set>
#include <string>
#include <vector>

#include "raft/test_cluster.h"

namespace synod::raft::testing {
namespace {

constexpr size_t kChunkBytes = 1000;
constexpr uint64_t kAnyBytes = std::numeric_limits<uint64_t>::max();

TestCluster::ConfigTweak small_chunks() {
  return [](Config& config) { config.snapshot_chunk_bytes = kChunkBytes; };
}

// A payload whose every byte matters: a misplaced chunk changes it.
std::string snapshot_payload(size_t bytes) {
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return data;
}

// Elects 1, cuts 3 off, commits `entries` proposals on {1, 2}, then has the
// leader's host snapshot its state machine at the applied index and compact
// the log there. Two more entries follow the snapshot, so a follower needs
// both the snapshot and appends. Returns the snapshot.
Snapshot lag_follower_3_behind_compaction(TestCluster& c, int entries, const std::string& data) {
  c.elect(1);
  EXPECT_EQ(c.leader(), 1u);
  // A heartbeat tells every follower that the leader's first entry committed.
  c.tick(1);
  c.deliver_all();
  c.isolate(3);
  for (int i = 0; i < entries; ++i) c.propose(1, "before-" + std::to_string(i));
  const LogIndex applied = c.peer(1).applied_index;
  EXPECT_EQ(applied, c.raft(1).log().committed());
  const ConfState conf = c.node(1).status().conf_state;
  auto snap = c.storage(1).create_snapshot(applied, &conf, Bytes(data));
  EXPECT_TRUE(snap.ok());
  EXPECT_TRUE(c.storage(1).compact(applied).ok());
  c.propose(1, "after-0");
  c.propose(1, "after-1");
  return snap.ok() ? *snap : Snapshot{};
}

// Heartbeats from the leader until node 3's log matches the leader's.
void tick_leader_until_caught_up(TestCluster& c, int max_ticks = 20) {
  for (int i = 0; i < max_ticks; ++i) {
    c.tick(1);
    c.deliver_all();
    if (c.raft(3).log().last_index() == c.raft(1).log().last_index() &&
        c.raft(3).log().committed() == c.raft(1).log().committed()) {
      return;
    }
  }
}

std::vector<Message> delivered_of(TestCluster& c, MessageType type, uint64_t to) {
  std::vector<Message> out;
  for (const Message& m : c.delivered()) {
    if (m.type == type && m.to == nid(to)) out.push_back(m);
  }
  return out;
}

TEST(RaftSnapshot, CompactionDropsTheLogPrefix) {
  TestCluster c({1, 2, 3});
  c.elect(1);
  for (int i = 0; i < 5; ++i) c.propose(1, "e" + std::to_string(i));
  // Bootstrap snapshot at 1, the leader's empty entry at 2, proposals 3..7.
  ASSERT_EQ(c.raft(1).log().last_index(), idx(7));
  const ConfState conf = c.node(1).status().conf_state;
  auto snap = c.storage(1).create_snapshot(idx(5), &conf, Bytes("state@5"));
  ASSERT_TRUE(snap.ok());
  ASSERT_TRUE(c.storage(1).compact(idx(5)).ok());

  MemoryStorage& s = c.storage(1);
  EXPECT_EQ(s.first_index(), idx(6));
  EXPECT_EQ(s.last_index(), idx(7));
  EXPECT_EQ(s.entries(idx(3), idx(6), kAnyBytes).code(), base::Errc::kCompacted);
  EXPECT_EQ(s.entries(idx(5), idx(8), kAnyBytes).code(), base::Errc::kCompacted);
  auto kept = s.entries(idx(6), idx(8), kAnyBytes);
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ((*kept)[0].data.str(), "e3");
  // The snapshot's own index keeps its term; below it nothing is known.
  auto at_snapshot = s.term(idx(5));
  ASSERT_TRUE(at_snapshot.ok());
  EXPECT_EQ(*at_snapshot, snap->meta.term);
  EXPECT_EQ(s.term(idx(4)).code(), base::Errc::kCompacted);
  // Compacting again at or below the boundary is refused.
  EXPECT_EQ(s.compact(idx(5)).code(), base::Errc::kCompacted);

  // The leader's view of its log follows its storage.
  EXPECT_EQ(c.raft(1).log().first_index(), idx(6));
  EXPECT_EQ(c.raft(1).log().term(idx(4)).code(), base::Errc::kCompacted);
  // And the group keeps working on the compacted log.
  c.propose(1, "later");
  for (uint64_t id : c.ids()) {
    ASSERT_FALSE(c.peer(id).applied.empty());
    EXPECT_EQ(c.peer(id).applied.back().data.str(), "later") << "node " << id;
  }
}

TEST(RaftSnapshot, LaggingFollowerReceivesSnapshotAfterCompaction) {
  TestCluster c({1, 2, 3}, small_chunks());
  const std::string data = snapshot_payload(2500);
  const Snapshot snap = lag_follower_3_behind_compaction(c, 4, data);
  ASSERT_FALSE(snap.is_empty());
  // Node 3 still ends at the leader's first entry, now compacted away.
  ASSERT_LT(c.raft(3).log().last_index(), c.raft(1).log().first_index());

  c.heal();
  c.delivered().clear();
  tick_leader_until_caught_up(c);

  const std::vector<Message> chunks = delivered_of(c, MessageType::kSnap, 3);
  ASSERT_FALSE(chunks.empty()) << "the follower was never sent a snapshot";
  EXPECT_EQ(chunks.front().snapshot->meta.index, snap.meta.index);
  // The follower installed exactly the leader's snapshot...
  auto installed = c.storage(3).snapshot();
  ASSERT_TRUE(installed.ok());
  EXPECT_EQ(installed->meta.index, snap.meta.index);
  EXPECT_EQ(installed->meta.term, snap.meta.term);
  EXPECT_EQ(installed->data.str(), data);
  // ...then caught up with appends of what followed it.
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
  EXPECT_EQ(c.raft(3).log().committed(), c.raft(1).log().committed());
  ASSERT_EQ(c.peer(3).applied.size(), 2u);
  EXPECT_EQ(c.peer(3).applied[0].data.str(), "after-0");
  EXPECT_EQ(c.peer(3).applied[1].data.str(), "after-1");
  // The appends carrying entries past the snapshot came after its last chunk.
  bool saw_last_chunk = false;
  for (const Message& m : c.delivered()) {
    if (m.to != nid(3)) continue;
    if (m.type == MessageType::kSnap && m.snapshot->last) saw_last_chunk = true;
    if (m.type == MessageType::kApp && !m.entries.empty()) {
      EXPECT_TRUE(saw_last_chunk) << "entries sent before the snapshot was installed";
      EXPECT_GE(m.index, snap.meta.index);
    }
  }
  // The group moves on with the repaired follower.
  c.propose(1, "after-2");
  ASSERT_EQ(c.peer(3).applied.size(), 3u);
  EXPECT_EQ(c.peer(3).applied[2].data.str(), "after-2");
}

TEST(RaftSnapshot, LargeSnapshotIsStreamedInChunksNoLargerThanTheCap) {
  TestCluster c({1, 2, 3}, small_chunks());
  const size_t total = 10 * kChunkBytes + 1;
  const std::string data = snapshot_payload(total);
  const Snapshot snap = lag_follower_3_behind_compaction(c, 3, data);
  c.heal();
  c.delivered().clear();
  tick_leader_until_caught_up(c);

  const std::vector<Message> chunks = delivered_of(c, MessageType::kSnap, 3);
  const size_t needed = (total + kChunkBytes - 1) / kChunkBytes;  // 11
  ASSERT_GE(chunks.size(), needed);
  std::set<uint64_t> offsets;
  size_t last_chunks = 0;
  for (const Message& m : chunks) {
    ASSERT_TRUE(m.snapshot.has_value());
    const SnapshotChunk& chunk = *m.snapshot;
    EXPECT_LE(chunk.data.size(), kChunkBytes) << "chunk at offset " << chunk.offset;
    EXPECT_EQ(chunk.total_bytes, total);
    EXPECT_EQ(chunk.meta.index, snap.meta.index);
    // Every chunk carries the bytes of the snapshot at its offset.
    EXPECT_EQ(chunk.data.str(), data.substr(chunk.offset, chunk.data.size()));
    offsets.insert(chunk.offset);
    if (chunk.last) {
      ++last_chunks;
      EXPECT_EQ(chunk.offset + chunk.data.size(), total);
    }
  }
  EXPECT_EQ(offsets.size(), needed);
  for (size_t i = 0; i < needed; ++i) EXPECT_EQ(offsets.count(i * kChunkBytes), 1u);
  EXPECT_GE(last_chunks, 1u);
  auto installed = c.storage(3).snapshot();
  ASSERT_TRUE(installed.ok());
  EXPECT_EQ(installed->data.str(), data);
}

TEST(RaftSnapshot, HalfReceivedSnapshotIsNotVisible) {
  TestCluster c({1, 2, 3}, small_chunks());
  const std::string data = snapshot_payload(4500);
  lag_follower_3_behind_compaction(c, 3, data);
  const LogIndex last_before = c.raft(3).log().last_index();
  const LogIndex commit_before = c.raft(3).log().committed();
  const LogIndex storage_last_before = c.storage(3).last_index();
  const LogIndex applied_before = c.peer(3).applied_index;

  c.heal();
  c.set_drop_filter([](const Message& m) {
    return m.type == MessageType::kSnap && m.snapshot && m.snapshot->last;
  });
  c.delivered().clear();
  for (int i = 0; i < 3; ++i) {
    c.tick(1);
    c.deliver_all();
  }
  // Chunks did arrive, all but the last.
  const std::vector<Message> chunks = delivered_of(c, MessageType::kSnap, 3);
  ASSERT_FALSE(chunks.empty());
  for (const Message& m : chunks) EXPECT_FALSE(m.snapshot->last);

  // Nothing of it shows: no pending snapshot, the log and storage unchanged.
  EXPECT_FALSE(c.raft(3).log().has_pending_snapshot());
  EXPECT_EQ(c.raft(3).log().last_index(), last_before);
  EXPECT_EQ(c.raft(3).log().committed(), commit_before);
  auto stored = c.storage(3).snapshot();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->meta.index, idx(1)) << "only the bootstrap snapshot";
  EXPECT_TRUE(stored->data.empty());
  EXPECT_EQ(c.storage(3).last_index(), storage_last_before);
  EXPECT_EQ(c.peer(3).applied_index, applied_before);
  EXPECT_FALSE(c.node(3).has_ready());
}

TEST(RaftSnapshot, FollowerInstallsSnapshotAtomicallyWhenTheLastChunkArrives) {
  TestCluster c({1, 2, 3}, small_chunks());
  const std::string data = snapshot_payload(4321);
  const Snapshot snap = lag_follower_3_behind_compaction(c, 3, data);

  // Hold back the last chunk the first time it is sent.
  std::vector<Message> held;
  c.heal();
  c.set_drop_filter([&held](const Message& m) {
    if (m.type != MessageType::kSnap || !m.snapshot || !m.snapshot->last) return false;
    held.push_back(m);
    return true;
  });
  c.tick(1);
  c.deliver_all();
  ASSERT_FALSE(held.empty()) << "the last chunk was never sent";
  ASSERT_FALSE(c.raft(3).log().has_pending_snapshot());
  c.set_drop_filter(nullptr);

  // Deliver the last chunk by hand and look at the Ready it produces.
  ASSERT_TRUE(c.node(3).step(held.front()).ok());
  ASSERT_TRUE(c.node(3).has_ready());
  Ready rd = c.node(3).ready();
  ASSERT_TRUE(rd.snapshot.has_value());
  EXPECT_EQ(rd.snapshot->meta.index, snap.meta.index);
  EXPECT_EQ(rd.snapshot->meta.term, snap.meta.term);
  EXPECT_EQ(rd.snapshot->meta.conf_state, snap.meta.conf_state);
  ASSERT_EQ(rd.snapshot->data.size(), data.size());
  EXPECT_TRUE(rd.snapshot->data.str() == data) << "snapshot bytes differ from the leader's";
  // Nothing from the old log is applied alongside the snapshot.
  EXPECT_TRUE(rd.committed_entries.empty());

  // Carry out the Ready as the host would.
  ASSERT_TRUE(c.storage(3).apply_snapshot(*rd.snapshot).ok());
  if (!rd.entries.empty()) {
    ASSERT_TRUE(c.storage(3).append(rd.entries).ok());
  }
  if (rd.hard_state) c.storage(3).set_hard_state(*rd.hard_state);
  for (Message& m : rd.messages) c.in_flight().push_back(std::move(m));
  for (Message& m : rd.messages_after_persist) c.in_flight().push_back(std::move(m));
  c.peer(3).applied_index = rd.snapshot->meta.index;
  c.node(3).advance();

  EXPECT_EQ(c.raft(3).log().first_index(), snap.meta.index + 1);
  EXPECT_EQ(c.raft(3).log().committed(), snap.meta.index);
  tick_leader_until_caught_up(c);
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
  ASSERT_EQ(c.peer(3).applied.size(), 2u);
  EXPECT_EQ(c.peer(3).applied[0].data.str(), "after-0");
}

TEST(RaftSnapshot, StaleSnapshotOlderThanCommitIsIgnored) {
  TestCluster c({1, 2, 3}, small_chunks());
  const std::string data = snapshot_payload(1500);
  const Snapshot snap = lag_follower_3_behind_compaction(c, 3, data);
  c.heal();
  c.delivered().clear();
  tick_leader_until_caught_up(c);
  const std::vector<Message> chunks = delivered_of(c, MessageType::kSnap, 3);
  ASSERT_FALSE(chunks.empty());
  c.propose(1, "after-2");
  ASSERT_GT(c.raft(3).log().committed(), snap.meta.index);

  const LogIndex commit = c.raft(3).log().committed();
  const LogIndex last = c.raft(3).log().last_index();
  const size_t applied = c.peer(3).applied.size();

  // A duplicate of the first chunk, arriving late.
  ASSERT_TRUE(c.node(3).step(chunks.front()).ok());
  // A snapshot whose index is below the follower's commit and that does not
  // even agree with its log there: installing it would roll the log back.
  Message stale;
  stale.group = GroupId{1};
  stale.type = MessageType::kSnap;
  stale.from = nid(1);
  stale.to = nid(3);
  stale.term = c.raft(1).term();
  SnapshotChunk chunk;
  chunk.meta.index = commit - 1;
  chunk.meta.term = term(1);
  chunk.meta.conf_state = c.initial_conf_state();
  chunk.total_bytes = 5;
  chunk.data = Bytes("stale");
  chunk.last = true;
  stale.snapshot = chunk;
  ASSERT_TRUE(c.node(3).step(stale).ok());

  EXPECT_FALSE(c.raft(3).log().has_pending_snapshot());
  EXPECT_EQ(c.raft(3).log().committed(), commit);
  EXPECT_EQ(c.raft(3).log().last_index(), last);
  c.deliver_all();
  auto stored = c.storage(3).snapshot();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->meta.index, snap.meta.index);
  EXPECT_EQ(stored->data.str(), data);
  EXPECT_EQ(c.storage(3).last_index(), last);
  EXPECT_EQ(c.peer(3).applied.size(), applied);
  EXPECT_EQ(c.raft(3).log().committed(), commit);
}

TEST(RaftSnapshot, FollowerRestartsFromTheInstalledSnapshot) {
  TestCluster c({1, 2, 3}, small_chunks());
  const std::string data = snapshot_payload(3000);
  const Snapshot snap = lag_follower_3_behind_compaction(c, 3, data);
  c.heal();
  tick_leader_until_caught_up(c);
  ASSERT_EQ(c.storage(3).snapshot()->meta.index, snap.meta.index);

  c.crash(3);
  c.restart(3);
  // The restarted node starts from the snapshot: its log begins after it,
  // everything up to it counts as committed and applied, and its
  // configuration is the snapshot's.
  EXPECT_EQ(c.raft(3).log().first_index(), snap.meta.index + 1);
  EXPECT_GE(c.raft(3).log().committed(), snap.meta.index);
  EXPECT_GE(c.raft(3).log().applied(), snap.meta.index);
  EXPECT_EQ(c.node(3).status().conf_state.voters, snap.meta.conf_state.voters);
  EXPECT_EQ(c.storage(3).snapshot()->data.str(), data);

  c.propose(1, "after-restart");
  tick_leader_until_caught_up(c);
  // Only entries after the snapshot are replayed.
  ASSERT_FALSE(c.peer(3).applied.empty());
  for (const Entry& e : c.peer(3).applied) EXPECT_GT(e.index, snap.meta.index);
  EXPECT_EQ(c.peer(3).applied.back().data.str(), "after-restart");
  EXPECT_EQ(c.raft(3).log().committed(), c.raft(1).log().committed());
}

}  // namespace
}  // namespace synod::raft::testing

namespace synod::raft::testing {
namespace {

TEST(RaftSnapshot, DamagedChunkIsDroppedAndSentAgain) {
  TestCluster c({1, 2, 3}, small_chunks());
  const std::string data = snapshot_payload(2000);
  const Snapshot snap = lag_follower_3_behind_compaction(c, 3, data);
  c.heal();
  // The second chunk arrives with one byte changed (its checksum is the
  // sender's): the follower must not keep it.
  int damaged = 0;
  c.set_drop_filter([&](const Message& m) {
    if (damaged > 0 || m.type != MessageType::kSnap || !m.snapshot || m.snapshot->offset == 0) {
      return false;
    }
    Message bad = m;
    std::string bytes = bad.snapshot->data.str();
    bytes[bytes.size() / 2] ^= 0x20;
    bad.snapshot->data = Bytes(bytes);
    ++damaged;
    EXPECT_TRUE(c.node(3).step(bad).ok());
    return true;  // the original is lost; only the damaged copy arrived
  });
  tick_leader_until_caught_up(c, 40);
  c.set_drop_filter(nullptr);
  tick_leader_until_caught_up(c, 40);
  ASSERT_EQ(damaged, 1);
  EXPECT_EQ(c.raft(3).log().last_index(), c.raft(1).log().last_index());
  auto stored = c.storage(3).snapshot();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->meta.index, snap.meta.index);
  EXPECT_TRUE(stored->data.str() == data) << "a damaged chunk became part of the snapshot";
}

}  // namespace
}  // namespace synod::raft::testing
