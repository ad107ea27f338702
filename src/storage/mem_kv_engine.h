// An in-memory KvEngine for tests and the deterministic simulator.
//
// It keeps every guarantee of node::KvEngine (kv_engine.h) and adds a model
// of what a crash does to them, so the simulator can crash a node and find
// exactly what a real disk would have kept:
//   - `crash()` loses every batch written since the last sync (a `sync()` or
//     a write with `sync = true`) and keeps every batch written before it;
//   - `crash_keeping(n)` keeps the first n of those unsynced batches and
//     loses the rest, which is what prefix durability allows a real disk to
//     do. No crash ever keeps part of a batch.
// What survives a crash counts as durable from then on.
//
// Pure: no I/O, no threads, no clocks. Not thread-safe: the engine, its
// snapshots and its iterators belong to one thread. Snapshots and iterators
// share the engine's map; the first write after one is taken copies the map
// (O(n)), later writes do not until the next snapshot. Snapshots and
// iterators may outlive the engine.
//
// Memory: besides the data, the engine keeps, for every write since the last
// sync, the values that write replaced (to undo it in a crash). Sync often
// and that stays small.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/kv_engine.h"

namespace synod::storage {

class MemKvEngine final : public node::KvEngine {
 public:
  // std::less<> so lookups by string_view need no copy. std::string compares
  // its chars as unsigned char, which is memcmp order.
  using Map = std::map<std::string, std::string, std::less<>>;

  MemKvEngine();

  base::Result<std::optional<std::string>> get(std::string_view key) const override;
  base::Status put(std::string_view key, std::string_view value,
                   node::WriteOptions options = {}) override;
  base::Status del(std::string_view key, node::WriteOptions options = {}) override;
  base::Status write(const node::WriteBatch& batch, node::WriteOptions options = {}) override;
  std::unique_ptr<node::KvIterator> iterate() const override;
  std::unique_ptr<node::KvSnapshot> snapshot() const override;
  base::Status sync() override;

  // Simulated crash and restart: undoes every batch written since the last
  // sync, newest first.
  void crash() { crash_keeping(0); }
  // Simulated crash that keeps the oldest `unsynced_batches_kept` unsynced
  // batches (at most `unsynced_batches()`) and loses the newer ones.
  void crash_keeping(size_t unsynced_batches_kept);
  // How many batches a crash would lose now (puts and dels count as one).
  size_t unsynced_batches() const { return unsynced_.size(); }
  size_t size() const { return map_->size(); }

 private:
  // A key's value before a write changed it; nullopt when it was absent.
  struct Prior {
    std::string key;
    std::optional<std::string> value;
  };
  // What undoes one unsynced batch: its priors, in the order it made them.
  using Undo = std::vector<Prior>;

  // The map, copied first when a snapshot or iterator still shares it.
  Map& mutable_map();
  void apply_put(std::string_view key, std::string_view value, Undo& undo);
  void apply_delete(std::string_view key, Undo& undo);
  void apply_delete_range(std::string_view begin, std::string_view end, Undo& undo);
  // Ends a write: it is durable now (with everything before it), or it joins
  // the batches a crash may lose.
  void finish_write(Undo undo, node::WriteOptions options);
  void undo(const Undo& undo);

  std::shared_ptr<Map> map_;
  // Oldest first; empty right after a sync.
  std::vector<Undo> unsynced_;
};

}  // namespace synod::storage
