// The ordered key-value store under a node's state machines.
//
// The interface is part of the pure core, so the state machine (src/node) can
// be driven by the simulator; the implementations live in the shell:
// `storage::RocksKvEngine` (production, RocksDB) and `storage::MemKvEngine`
// (tests and the simulator). Both must behave identically; one typed test
// suite runs against both.
//
// Guarantees every implementation keeps:
//   - `write(batch)` is atomic: after a crash either every operation of the
//     batch is visible or none is. The state machine relies on this to store
//     its applied index in the same batch as the data it covers.
//   - `write(batch, {.sync = true})` is durable when it returns; without
//     `sync`, a crash may lose the latest batches, never part of one and never
//     an older batch while keeping a newer one (prefix durability).
//   - A `KvSnapshot` is a consistent, read-only view frozen at the moment it
//     was taken; writes made later are invisible to it and its iterators.
//   - Iteration is in ascending byte order of keys (memcmp, unsigned).
//   - Keys and values are at most `kMaxKeyBytes` / `kMaxValueBytes`; larger
//     ones are refused with kInvalidArgument and change nothing.
//   - An engine, its snapshots and its iterators belong to one thread, and
//     snapshots and iterators are destroyed before the engine.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace synod::node {

inline constexpr size_t kMaxKeyBytes = 64 * 1024;
inline constexpr size_t kMaxValueBytes = 64 * 1024 * 1024;

// Operations applied together by `KvEngine::write`.
class WriteBatch {
 public:
  enum class Kind : uint8_t { kPut, kDelete, kDeleteRange };
  struct Op {
    Kind kind;
    std::string key;    // for kDeleteRange: the first key deleted
    std::string value;  // for kDeleteRange: the end key, exclusive
  };

  void put(std::string_view key, std::string_view value) {
    ops_.push_back({Kind::kPut, std::string(key), std::string(value)});
    bytes_ += key.size() + value.size();
  }
  // put() without copying the value (a value may be 64 MiB).
  void put_moved(std::string key, std::string value) {
    bytes_ += key.size() + value.size();
    ops_.push_back({Kind::kPut, std::move(key), std::move(value)});
  }
  void del(std::string_view key) {
    ops_.push_back({Kind::kDelete, std::string(key), {}});
    bytes_ += key.size();
  }
  // Deletes every key in [begin, end); nothing when begin >= end.
  void delete_range(std::string_view begin, std::string_view end) {
    ops_.push_back({Kind::kDeleteRange, std::string(begin), std::string(end)});
    bytes_ += begin.size() + end.size();
  }
  void clear() {
    ops_.clear();
    bytes_ = 0;
  }

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  size_t size_bytes() const { return bytes_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

// The caps every engine enforces, checked before anything is applied: a
// refused batch changes nothing. kInvalidArgument names the cap.
base::Status check_key_size(std::string_view key, std::string_view what = "key");
base::Status check_value_size(std::string_view value);
base::Status check_batch_limits(const WriteBatch& batch);

struct WriteOptions {
  bool sync = false;
};

// An ordered cursor. Starts unpositioned: call `seek` or `seek_to_first`.
class KvIterator {
 public:
  virtual ~KvIterator() = default;
  virtual void seek_to_first() = 0;
  // Positions at the first key >= `key`.
  virtual void seek(std::string_view key) = 0;
  virtual bool valid() const = 0;
  virtual void next() = 0;
  // Only while `valid()`; the views live until the next move.
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // An error met while iterating (I/O or corruption); `valid()` is false then.
  virtual base::Status status() const = 0;
};

// A frozen, consistent view of the engine.
class KvSnapshot {
 public:
  virtual ~KvSnapshot() = default;
  virtual base::Result<std::optional<std::string>> get(std::string_view key) const = 0;
  virtual std::unique_ptr<KvIterator> iterate() const = 0;
};

class KvEngine {
 public:
  virtual ~KvEngine() = default;

  virtual base::Result<std::optional<std::string>> get(std::string_view key) const = 0;
  virtual base::Status put(std::string_view key, std::string_view value,
                           WriteOptions options = {}) = 0;
  virtual base::Status del(std::string_view key, WriteOptions options = {}) = 0;
  // Applies every operation of `batch`, in order, atomically.
  virtual base::Status write(const WriteBatch& batch, WriteOptions options = {}) = 0;
  // Iterates the current state (a consistent view taken at this call).
  virtual std::unique_ptr<KvIterator> iterate() const = 0;
  virtual std::unique_ptr<KvSnapshot> snapshot() const = 0;
  // Makes every write so far durable (as if each had been written with sync).
  virtual base::Status sync() = 0;
};

}  // namespace synod::node
