#include "storage/rocks_kv_engine.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/status.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <utility>

#include "base/assert.h"

namespace synod::storage {

namespace {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;
using node::kMaxKeyBytes;
using node::kMaxValueBytes;
using node::WriteBatch;

// RocksDB's informational log (the LOG files in the directory) rolls over on
// every open; these bound how much of it a node keeps.
constexpr size_t kInfoLogFilesKept = 16;
constexpr size_t kInfoLogFileBytesMax = 16u << 20;

rocksdb::Slice to_slice(std::string_view bytes) { return {bytes.data(), bytes.size()}; }
std::string_view to_view(const rocksdb::Slice& slice) { return {slice.data(), slice.size()}; }

Error to_error(const rocksdb::Status& status, std::string_view what) {
  Errc code = Errc::kIo;
  if (status.IsNoSpace()) {
    code = Errc::kNoSpace;
  } else if (status.IsCorruption()) {
    code = Errc::kCorruption;
  }
  return Error(code, "rocksdb " + std::string(what) + ": " + status.ToString());
}


// Counts a snapshot or iterator while it lives, so the engine can refuse to
// close under one. Declared first in its owner, so it is destroyed last,
// after the RocksDB objects it stands for.
class LiveView {
 public:
  explicit LiveView(std::atomic<int64_t>* live) : live_(live) { live_->fetch_add(1); }
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;
  ~LiveView() { live_->fetch_sub(1); }

 private:
  std::atomic<int64_t>* live_;
};

// A registered rocksdb::Snapshot, released when its last reader is gone.
using SharedSnapshot = std::shared_ptr<const rocksdb::Snapshot>;

class RocksIterator final : public node::KvIterator {
 public:
  RocksIterator(rocksdb::DB* db, SharedSnapshot snapshot, std::atomic<int64_t>* live)
      : live_(live), snapshot_(std::move(snapshot)) {
    rocksdb::ReadOptions read;
    // Null: RocksDB pins the current state for the iterator's life.
    read.snapshot = snapshot_.get();
    iterator_.reset(db->NewIterator(read));
  }

  void seek_to_first() override {
    iterator_->SeekToFirst();
    check_read_back();
  }
  void seek(std::string_view key) override {
    iterator_->Seek(to_slice(key));
    check_read_back();
  }
  bool valid() const override { return !corrupt_ && iterator_->Valid(); }
  void next() override {
    SYNOD_ASSERT(valid(), "next() on an iterator that is not positioned on a key");
    iterator_->Next();
    check_read_back();
  }
  std::string_view key() const override {
    SYNOD_ASSERT(valid(), "key() on an iterator that is not positioned on a key");
    return to_view(iterator_->key());
  }
  std::string_view value() const override {
    SYNOD_ASSERT(valid(), "value() on an iterator that is not positioned on a key");
    return to_view(iterator_->value());
  }
  Status status() const override {
    if (corrupt_) return *corrupt_;
    rocksdb::Status status = iterator_->status();
    if (!status.ok()) return to_error(status, "iterate");
    return Status::ok_status();
  }

 private:
  // The caps were checked when the data was written; a record over them now
  // was damaged on the way back, and the iteration stops there.
  void check_read_back() {
    corrupt_.reset();
    if (!iterator_->Valid()) return;
    const size_t key_bytes = iterator_->key().size();
    const size_t value_bytes = iterator_->value().size();
    if (key_bytes > kMaxKeyBytes || value_bytes > kMaxValueBytes) {
      corrupt_ = Error(Errc::kCorruption, "rocksdb iterate: read back a record of " +
                                              std::to_string(key_bytes) + "+" +
                                              std::to_string(value_bytes) +
                                              " bytes, over the caps");
    }
  }

  LiveView live_;
  // Destroyed after the iterator that reads it.
  SharedSnapshot snapshot_;
  std::unique_ptr<rocksdb::Iterator> iterator_;
  std::optional<Error> corrupt_;
};

class RocksSnapshot final : public node::KvSnapshot {
 public:
  RocksSnapshot(rocksdb::DB* db, std::atomic<int64_t>* live)
      : live_(live),
        live_count_(live),
        db_(db),
        snapshot_(db->GetSnapshot(),
                  [db](const rocksdb::Snapshot* snapshot) { db->ReleaseSnapshot(snapshot); }) {
    SYNOD_ASSERT(snapshot_ != nullptr, "RocksDB returned no snapshot");
  }

  Result<std::optional<std::string>> get(std::string_view key) const override {
    rocksdb::ReadOptions read;
    read.snapshot = snapshot_.get();
    std::string value;
    rocksdb::Status status = db_->Get(read, to_slice(key), &value);
    if (status.IsNotFound()) return std::optional<std::string>();
    if (!status.ok()) return to_error(status, "snapshot get");
    if (value.size() > kMaxValueBytes) {
      return Error(Errc::kCorruption, "rocksdb snapshot get: read back a value of " +
                                          std::to_string(value.size()) + " bytes, over the cap");
    }
    return std::optional<std::string>(std::move(value));
  }

  // The iterator shares the snapshot, so it may outlive this object.
  std::unique_ptr<node::KvIterator> iterate() const override {
    return std::make_unique<RocksIterator>(db_, snapshot_, live_count_);
  }

 private:
  LiveView live_;
  std::atomic<int64_t>* live_count_;
  rocksdb::DB* db_;
  SharedSnapshot snapshot_;
};

}  // namespace

struct RocksKvEngine::Impl {
  // Null once closed.
  std::unique_ptr<rocksdb::DB> db;
  // Snapshots and iterators alive; the database may close only at zero.
  std::atomic<int64_t> live_views{0};

  rocksdb::DB* open_db() const {
    SYNOD_ASSERT(db != nullptr, "a RocksKvEngine used after close()");
    return db.get();
  }
};

Status RocksKvOptions::validate() const {
  if (block_cache_bytes < (1u << 20)) {
    return Error(Errc::kInvalidArgument, "block_cache_bytes is under 1 MiB");
  }
  if (write_buffer_bytes < (64u << 10)) {
    return Error(Errc::kInvalidArgument, "write_buffer_bytes is under 64 KiB");
  }
  if (background_jobs_max < 1 || background_jobs_max > 64) {
    return Error(Errc::kInvalidArgument, "background_jobs_max is not in 1..64");
  }
  return Status::ok_status();
}

Result<std::unique_ptr<RocksKvEngine>> RocksKvEngine::open(const std::string& dir,
                                                           RocksKvOptions options) {
  if (Status s = options.validate(); !s.ok()) return s.error();

  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.write_buffer_size = options.write_buffer_bytes;
  db_options.max_background_jobs = options.background_jobs_max;
  // Replays the WAL up to its first damaged record and stops: the state is
  // then a prefix of the batches written, never one with a hole in it.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  db_options.paranoid_checks = true;
  db_options.keep_log_file_num = kInfoLogFilesKept;
  db_options.max_log_file_size = kInfoLogFileBytesMax;
  // Every applied write looks up keys that are usually absent (a key's
  // expiry record, a new key): bloom filters answer those from memory
  // instead of searching each memtable and SST file.
  db_options.memtable_prefix_bloom_size_ratio = 0.05;
  db_options.memtable_whole_key_filtering = true;
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table_options.whole_key_filtering = true;
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));

  rocksdb::DB* db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(db_options, dir, &db);
  if (!status.ok()) return to_error(status, "open " + dir);
  SYNOD_ASSERT(db != nullptr, "RocksDB opened without a database");

  auto impl = std::make_unique<Impl>();
  impl->db.reset(db);
  return std::unique_ptr<RocksKvEngine>(new RocksKvEngine(dir, std::move(impl)));
}

RocksKvEngine::RocksKvEngine(std::string dir, std::unique_ptr<Impl> impl)
    : dir_(std::move(dir)), impl_(std::move(impl)) {}

RocksKvEngine::~RocksKvEngine() {
  if (impl_->db == nullptr) return;
  // Nothing acknowledged can be lost here: Close does not sync, so what was
  // durable before stays durable whatever it reports. A caller who wants the
  // status calls close() first.
  (void)close();
}

Status RocksKvEngine::close() {
  rocksdb::DB* db = impl_->open_db();
  SYNOD_ASSERT(impl_->live_views.load() == 0,
               "a snapshot or iterator outlives its RocksKvEngine (it would dangle)");
  rocksdb::Status status = db->Close();
  impl_->db.reset();
  if (!status.ok()) return to_error(status, "close " + dir_);
  return Status::ok_status();
}

Result<std::optional<std::string>> RocksKvEngine::get(std::string_view key) const {
  std::string value;
  rocksdb::Status status = impl_->open_db()->Get(rocksdb::ReadOptions(), to_slice(key), &value);
  if (status.IsNotFound()) return std::optional<std::string>();
  if (!status.ok()) return to_error(status, "get");
  // Checked where it was written; a value over the cap now was damaged.
  if (value.size() > kMaxValueBytes) {
    return Error(Errc::kCorruption, "rocksdb get: read back a value of " +
                                        std::to_string(value.size()) + " bytes, over the cap");
  }
  return std::optional<std::string>(std::move(value));
}

Status RocksKvEngine::put(std::string_view key, std::string_view value,
                          node::WriteOptions options) {
  WriteBatch batch;
  batch.put(key, value);
  return write(batch, options);
}

Status RocksKvEngine::del(std::string_view key, node::WriteOptions options) {
  WriteBatch batch;
  batch.del(key);
  return write(batch, options);
}

Status RocksKvEngine::write(const WriteBatch& batch, node::WriteOptions options) {
  if (Status s = node::check_batch_limits(batch); !s.ok()) return s;
  rocksdb::DB* db = impl_->open_db();
  rocksdb::WriteBatch rocks_batch;
  for (const WriteBatch::Op& op : batch.ops()) {
    rocksdb::Status status;
    switch (op.kind) {
      case WriteBatch::Kind::kPut:
        status = rocks_batch.Put(to_slice(op.key), to_slice(op.value));
        break;
      case WriteBatch::Kind::kDelete:
        status = rocks_batch.Delete(to_slice(op.key));
        break;
      case WriteBatch::Kind::kDeleteRange:
        // An empty or inverted range deletes nothing; RocksDB is not asked
        // to judge one.
        if (op.key < op.value) {
          status = rocks_batch.DeleteRange(to_slice(op.key), to_slice(op.value));
        }
        break;
    }
    if (!status.ok()) return to_error(status, "batch");
  }
  // A sync write of nothing still promises that everything before it is
  // durable.
  if (rocks_batch.Count() == 0) return options.sync ? sync() : Status::ok_status();
  rocksdb::WriteOptions write_options;
  write_options.sync = options.sync;
  rocksdb::Status status = db->Write(write_options, &rocks_batch);
  if (!status.ok()) return to_error(status, "write");
  return Status::ok_status();
}

std::unique_ptr<node::KvIterator> RocksKvEngine::iterate() const {
  return std::make_unique<RocksIterator>(impl_->open_db(), nullptr, &impl_->live_views);
}

std::unique_ptr<node::KvSnapshot> RocksKvEngine::snapshot() const {
  return std::make_unique<RocksSnapshot>(impl_->open_db(), &impl_->live_views);
}

Status RocksKvEngine::sync() {
  // With manual_wal_flush off (the default) every write has already reached
  // the WAL file; this fsyncs it (and any older WAL file not yet synced).
  rocksdb::Status status = impl_->open_db()->FlushWAL(/*sync=*/true);
  if (!status.ok()) return to_error(status, "sync");
  return Status::ok_status();
}

}  // namespace synod::storage
