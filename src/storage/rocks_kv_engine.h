// The production KvEngine, on RocksDB (one database per node directory).
//
// It keeps every guarantee of node::KvEngine (kv_engine.h) through RocksDB's
// own machinery, which must stay switched on:
//   - atomic batches: each `write` is one rocksdb::WriteBatch, which is one
//     record in RocksDB's write-ahead log, replayed whole or not at all;
//   - durability: a write with `sync` fsyncs the WAL before it returns, and
//     `sync()` fsyncs it for every write so far; the WAL is never disabled.
//     Recovery is point-in-time: it replays the log up to the first damaged
//     record and no further, so a crash keeps a prefix of the batches;
//   - snapshots are rocksdb::Snapshots; an iterator from `iterate()` reads
//     the implicit snapshot RocksDB takes when it is created;
//   - order is RocksDB's default bytewise comparator, which is memcmp.
// The size caps are checked here, before RocksDB sees the batch.
//
// Lifetime: every snapshot and iterator must be destroyed before the engine
// (RocksDB frees what they point into when it closes). The destructor stops
// the process if one is still alive, rather than leave it dangling. An
// iterator from a snapshot may outlive the snapshot.
//
// Thread-safe, as RocksDB is: any thread may read and write.
//
// RocksDB's headers stay in rocks_kv_engine.cc: they are slow to compile and
// nothing outside this file needs them.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "node/kv_engine.h"

namespace synod::storage {

struct RocksKvOptions {
  // Whether `open` may create a database in an empty or missing directory
  // (the last path component only). A node that finds no database where it
  // expects one should not silently start empty.
  bool create_if_missing = true;
  // Uncompressed blocks cached for reads; at least 1 MiB.
  size_t block_cache_bytes = 64u << 20;
  // One memtable's size before it is flushed to an SST file; at least 64 KiB.
  size_t write_buffer_bytes = 16u << 20;
  // RocksDB's flush and compaction jobs running at once; 1 to 64.
  int background_jobs_max = 2;

  // kInvalidArgument naming the first field out of bounds.
  base::Status validate() const;
};

class RocksKvEngine final : public node::KvEngine {
 public:
  // Opens (recovering from the WAL) or creates the database in `dir`.
  // kInvalidArgument for bad options; kCorruption, kNoSpace or kIo (with
  // RocksDB's message) when RocksDB cannot open it, e.g. because another
  // process holds the directory's lock.
  static base::Result<std::unique_ptr<RocksKvEngine>> open(const std::string& dir,
                                                           RocksKvOptions options = {});

  RocksKvEngine(const RocksKvEngine&) = delete;
  RocksKvEngine& operator=(const RocksKvEngine&) = delete;
  // Closes the database if `close` was not called. It does not sync: call
  // `sync()` first to make unsynced writes durable.
  ~RocksKvEngine() override;

  base::Result<std::optional<std::string>> get(std::string_view key) const override;
  base::Status put(std::string_view key, std::string_view value,
                   node::WriteOptions options = {}) override;
  base::Status del(std::string_view key, node::WriteOptions options = {}) override;
  base::Status write(const node::WriteBatch& batch, node::WriteOptions options = {}) override;
  std::unique_ptr<node::KvIterator> iterate() const override;
  std::unique_ptr<node::KvSnapshot> snapshot() const override;
  base::Status sync() override;

  // Closes the database and reports how that went; every other call is
  // refused afterwards (it stops the process). Like the destructor, it
  // requires that no snapshot or iterator is alive, and it does not sync.
  base::Status close();

  const std::string& dir() const { return dir_; }

 private:
  struct Impl;
  RocksKvEngine(std::string dir, std::unique_ptr<Impl> impl);

  std::string dir_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace synod::storage
