// The child's side of a crash loop (child_process.h has the parent's): a
// process started as
//
//   <program> <dir> <report_fd> [--flag N]... [--seed N] [--parent-pid N]
//
// that works on <dir> until its parent SIGKILLs it, reporting progress to
// <report_fd>. Each report line goes out in one write() well under PIPE_BUF
// bytes, so a kill never leaves half a line.
//
// It exits by itself only when something is wrong, through die(): the
// message goes to stderr and the exit code says which kind (ChildExit).
// It also dies with its parent (PR_SET_PDEATHSIG), so a crashed test leaves
// no writer behind.
#pragma once

#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "support/numbers.h"

namespace synod::test_support {

enum class ChildExit : int {
  kRecoveryFailed = 2,  // opening, recovering or loading <dir> failed or found it wrong
  kWorkFailed = 3,      // writing, applying or reporting failed, or answered wrongly
  kBadArguments = 64,
};

// One `--name N` flag: `value` holds its default and receives N, which must
// lie in [min, max].
struct NumberFlag {
  std::string_view name;
  uint64_t* value;
  uint64_t min = 0;
  uint64_t max = std::numeric_limits<uint64_t>::max();
};

class CrashChild {
 public:
  // Parses the command line (dying with ChildExit::kBadArguments on anything
  // unknown or out of bounds), then ties this process's life to its
  // parent's. `program` names it in messages.
  CrashChild(std::string_view program, int argc, char** argv,
             std::initializer_list<NumberFlag> flags)
      : program_(program) {
    parse(argc, argv, flags);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // The parent may have died before prctl: then nothing would kill us.
    if (parent_pid_ != 0 && static_cast<uint64_t>(::getppid()) != parent_pid_) {
      die(ChildExit::kWorkFailed, "parent is gone");
    }
  }

  const std::string& dir() const { return dir_; }
  uint64_t seed() const { return seed_; }

  [[noreturn]] void die(ChildExit code, const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n", program_.c_str(), message.c_str());
    std::fflush(stderr);
    std::_Exit(static_cast<int>(code));
  }

  // Writes "<kind> <index>\n", or "<kind> <index> <extra>\n"; safe from any
  // thread, since each line is one write().
  void report(char kind, uint64_t index, std::optional<uint64_t> extra = std::nullopt) const {
    char line[64];
    const int length =
        extra.has_value()
            ? std::snprintf(line, sizeof line, "%c %llu %llu\n", kind,
                            static_cast<unsigned long long>(index),
                            static_cast<unsigned long long>(*extra))
            : std::snprintf(line, sizeof line, "%c %llu\n", kind,
                            static_cast<unsigned long long>(index));
    while (true) {
      const ssize_t written = ::write(report_fd_, line, static_cast<size_t>(length));
      if (written == length) return;
      if (written < 0 && errno == EINTR) continue;
      die(ChildExit::kWorkFailed,
          "cannot write to the report pipe: " + std::string(std::strerror(errno)));
    }
  }

 private:
  void parse(int argc, char** argv, std::initializer_list<NumberFlag> flags) {
    if (argc < 3) {
      die(ChildExit::kBadArguments, "usage: " + program_ + " <dir> <report_fd> [--option N]...");
    }
    dir_ = argv[1];
    uint64_t fd = 0;
    if (!parse_number(argv[2], &fd) || fd > 1 << 20) {
      die(ChildExit::kBadArguments, "bad report fd: " + std::string(argv[2]));
    }
    report_fd_ = static_cast<int>(fd);
    for (int i = 3; i < argc; i += 2) {
      const std::string_view name = argv[i];
      uint64_t value = 0;
      if (i + 1 >= argc || !parse_number(argv[i + 1], &value)) {
        die(ChildExit::kBadArguments, "option " + std::string(name) + " needs a number");
      }
      if (name == "--seed") {
        seed_ = value;
      } else if (name == "--parent-pid") {
        parent_pid_ = value;
      } else {
        set_flag(flags, name, value);
      }
    }
  }

  void set_flag(std::initializer_list<NumberFlag> flags, std::string_view name,
                uint64_t value) const {
    for (const NumberFlag& flag : flags) {
      if (flag.name != name) continue;
      if (value < flag.min || value > flag.max) die(ChildExit::kBadArguments, bounds(flag));
      *flag.value = value;
      return;
    }
    die(ChildExit::kBadArguments, "unknown option " + std::string(name));
  }

  static std::string bounds(const NumberFlag& flag) {
    const std::string name(flag.name);
    if (flag.max == std::numeric_limits<uint64_t>::max()) {
      return name + " must be at least " + std::to_string(flag.min);
    }
    if (flag.min == 0) return name + " must be at most " + std::to_string(flag.max);
    return name + " must be in " + std::to_string(flag.min) + ".." + std::to_string(flag.max);
  }

  std::string program_;
  std::string dir_;
  int report_fd_ = -1;
  uint64_t seed_ = 1;
  uint64_t parent_pid_ = 0;
};

}  // namespace synod::test_support
