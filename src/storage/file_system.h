// The file operations the storage layer needs, behind an interface.
//
// Production uses `PosixFileSystem`. Tests and the simulator use
// `FaultyFileSystem`, an in-memory disk that remembers which bytes were
// synced, so a simulated crash can lose the rest, tear the last write, flip
// bits, fail an fsync or run out of space. Everything above this interface
// (the WAL, the raft storage) is therefore testable against every disk fault
// without a real disk misbehaving.
//
// Durability contract (what POSIX gives and all implementations model):
//   - bytes appended to a file are durable only after `WritableFile::sync()`
//     returns ok;
//   - a new file's name is durable only after `sync_dir()` of its directory;
//   - a failed `sync()` leaves the file's unsynced bytes in an unknown state;
//     callers must not retry and trust it (see docs/storage.md, "fsyncgate").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace synod::storage {

// A file opened for appending. Not thread-safe: one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `data`, or fails. On kNoSpace some prefix of `data` may
  // have reached the file: the caller truncates back to `size()` as it was.
  virtual base::Status append(std::string_view data) = 0;
  // fdatasync: file contents durable.
  virtual base::Status sync() = 0;
  // Cuts the file to `size` bytes (used to drop a torn or failed tail).
  virtual base::Status truncate(uint64_t size) = 0;
  virtual uint64_t size() const = 0;
};

// A file opened for reading at offsets. Safe to use from one thread while
// another appends to the same file through a WritableFile.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `count` bytes at `offset` into `out` (replacing its content).
  // Fewer bytes come back only at the end of the file.
  virtual base::Status read_at(uint64_t offset, size_t count, std::string* out) const = 0;
  virtual base::Result<uint64_t> size() const = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Opens `path` for appending at its end, creating it if `create` is set.
  virtual base::Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                                    bool create) = 0;
  virtual base::Result<std::unique_ptr<ReadableFile>> open_readable(
      const std::string& path) const = 0;
  // Names (not paths) of the plain files in `dir`, sorted.
  virtual base::Result<std::vector<std::string>> list(const std::string& dir) const = 0;
  virtual base::Status create_dirs(const std::string& dir) = 0;
  virtual base::Status remove(const std::string& path) = 0;
  // Makes creations and removals in `dir` durable.
  virtual base::Status sync_dir(const std::string& dir) = 0;
  virtual bool exists(const std::string& path) const = 0;
};

// "dir/name", without doubling a slash.
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace synod::storage
