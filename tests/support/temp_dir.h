// A directory of a test's own under $TMPDIR (or /tmp), removed with all that
// is in it when the TempDir goes. Tests that touch a real disk use one each,
// so runs in parallel never share files and nothing is left behind.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace synod::test_support {

class TempDir {
 public:
  // Creates $TMPDIR/<name>-XXXXXX. On failure path() is empty and errno says
  // why; callers ASSERT on it before use.
  explicit TempDir(std::string_view name) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" +
                          std::string(name) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace synod::test_support
