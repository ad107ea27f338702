// The KvEngine contract (src/node/kv_engine.h), checked on every
// implementation by one typed suite, then what each engine adds: crash
// semantics for MemKvEngine, reopening a directory for RocksKvEngine.
#include <gtest/gtest.h>

#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/rng.h"
#include "node/kv_engine.h"
#include "storage/mem_kv_engine.h"
#include "storage/rocks_kv_engine.h"
#include "support/temp_dir.h"

namespace synod {
namespace {

using base::Errc;
using node::KvEngine;
using node::KvIterator;
using node::kMaxKeyBytes;
using node::kMaxValueBytes;
using node::WriteBatch;
using storage::MemKvEngine;
using storage::RocksKvEngine;
using storage::RocksKvOptions;

using Model = std::map<std::string, std::string>;
using Pairs = std::vector<std::pair<std::string, std::string>>;

#define EXPECT_OK(expr)                                          \
  do {                                                           \
    const auto& result_ = (expr);                                \
    EXPECT_TRUE(result_.ok()) << result_.error().to_string();    \
  } while (0)
#define ASSERT_OK(expr)                                          \
  do {                                                           \
    const auto& result_ = (expr);                                \
    ASSERT_TRUE(result_.ok()) << result_.error().to_string();    \
  } while (0)

// Binary strings, written byte by byte: "\x00a" in a literal would read as
// one hex escape.
std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int value : values) out.push_back(static_cast<char>(value));
  return out;
}

template <class Reader>
std::optional<std::string> read(const Reader& reader, std::string_view key) {
  auto result = reader.get(key);
  EXPECT_TRUE(result.ok()) << result.error().to_string();
  if (!result.ok()) return std::nullopt;
  return *result;
}

// Every pair from `iterator`'s first key on.
Pairs scan(KvIterator& iterator) {
  Pairs pairs;
  for (iterator.seek_to_first(); iterator.valid(); iterator.next()) {
    pairs.emplace_back(iterator.key(), iterator.value());
  }
  EXPECT_TRUE(iterator.status().ok()) << iterator.status().error().to_string();
  return pairs;
}

template <class Reader>
Pairs scan_all(const Reader& reader) {
  return scan(*reader.iterate());
}

Pairs pairs_of(const Model& model) { return Pairs(model.begin(), model.end()); }

// How each engine is made, and what "restart" means for it: the simulated
// crash for MemKvEngine, closing and reopening the directory for RocksDB.
// Either way only synced writes are sure to be there afterwards.
template <class Engine>
struct Harness;

template <>
struct Harness<MemKvEngine> {
  void set_up() { engine = std::make_unique<MemKvEngine>(); }
  void restart() { engine->crash(); }
  void tear_down() { engine.reset(); }

  std::unique_ptr<MemKvEngine> engine;
};

template <>
struct Harness<RocksKvEngine> {
  void set_up() {
    dir.emplace("synod-kv-test");
    ASSERT_FALSE(dir->path().empty()) << "mkdtemp failed";
    open();
  }
  void open() {
    auto opened = RocksKvEngine::open(dir->path());
    ASSERT_TRUE(opened.ok()) << opened.error().to_string();
    engine = std::move(*opened);
  }
  void restart() {
    engine.reset();
    open();
  }
  void tear_down() {
    engine.reset();
    dir.reset();
  }

  std::optional<test_support::TempDir> dir;
  std::unique_ptr<RocksKvEngine> engine;
};

template <class Engine>
class KvEngineContract : public ::testing::Test {
 protected:
  void SetUp() override { harness_.set_up(); }
  void TearDown() override { harness_.tear_down(); }
  KvEngine& engine() { return *harness_.engine; }
  void restart() { harness_.restart(); }

  Harness<Engine> harness_;
};

struct EngineNames {
  template <class Engine>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<Engine, MemKvEngine>) {
      return "Mem";
    } else {
      return "Rocks";
    }
  }
};

using Engines = ::testing::Types<MemKvEngine, RocksKvEngine>;
TYPED_TEST_SUITE(KvEngineContract, Engines, EngineNames);

TYPED_TEST(KvEngineContract, MissingKeyReadsAsNullopt) {
  EXPECT_EQ(read(this->engine(), "absent"), std::nullopt);
  EXPECT_OK(this->engine().put("present", "v"));
  EXPECT_EQ(read(this->engine(), "absent"), std::nullopt);
  EXPECT_EQ(read(this->engine(), "presen"), std::nullopt);
  EXPECT_EQ(read(this->engine(), "present!"), std::nullopt);
}

TYPED_TEST(KvEngineContract, PutStoresAndOverwritesTheValue) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("k", "one"));
  EXPECT_EQ(read(engine, "k"), "one");
  EXPECT_OK(engine.put("k", "two, longer"));
  EXPECT_EQ(read(engine, "k"), "two, longer");
  EXPECT_OK(engine.put("k", "3"));
  EXPECT_EQ(read(engine, "k"), "3");
  EXPECT_EQ(scan_all(engine), (Pairs{{"k", "3"}}));
}

TYPED_TEST(KvEngineContract, DeleteRemovesTheKeyAndToleratesAMissingOne) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("a", "1"));
  EXPECT_OK(engine.put("b", "2"));
  EXPECT_OK(engine.del("a"));
  EXPECT_EQ(read(engine, "a"), std::nullopt);
  EXPECT_EQ(read(engine, "b"), "2");
  EXPECT_OK(engine.del("a"));
  EXPECT_OK(engine.del("never"));
  EXPECT_EQ(scan_all(engine), (Pairs{{"b", "2"}}));
}

TYPED_TEST(KvEngineContract, EmptyValueIsPresentNotMissing) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("k", ""));
  EXPECT_EQ(read(engine, "k"), std::optional<std::string>(""));
  EXPECT_OK(engine.put("", "empty key"));
  EXPECT_EQ(read(engine, ""), "empty key");
  EXPECT_EQ(scan_all(engine), (Pairs{{"", "empty key"}, {"k", ""}}));
}

TYPED_TEST(KvEngineContract, BatchAppliesItsOperationsInOrder) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("kept", "old"));
  EXPECT_OK(engine.put("r2", "old"));
  WriteBatch batch;
  batch.put("gone", "v");
  batch.del("gone");  // put then delete: absent
  batch.del("back");
  batch.put("back", "v");  // delete then put: present
  batch.put("kept", "new");
  batch.put("r1", "v");
  batch.delete_range("r", "s");  // covers the put just before it and r2
  batch.delete_range("t", "u");
  batch.put("t1", "v");  // a put after a range delete survives it
  batch.put("twice", "first");
  batch.put("twice", "second");
  EXPECT_OK(engine.write(batch));
  EXPECT_EQ(scan_all(engine), (Pairs{{"back", "v"}, {"kept", "new"}, {"t1", "v"},
                                     {"twice", "second"}}));
}

TYPED_TEST(KvEngineContract, EmptyBatchIsAcceptedWithAndWithoutSync) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("k", "v"));
  EXPECT_OK(engine.write(WriteBatch()));
  EXPECT_OK(engine.write(WriteBatch(), {.sync = true}));
  EXPECT_OK(engine.sync());
  EXPECT_EQ(scan_all(engine), (Pairs{{"k", "v"}}));
}

TYPED_TEST(KvEngineContract, DeleteRangeRemovesTheHalfOpenInterval) {
  KvEngine& engine = this->engine();
  for (const std::string& key : {std::string("a"), std::string("b"), bytes({'b', 0x00}),
                                 std::string("bz"), bytes({'b', 0xff, 0xff}), std::string("c"),
                                 std::string("d"), bytes({'d', 0x00})}) {
    EXPECT_OK(engine.put(key, "v"));
  }
  WriteBatch batch;
  batch.delete_range("b", "d");
  EXPECT_OK(engine.write(batch));
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "v"}, {"d", "v"}, {bytes({'d', 0x00}), "v"}}));
}

TYPED_TEST(KvEngineContract, EmptyOrInvertedDeleteRangeDeletesNothing) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("a", "v"));
  EXPECT_OK(engine.put("b", "v"));
  WriteBatch batch;
  batch.delete_range("a", "a");
  batch.delete_range("b", "a");
  batch.delete_range("", "");
  EXPECT_OK(engine.write(batch));
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "v"}, {"b", "v"}}));
}

TYPED_TEST(KvEngineContract, IterationIsInUnsignedByteOrder) {
  KvEngine& engine = this->engine();
  // Written out of order; a signed comparison would put 0x80 and 0xff first.
  const std::vector<std::string> sorted = {
      "",          bytes({0x00}),       bytes({0x00, 0x00}), bytes({0x00, 0xff}),
      bytes({0x01}), "a",               bytes({'a', 0x00}),  "ab",
      bytes({0x7f}), bytes({0x80}),     bytes({0xfe, 0xff}), bytes({0xff}),
      bytes({0xff, 0x00}), bytes({0xff, 0xff})};
  for (size_t i = sorted.size(); i-- > 0;) {
    EXPECT_OK(engine.put(sorted[(i * 5) % sorted.size()], std::to_string((i * 5) % sorted.size())));
  }
  Pairs expected;
  for (size_t i = 0; i < sorted.size(); ++i) expected.emplace_back(sorted[i], std::to_string(i));
  EXPECT_EQ(scan_all(engine), expected);
}

TYPED_TEST(KvEngineContract, IteratorStartsUnpositioned) {
  KvEngine& engine = this->engine();
  auto empty = engine.iterate();
  empty->seek_to_first();
  EXPECT_FALSE(empty->valid());
  EXPECT_TRUE(empty->status().ok());
  EXPECT_OK(engine.put("k", "v"));
  auto iterator = engine.iterate();
  EXPECT_FALSE(iterator->valid());
  EXPECT_TRUE(iterator->status().ok());
}

TYPED_TEST(KvEngineContract, SeekFindsTheFirstKeyAtOrAfter) {
  KvEngine& engine = this->engine();
  for (const std::string& key : {std::string("b"), std::string("d"), bytes({'d', 0x00}),
                                 bytes({0xff})}) {
    EXPECT_OK(engine.put(key, "v" + key));
  }
  auto iterator = engine.iterate();
  iterator->seek("d");  // an existing key
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), "d");
  EXPECT_EQ(iterator->value(), "vd");
  iterator->next();
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), bytes({'d', 0x00}));
  iterator->seek("c");  // between keys, and backwards after moving
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), "d");
  iterator->seek("");  // before every key
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), "b");
  iterator->seek(bytes({0xfe}));  // above 0x7f: unsigned
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), bytes({0xff}));
  iterator->next();
  EXPECT_FALSE(iterator->valid());
  iterator->seek(bytes({0xff, 0x00}));  // past the last key
  EXPECT_FALSE(iterator->valid());
  EXPECT_TRUE(iterator->status().ok());
  iterator->seek_to_first();
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), "b");
}

TYPED_TEST(KvEngineContract, SnapshotIgnoresLaterWrites) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("a", "1"));
  EXPECT_OK(engine.put("b", "2"));
  EXPECT_OK(engine.put("c", "3"));
  EXPECT_OK(engine.put("d", "4"));
  auto snapshot = engine.snapshot();
  const Pairs frozen = {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}};

  EXPECT_OK(engine.put("a", "changed"));
  EXPECT_OK(engine.del("b"));
  EXPECT_OK(engine.put("new", "x"));
  WriteBatch batch;
  batch.delete_range("c", "e");
  batch.put("c", "again");
  EXPECT_OK(engine.write(batch, {.sync = true}));
  EXPECT_OK(engine.sync());

  EXPECT_EQ(read(*snapshot, "a"), "1");
  EXPECT_EQ(read(*snapshot, "b"), "2");
  EXPECT_EQ(read(*snapshot, "c"), "3");
  EXPECT_EQ(read(*snapshot, "new"), std::nullopt);
  EXPECT_EQ(scan_all(*snapshot), frozen);
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "changed"}, {"c", "again"}, {"new", "x"}}));

  // A snapshot's iterator made before more writes stays on the snapshot too.
  auto iterator = snapshot->iterate();
  EXPECT_OK(engine.put("0", "first now"));
  EXPECT_EQ(scan(*iterator), frozen);
}

TYPED_TEST(KvEngineContract, IteratorIsFrozenWhenCreated) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("a", "1"));
  EXPECT_OK(engine.put("c", "3"));
  auto iterator = engine.iterate();
  iterator->seek_to_first();
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), "a");
  // Writes ahead of and behind the cursor, after it was positioned.
  EXPECT_OK(engine.put("b", "2"));
  EXPECT_OK(engine.del("c"));
  EXPECT_OK(engine.put("a", "changed"));
  iterator->next();
  ASSERT_TRUE(iterator->valid());
  EXPECT_EQ(iterator->key(), "c");
  EXPECT_EQ(iterator->value(), "3");
  EXPECT_EQ(scan(*iterator), (Pairs{{"a", "1"}, {"c", "3"}}));
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "changed"}, {"b", "2"}}));
}

TYPED_TEST(KvEngineContract, OversizedKeyIsRefusedAndChangesNothing) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("k", "v"));
  const std::string at_cap(kMaxKeyBytes, 'k');
  const std::string over_cap(kMaxKeyBytes + 1, 'k');

  EXPECT_EQ(engine.put(over_cap, "v").code(), Errc::kInvalidArgument);
  EXPECT_EQ(engine.del(over_cap).code(), Errc::kInvalidArgument);
  EXPECT_EQ(read(engine, over_cap), std::nullopt);
  WriteBatch range_begin;
  range_begin.delete_range(over_cap, "z");
  EXPECT_EQ(engine.write(range_begin).code(), Errc::kInvalidArgument);
  WriteBatch range_end;
  range_end.delete_range("", over_cap);
  EXPECT_EQ(engine.write(range_end).code(), Errc::kInvalidArgument);
  EXPECT_EQ(scan_all(engine), (Pairs{{"k", "v"}}));

  EXPECT_OK(engine.put(at_cap, "at the cap"));
  EXPECT_EQ(read(engine, at_cap), "at the cap");
}

TYPED_TEST(KvEngineContract, OversizedValueIsRefusedAndChangesNothing) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("k", "v"));
  {
    const std::string over_cap(kMaxValueBytes + 1, 'v');
    EXPECT_EQ(engine.put("k", over_cap).code(), Errc::kInvalidArgument);
    EXPECT_EQ(engine.put("new", over_cap).code(), Errc::kInvalidArgument);
  }
  EXPECT_EQ(scan_all(engine), (Pairs{{"k", "v"}}));

  const std::string at_cap(kMaxValueBytes, 'v');
  EXPECT_OK(engine.put("big", at_cap));
  auto value = read(engine, "big");
  ASSERT_TRUE(value.has_value());
  EXPECT_TRUE(*value == at_cap);  // not EXPECT_EQ: 64 MiB in a failure message
}

TYPED_TEST(KvEngineContract, OneOversizedOperationRefusesTheWholeBatch) {
  KvEngine& engine = this->engine();
  EXPECT_OK(engine.put("a", "1"));
  EXPECT_OK(engine.put("b", "2"));
  const std::string big_key(kMaxKeyBytes + 1, 'k');

  for (int oversized_op = 0; oversized_op < 3; ++oversized_op) {
    SCOPED_TRACE(oversized_op);
    WriteBatch batch;
    batch.put("a", "changed");
    batch.del("b");
    batch.delete_range("", "zz");
    if (oversized_op == 0) batch.put(big_key, "v");
    if (oversized_op == 1) batch.del(big_key);
    if (oversized_op == 2) batch.put("c", std::string(kMaxValueBytes + 1, 'v'));
    batch.put("d", "4");
    EXPECT_EQ(engine.write(batch, {.sync = true}).code(), Errc::kInvalidArgument);
    EXPECT_EQ(scan_all(engine), (Pairs{{"a", "1"}, {"b", "2"}}));
  }
}

TYPED_TEST(KvEngineContract, SyncedWritesSurviveARestart) {
  KvEngine& before = this->engine();
  EXPECT_OK(before.put("put", "synced", {.sync = true}));
  WriteBatch batch;
  batch.put("batch", "synced");
  batch.put("doomed", "v");
  batch.del("doomed");
  EXPECT_OK(before.write(batch, {.sync = true}));
  EXPECT_OK(before.put("later", "synced by sync()"));
  EXPECT_OK(before.del("put"));
  EXPECT_OK(before.put("put", "again"));
  EXPECT_OK(before.sync());

  this->restart();
  EXPECT_EQ(scan_all(this->engine()),
            (Pairs{{"batch", "synced"}, {"later", "synced by sync()"}, {"put", "again"}}));
}

// Random operations, checked against std::map after each read. Keys come
// from a small alphabet with 0x00, 0x7f, 0x80 and 0xff so they collide, nest
// as prefixes and test unsigned order.
class RandomOps {
 public:
  explicit RandomOps(uint64_t seed) : rng_(seed) {}

  std::string key() {
    static constexpr char kAlphabet[] = {'\x00', '\x01', 'a', 'b', '\x7f', '\x80', '\xff'};
    std::string key;
    const uint64_t length = rng_.uniform(4);
    for (uint64_t i = 0; i < length; ++i) key.push_back(kAlphabet[rng_.uniform(sizeof kAlphabet)]);
    return key;
  }
  std::string value() {
    std::string value;
    const uint64_t length = rng_.chance(1, 20) ? rng_.uniform(2000) : rng_.uniform(9);
    for (uint64_t i = 0; i < length; ++i) value.push_back(static_cast<char>(rng_.uniform(256)));
    return value;
  }
  base::Rng& rng() { return rng_; }

 private:
  base::Rng rng_;
};

void apply_to_model(const WriteBatch& batch, Model& model) {
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.kind) {
      case WriteBatch::Kind::kPut: model[op.key] = op.value; break;
      case WriteBatch::Kind::kDelete: model.erase(op.key); break;
      case WriteBatch::Kind::kDeleteRange:
        if (op.key < op.value) model.erase(model.lower_bound(op.key), model.lower_bound(op.value));
        break;
    }
  }
}

WriteBatch random_batch(RandomOps& ops) {
  WriteBatch batch;
  const uint64_t count = ops.rng().between(1, 8);
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t kind = ops.rng().uniform(10);
    if (kind < 6) {
      batch.put(ops.key(), ops.value());
    } else if (kind < 9) {
      batch.del(ops.key());
    } else {
      batch.delete_range(ops.key(), ops.key());
    }
  }
  return batch;
}

// From a random key, up to a few steps, as the model would walk.
template <class Reader>
void expect_seek_matches(const Reader& reader, const Model& model, RandomOps& ops) {
  const std::string target = ops.key();
  auto iterator = reader.iterate();
  iterator->seek(target);
  auto expected = model.lower_bound(target);
  for (int step = 0; step < 4; ++step, ++expected) {
    if (expected == model.end()) {
      EXPECT_FALSE(iterator->valid());
      break;
    }
    ASSERT_TRUE(iterator->valid());
    EXPECT_EQ(iterator->key(), expected->first);
    EXPECT_EQ(iterator->value(), expected->second);
    iterator->next();
  }
  EXPECT_TRUE(iterator->status().ok());
}

TYPED_TEST(KvEngineContract, RandomOperationsMatchAnOrderedMapModel) {
  constexpr int kOpsPerSeed = 3000;
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE("reproduce with seed=" + std::to_string(seed));
    this->TearDown();
    this->SetUp();
    KvEngine& engine = this->engine();
    RandomOps ops(seed);
    Model model;
    std::unique_ptr<node::KvSnapshot> snapshot;
    Model snapshot_model;

    for (int i = 0; i < kOpsPerSeed && !this->HasFatalFailure(); ++i) {
      const uint64_t choice = ops.rng().uniform(100);
      const node::WriteOptions write_options{.sync = ops.rng().chance(1, 50)};
      if (choice < 30) {
        std::string key = ops.key();
        std::string value = ops.value();
        EXPECT_OK(engine.put(key, value, write_options));
        model[key] = value;
      } else if (choice < 45) {
        std::string key = ops.key();
        EXPECT_OK(engine.del(key, write_options));
        model.erase(key);
      } else if (choice < 50) {
        WriteBatch batch;
        batch.delete_range(ops.key(), ops.key());
        EXPECT_OK(engine.write(batch, write_options));
        apply_to_model(batch, model);
      } else if (choice < 65) {
        WriteBatch batch = random_batch(ops);
        EXPECT_OK(engine.write(batch, write_options));
        apply_to_model(batch, model);
      } else if (choice < 75) {
        std::string key = ops.key();
        auto found = model.find(key);
        EXPECT_EQ(read(engine, key),
                  found == model.end() ? std::nullopt : std::optional<std::string>(found->second));
      } else if (choice < 80) {
        EXPECT_EQ(scan_all(engine), pairs_of(model));
      } else if (choice < 90) {
        expect_seek_matches(engine, model, ops);
      } else if (choice < 93) {
        snapshot = engine.snapshot();
        snapshot_model = model;
      } else if (choice < 98) {
        if (snapshot == nullptr) continue;
        std::string key = ops.key();
        auto found = snapshot_model.find(key);
        EXPECT_EQ(read(*snapshot, key), found == snapshot_model.end()
                                            ? std::nullopt
                                            : std::optional<std::string>(found->second));
        EXPECT_EQ(scan_all(*snapshot), pairs_of(snapshot_model));
        expect_seek_matches(*snapshot, snapshot_model, ops);
      } else {
        EXPECT_OK(engine.sync());
      }
    }
    EXPECT_EQ(scan_all(engine), pairs_of(model));
  }
}

// --- MemKvEngine: the crash model --------------------------------------

TEST(MemKvEngineCrash, CrashLosesUnsyncedWritesAndKeepsSyncedOnes) {
  MemKvEngine engine;
  EXPECT_OK(engine.put("synced", "1", {.sync = true}));
  EXPECT_OK(engine.put("unsynced", "2"));
  EXPECT_OK(engine.put("synced", "overwritten, unsynced"));
  EXPECT_OK(engine.del("synced too"));
  EXPECT_EQ(engine.unsynced_batches(), 3u);
  engine.crash();
  EXPECT_EQ(engine.unsynced_batches(), 0u);
  EXPECT_EQ(scan_all(engine), (Pairs{{"synced", "1"}}));

  EXPECT_OK(engine.put("a", "1"));
  EXPECT_OK(engine.del("synced"));
  EXPECT_OK(engine.sync());
  EXPECT_OK(engine.put("b", "lost"));
  engine.crash();
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "1"}}));
}

TEST(MemKvEngineCrash, SyncWriteMakesEveryEarlierWriteDurable) {
  MemKvEngine engine;
  EXPECT_OK(engine.put("a", "1"));
  EXPECT_OK(engine.put("b", "2"));
  EXPECT_OK(engine.put("c", "3", {.sync = true}));
  EXPECT_OK(engine.put("d", "lost"));
  engine.crash();
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "1"}, {"b", "2"}, {"c", "3"}}));
}

TEST(MemKvEngineCrash, CrashNeverKeepsPartOfABatch) {
  MemKvEngine engine;
  EXPECT_OK(engine.put("a", "old"));
  EXPECT_OK(engine.put("r1", "old"));
  EXPECT_OK(engine.put("r2", "old"));
  EXPECT_OK(engine.sync());
  WriteBatch batch;
  batch.put("a", "new");
  batch.put("a", "newer");
  batch.del("r1");
  batch.put("r1", "back");
  batch.delete_range("r", "s");
  batch.put("z", "new");
  EXPECT_OK(engine.write(batch));
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "newer"}, {"z", "new"}}));
  engine.crash();
  EXPECT_EQ(scan_all(engine), (Pairs{{"a", "old"}, {"r1", "old"}, {"r2", "old"}}));
}

TEST(MemKvEngineCrash, CrashKeepsAPrefixOfTheUnsyncedBatches) {
  for (uint64_t seed : {11u, 12u, 13u, 14u}) {
    SCOPED_TRACE("reproduce with seed=" + std::to_string(seed));
    MemKvEngine engine;
    RandomOps ops(seed);
    Model durable;
    // The model after each unsynced batch, oldest first.
    std::vector<Model> unsynced;
    for (int i = 0; i < 2000; ++i) {
      const uint64_t choice = ops.rng().uniform(100);
      if (choice < 80) {
        const bool sync = ops.rng().chance(1, 10);
        WriteBatch batch = random_batch(ops);
        EXPECT_OK(engine.write(batch, {.sync = sync}));
        Model after = unsynced.empty() ? durable : unsynced.back();
        apply_to_model(batch, after);
        if (sync) {
          durable = std::move(after);
          unsynced.clear();
        } else {
          unsynced.push_back(std::move(after));
        }
      } else if (choice < 85) {
        EXPECT_OK(engine.sync());
        if (!unsynced.empty()) durable = unsynced.back();
        unsynced.clear();
      } else if (choice < 90) {
        // A snapshot held across the crash keeps its view.
        auto snapshot = engine.snapshot();
        const Pairs before = scan_all(*snapshot);
        ASSERT_EQ(engine.unsynced_batches(), unsynced.size());
        const size_t kept = ops.rng().uniform(unsynced.size() + 1);
        engine.crash_keeping(kept);
        if (kept > 0) durable = unsynced[kept - 1];
        unsynced.clear();
        EXPECT_EQ(scan_all(*snapshot), before);
      } else {
        const Model& now = unsynced.empty() ? durable : unsynced.back();
        EXPECT_EQ(scan_all(engine), pairs_of(now));
      }
    }
    engine.crash();
    EXPECT_EQ(scan_all(engine), pairs_of(durable));
  }
}

TEST(MemKvEngine, SnapshotsAndIteratorsMayOutliveTheEngine) {
  auto engine = std::make_unique<MemKvEngine>();
  EXPECT_OK(engine->put("k", "v"));
  auto snapshot = engine->snapshot();
  auto iterator = engine->iterate();
  engine.reset();
  EXPECT_EQ(read(*snapshot, "k"), "v");
  EXPECT_EQ(scan(*iterator), (Pairs{{"k", "v"}}));
}

// --- RocksKvEngine: the directory ---------------------------------------

class RocksKvEngineDir : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.empty()) << "mkdtemp failed"; }
  std::unique_ptr<RocksKvEngine> open(RocksKvOptions options = {}) {
    auto opened = RocksKvEngine::open(dir_, options);
    EXPECT_TRUE(opened.ok()) << opened.error().to_string();
    if (!opened.ok()) return nullptr;
    return std::move(*opened);
  }

  test_support::TempDir temp_{"synod-kv-test"};
  const std::string dir_ = temp_.path();
};

TEST_F(RocksKvEngineDir, ReopenFindsEverySyncedWrite) {
  // A small memtable, so the data ends up in SST files, flushed in the
  // background, as well as in the WAL.
  RocksKvOptions options;
  options.write_buffer_bytes = 64u << 10;
  RandomOps ops(21);
  Model model;
  {
    auto engine = open(options);
    ASSERT_NE(engine, nullptr);
    for (int i = 0; i < 3000; ++i) {
      WriteBatch batch = random_batch(ops);
      batch.put("bulk" + std::to_string(i), std::string(200, static_cast<char>(i)));
      if (i % 500 == 0) batch.delete_range("bulk", "bulk5");
      EXPECT_OK(engine->write(batch, {.sync = i % 100 == 0}));
      apply_to_model(batch, model);
    }
    EXPECT_OK(engine->sync());
    EXPECT_OK(engine->close());
  }
  auto engine = open(options);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(scan_all(*engine), pairs_of(model));
  // And it keeps working after recovery.
  EXPECT_OK(engine->put("after", "reopen", {.sync = true}));
  EXPECT_EQ(read(*engine, "after"), "reopen");
}

TEST_F(RocksKvEngineDir, SecondOpenOfTheSameDirectoryFailsWhileTheFirstHoldsIt) {
  auto first = open();
  ASSERT_NE(first, nullptr);
  auto second = RocksKvEngine::open(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.code(), Errc::kIo);
  EXPECT_NE(second.error().message().find("lock"), std::string::npos)
      << second.error().to_string();
  first.reset();
  EXPECT_NE(open(), nullptr);
}

TEST_F(RocksKvEngineDir, OpenWithoutCreateIfMissingRefusesAnEmptyDirectory) {
  RocksKvOptions options;
  options.create_if_missing = false;
  auto opened = RocksKvEngine::open(dir_, options);
  EXPECT_FALSE(opened.ok());
}

TEST_F(RocksKvEngineDir, OpenRefusesOptionsOutOfBounds) {
  RocksKvOptions no_cache;
  no_cache.block_cache_bytes = 0;
  RocksKvOptions tiny_memtable;
  tiny_memtable.write_buffer_bytes = 1024;
  RocksKvOptions no_jobs;
  no_jobs.background_jobs_max = 0;
  for (const RocksKvOptions& options : {no_cache, tiny_memtable, no_jobs}) {
    EXPECT_EQ(RocksKvEngine::open(dir_, options).code(), Errc::kInvalidArgument);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(RocksKvEngineDir, SnapshotIteratorMayOutliveItsSnapshot) {
  auto engine = open();
  ASSERT_NE(engine, nullptr);
  EXPECT_OK(engine->put("k", "v"));
  auto snapshot = engine->snapshot();
  auto iterator = snapshot->iterate();
  snapshot.reset();
  EXPECT_OK(engine->put("k", "changed"));
  EXPECT_EQ(scan(*iterator), (Pairs{{"k", "v"}}));
}

TEST_F(RocksKvEngineDir, ClosingUnderALiveIteratorStopsTheProcess) {
  // "threadsafe" re-runs the test in a fresh process: forking one with
  // RocksDB's background threads alive could deadlock the child.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto engine = open();
        auto iterator = engine->iterate();
        // The child made its own directory and dies before removing it.
        std::filesystem::remove_all(dir_);
        engine.reset();
      },
      "outlives");
}

}  // namespace
}  // namespace synod
