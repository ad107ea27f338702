// FileSystem over POSIX calls (open, pwrite, fdatasync, ftruncate, fsync of
// the directory). Every error names the path and the call that failed.
#pragma once

#include "storage/file_system.h"

namespace synod::storage {

class PosixFileSystem final : public FileSystem {
 public:
  base::Result<std::unique_ptr<WritableFile>> open_writable(const std::string& path,
                                                            bool create) override;
  base::Result<std::unique_ptr<ReadableFile>> open_readable(
      const std::string& path) const override;
  base::Result<std::vector<std::string>> list(const std::string& dir) const override;
  base::Status create_dirs(const std::string& dir) override;
  base::Status remove(const std::string& path) override;
  base::Status sync_dir(const std::string& dir) override;
  bool exists(const std::string& path) const override;
};

}  // namespace synod::storage
