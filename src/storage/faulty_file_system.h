// An in-memory disk that misbehaves on request, for tests and the simulator.
//
// It keeps, per file, the bytes written and how many of them were synced, and
// per name whether its creation was made durable by `sync_dir`. A `crash()`
// then does what a power cut does to a real disk: unsynced bytes are lost
// (all of them, or all but a random prefix, possibly garbled at its end, which
// is a torn write), and files whose names were never synced disappear.
// Other faults: flip a bit anywhere, fail the next fsyncs, run out of space
// (an append that does not fit writes what fits, then fails with kNoSpace, as
// a real write(2) does).
//
// Deterministic: every random choice comes from the seed it was built with.
// Thread-safe (one mutex), so the WAL's writer thread can use it while a test
// inspects or damages it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "base/rng.h"
#include "storage/file_system.h"

namespace synod::storage {

struct CrashOptions {
  // Keep a random prefix of each file's unsynced tail instead of none of it.
  bool keep_some_unsynced = true;
  // Overwrite the end of a kept unsynced prefix with random bytes, sometimes.
  bool garble_torn_tail = true;
  // Files created since their directory was last synced vanish.
  bool lose_unsynced_names = true;
};

class FaultyFileSystem final : public FileSystem {
 public:
  explicit FaultyFileSystem(uint64_t seed = 1);
  ~FaultyFileSystem() override;

  base::Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                            bool create) override;
  base::Result<std::unique_ptr<ReadableFile>> open_readable(
      const std::string& path) const override;
  base::Result<std::vector<std::string>> list(const std::string& dir) const override;
  base::Status create_dirs(const std::string& dir) override;
  base::Status remove(const std::string& path) override;
  base::Status sync_dir(const std::string& dir) override;
  bool exists(const std::string& path) const override;

  // Faults. After `crash()`, handles opened before it fail every call.
  void crash(CrashOptions options = {});
  base::Status flip_bit(const std::string& path, uint64_t offset, int bit);
  // The next `count` syncs (file or directory) fail with kIo.
  void fail_next_syncs(int count);
  // Total bytes all files may hold; nullopt for no limit.
  void set_capacity_bytes(std::optional<uint64_t> capacity);

  // Introspection for tests.
  uint64_t used_bytes() const;
  uint64_t sync_count() const;
  base::Result<std::string> contents(const std::string& path) const;
  base::Result<uint64_t> synced_size(const std::string& path) const;
  // Replaces a file's bytes outright (all synced); creates it if missing.
  void overwrite(const std::string& path, std::string data);

  struct State;  // shared with open handles

 private:
  std::shared_ptr<State> state_;
};

}  // namespace synod::storage
