#include "storage/mem_kv_engine.h"

#include <utility>

#include "base/assert.h"

namespace synod::storage {

namespace {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;
using node::WriteBatch;


class MemIterator final : public node::KvIterator {
 public:
  explicit MemIterator(std::shared_ptr<const MemKvEngine::Map> map)
      : map_(std::move(map)), at_(map_->end()) {}

  void seek_to_first() override { at_ = map_->begin(); }
  void seek(std::string_view key) override { at_ = map_->lower_bound(key); }
  bool valid() const override { return at_ != map_->end(); }
  void next() override {
    SYNOD_ASSERT(valid(), "next() on an iterator that is not positioned on a key");
    ++at_;
  }
  std::string_view key() const override {
    SYNOD_ASSERT(valid(), "key() on an iterator that is not positioned on a key");
    return at_->first;
  }
  std::string_view value() const override {
    SYNOD_ASSERT(valid(), "value() on an iterator that is not positioned on a key");
    return at_->second;
  }
  Status status() const override { return Status::ok_status(); }

 private:
  // Shared, never written again: the engine copies before its next write.
  std::shared_ptr<const MemKvEngine::Map> map_;
  MemKvEngine::Map::const_iterator at_;
};

class MemSnapshot final : public node::KvSnapshot {
 public:
  explicit MemSnapshot(std::shared_ptr<const MemKvEngine::Map> map) : map_(std::move(map)) {}

  Result<std::optional<std::string>> get(std::string_view key) const override {
    auto it = map_->find(key);
    if (it == map_->end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  std::unique_ptr<node::KvIterator> iterate() const override {
    return std::make_unique<MemIterator>(map_);
  }

 private:
  std::shared_ptr<const MemKvEngine::Map> map_;
};

}  // namespace

MemKvEngine::MemKvEngine() : map_(std::make_shared<Map>()) {}

Result<std::optional<std::string>> MemKvEngine::get(std::string_view key) const {
  auto it = map_->find(key);
  if (it == map_->end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Status MemKvEngine::put(std::string_view key, std::string_view value, node::WriteOptions options) {
  if (Status s = node::check_key_size(key, "key"); !s.ok()) return s;
  if (Status s = node::check_value_size(value); !s.ok()) return s;
  Undo undo;
  apply_put(key, value, undo);
  finish_write(std::move(undo), options);
  return Status::ok_status();
}

Status MemKvEngine::del(std::string_view key, node::WriteOptions options) {
  if (Status s = node::check_key_size(key, "key"); !s.ok()) return s;
  Undo undo;
  apply_delete(key, undo);
  finish_write(std::move(undo), options);
  return Status::ok_status();
}

Status MemKvEngine::write(const WriteBatch& batch, node::WriteOptions options) {
  if (Status s = node::check_batch_limits(batch); !s.ok()) return s;
  Undo undo;
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.kind) {
      case WriteBatch::Kind::kPut: apply_put(op.key, op.value, undo); break;
      case WriteBatch::Kind::kDelete: apply_delete(op.key, undo); break;
      case WriteBatch::Kind::kDeleteRange: apply_delete_range(op.key, op.value, undo); break;
    }
  }
  finish_write(std::move(undo), options);
  return Status::ok_status();
}

std::unique_ptr<node::KvIterator> MemKvEngine::iterate() const {
  return std::make_unique<MemIterator>(map_);
}

std::unique_ptr<node::KvSnapshot> MemKvEngine::snapshot() const {
  return std::make_unique<MemSnapshot>(map_);
}

Status MemKvEngine::sync() {
  unsynced_.clear();
  return Status::ok_status();
}

void MemKvEngine::crash_keeping(size_t unsynced_batches_kept) {
  SYNOD_ASSERT(unsynced_batches_kept <= unsynced_.size(),
               "a crash cannot keep more batches than were written since the last sync");
  // Newest first: each undo restores the values its own batch found, which
  // are only right once every later batch has been undone.
  while (unsynced_.size() > unsynced_batches_kept) {
    undo(unsynced_.back());
    unsynced_.pop_back();
  }
  // What a crash leaves is what the disk held; a second crash keeps it.
  unsynced_.clear();
}

MemKvEngine::Map& MemKvEngine::mutable_map() {
  // Single-threaded, so the count cannot rise between this check and the
  // write: a snapshot or iterator sharing the map keeps seeing its old view.
  if (map_.use_count() > 1) map_ = std::make_shared<Map>(*map_);
  return *map_;
}

void MemKvEngine::apply_put(std::string_view key, std::string_view value, Undo& undo) {
  Map& map = mutable_map();
  auto it = map.find(key);
  if (it == map.end()) {
    undo.push_back({std::string(key), std::nullopt});
    map.emplace(std::string(key), std::string(value));
    return;
  }
  undo.push_back({std::string(key), std::move(it->second)});
  it->second.assign(value);
}

void MemKvEngine::apply_delete(std::string_view key, Undo& undo) {
  // Look first: deleting an absent key must not copy a shared map.
  if (map_->find(key) == map_->end()) return;
  Map& map = mutable_map();
  auto it = map.find(key);
  undo.push_back({it->first, std::move(it->second)});
  map.erase(it);
}

void MemKvEngine::apply_delete_range(std::string_view begin, std::string_view end, Undo& undo) {
  // An empty or inverted range deletes nothing, as in RocksDB.
  if (begin >= end) return;
  if (map_->lower_bound(begin) == map_->lower_bound(end)) return;
  Map& map = mutable_map();
  auto first = map.lower_bound(begin);
  auto last = map.lower_bound(end);
  for (auto it = first; it != last; ++it) undo.push_back({it->first, std::move(it->second)});
  map.erase(first, last);
}

void MemKvEngine::finish_write(Undo undo, node::WriteOptions options) {
  // A sync write makes every earlier write durable too: the disk keeps a
  // prefix, and this batch ends it.
  if (options.sync) {
    unsynced_.clear();
    return;
  }
  unsynced_.push_back(std::move(undo));
}

void MemKvEngine::undo(const Undo& undo) {
  Map& map = mutable_map();
  for (auto prior = undo.rbegin(); prior != undo.rend(); ++prior) {
    if (prior->value.has_value()) {
      map.insert_or_assign(prior->key, *prior->value);
    } else {
      map.erase(prior->key);
    }
  }
}

}  // namespace synod::storage
