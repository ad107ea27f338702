// Expiry in the KV state machine: judged against the time each command
// carries, so every replica (and every replay) agrees; carried by snapshots.
#include <gtest/gtest.h>

#include "node/kv_state_machine.h"
#include "storage/mem_kv_engine.h"

namespace synod::node {
namespace {

using raft::Entry;
using raft::GroupId;
using raft::LogIndex;
using raft::Term;

constexpr GroupId kGroup{4};

Entry entry(uint64_t index, Command c) {
  return Entry{Term{1}, LogIndex{index}, raft::EntryType::kNormal, base::Bytes(encode_command(c))};
}

Command set(uint64_t sequence, std::string key, std::string value, uint64_t now_ms,
            uint64_t expire_at_ms, uint8_t flags = 0) {
  Command c;
  c.client_id = 1;
  c.sequence = sequence;
  c.op = CommandOp::kSet;
  c.key = std::move(key);
  c.value = std::move(value);
  c.now_ms = now_ms;
  c.expire_at_ms = expire_at_ms;
  c.flags = flags;
  return c;
}

Command incr(uint64_t sequence, std::string key, uint64_t now_ms) {
  Command c;
  c.client_id = 1;
  c.sequence = sequence;
  c.op = CommandOp::kIncrBy;
  c.key = std::move(key);
  c.value = "1";
  c.now_ms = now_ms;
  return c;
}

TEST(KvExpiry, CommandsJudgeExpiryByTheTimeTheyCarry) {
  const std::vector<Entry> log = {
      entry(1, set(1, "k", "5", 1000, 2000)),
      entry(2, incr(2, "k", 1500)),            // before expiry: 6, TTL kept
      entry(3, incr(3, "k", 2000)),            // at expiry: gone, so 1, no TTL
      entry(4, set(4, "t", "v", 2000, 3000)),
      entry(5, set(5, "t", "w", 2100, 0, kSetKeepTtl)),
      entry(6, set(6, "u", "v", 2000, 3000)),
      entry(7, set(7, "u", "w", 2100, 0)),      // plain SET forgets the TTL
  };
  // Two replicas applying the same log in different batches agree.
  storage::MemKvEngine one, two;
  KvStateMachine a(kGroup, &one), b(kGroup, &two);
  ASSERT_TRUE(a.load().ok());
  ASSERT_TRUE(b.load().ok());
  auto applied = a.apply(log, nullptr);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ((*applied)[1].reply->integer, 6);
  EXPECT_EQ((*applied)[2].reply->integer, 1);
  for (const Entry& e : log) ASSERT_TRUE(b.apply({e}, nullptr).ok());
  for (const char* key : {"k", "t", "u"}) {
    EXPECT_EQ(*a.get(key, 2500), *b.get(key, 2500)) << key;
  }
  EXPECT_EQ(**a.get("k", 99999), "1");           // the incr at expiry dropped the TTL
  EXPECT_EQ(**a.get("t", 2999), "w");
  EXPECT_FALSE(a.get("t", 3000)->has_value());   // KEEPTTL kept 3000
  EXPECT_EQ(**a.get("u", 99999), "w");            // no TTL any more
  EXPECT_EQ(**a.get("t", 0), "w");                // time 0: nothing is judged

  // A snapshot carries the TTLs: the installed replica expires "t" too.
  auto snapshot = a.snapshot();
  ASSERT_TRUE(snapshot.ok());
  storage::MemKvEngine three;
  KvStateMachine c(kGroup, &three);
  ASSERT_TRUE(c.load().ok());
  ASSERT_TRUE(c.install(*snapshot).ok());
  EXPECT_EQ(**c.get("t", 2999), "w");
  EXPECT_FALSE(c.get("t", 3000)->has_value());
}

TEST(KvExpiry, OlderCommandFormatsStillDecode) {
  Command c = set(3, "k", "v", 0, 0);
  std::string v3 = encode_command(c);
  // Format 2 is format 3 without the two trailing varints (both 0 here).
  std::string v2 = v3.substr(0, v3.size() - 2);
  v2[0] = 2;
  auto decoded = decode_command(v2);
  ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
  EXPECT_EQ(decoded->key, "k");
  EXPECT_EQ(decoded->now_ms, 0u);
  v3[0] = 9;
  EXPECT_FALSE(decode_command(v3).ok());
}

}  // namespace
}  // namespace synod::node
