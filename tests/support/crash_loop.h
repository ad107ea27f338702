// The parent's loop around a crash child (crash_child.h): start it on a
// directory, let it run for a seeded while, SIGKILL it, collect everything it
// reported; the test then checks the directory it left, and starts the next
// run on the same directory. wal_crash_test.cc and kv_crash_test.cc are built
// on this; what each checks after a kill is their own.
//
// Each loop reads two knobs from the environment, an iteration count and a
// seed. Everything random follows from the seed: when each run is killed and
// the --seed each child gets. Failures say how to run the loop again.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/rng.h"
#include "support/child_process.h"
#include "support/numbers.h"
#include "support/temp_dir.h"

namespace synod::test_support {

struct CrashLoopOptions {
  const char* iterations_env;  // e.g. "SYNOD_WAL_CRASH_ITERATIONS"
  uint64_t iterations_default;
  const char* seed_env;  // e.g. "SYNOD_WAL_CRASH_SEED"; the seed defaults to 1
  std::string_view temp_dir_name;
  // Most runs are killed mid-stream, 20 ms to this long after the start.
  uint64_t kill_delay_us_max;
};

class CrashLoop {
 public:
  explicit CrashLoop(const CrashLoopOptions& options)
      : options_(options),
        iterations_(env_number(options.iterations_env, options.iterations_default)),
        seed_(env_number(options.seed_env, 1)),
        rng_(seed_),
        temp_(options.temp_dir_name) {}

  uint64_t iterations() const { return iterations_; }
  uint64_t seed() const { return seed_; }
  // For SCOPED_TRACE: "reproduce with <seed_env>=S <iterations_env>=N".
  std::string reproduce() const {
    return "reproduce with " + std::string(options_.seed_env) + "=" + std::to_string(seed_) +
           " " + options_.iterations_env + "=" + std::to_string(iterations_);
  }
  // The loop's own directory, removed with the loop; empty if it could not
  // be made (errno says why).
  const std::string& temp_dir() const { return temp_.path(); }

  // One run: starts `binary` on `dir` with `flags` and a --seed of its own,
  // SIGKILLs it after a seeded delay, and passes every line it reported, to
  // the last, to `on_line`. Fails the test fatally (call it under
  // ASSERT_NO_FATAL_FAILURE) when the child cannot be started, ends by
  // itself, or does not close its pipe once killed.
  void run_until_killed(const std::string& binary, const std::string& dir,
                        std::vector<std::string> flags, const ChildProcess::LineFn& on_line) {
    const std::chrono::microseconds run_for = kill_delay();
    flags.push_back("--seed");
    flags.push_back(std::to_string(rng_.next() >> 1));

    ChildProcess child;
    std::string error;
    ASSERT_TRUE(child.start(binary, dir, flags, &error)) << error;
    const ChildProcess::Clock::time_point deadline = ChildProcess::Clock::now() + run_for;
    const bool ended_early = child.read_lines(on_line, &deadline);
    const int wait_status = child.kill_and_reap();
    // Everything the child wrote before it died is still in the pipe.
    if (!ended_early) {
      ASSERT_TRUE(child.read_lines(on_line, nullptr))
          << "the killed child's report pipe did not close";
    }
    ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
        << "the child ended by itself (" << describe_wait_status(wait_status)
        << "); its stderr above says why";
  }

 private:
  // Mostly mid-stream; one time in five right at start-up, to land inside
  // recovery, opening the store or the first batches.
  std::chrono::microseconds kill_delay() {
    const bool early = rng_.chance(1, 5);
    return std::chrono::microseconds(early ? rng_.uniform(5'000)
                                           : rng_.between(20'000, options_.kill_delay_us_max));
  }

  CrashLoopOptions options_;
  uint64_t iterations_;
  uint64_t seed_;
  base::Rng rng_;
  TempDir temp_;
};

// Problems, one a line, the first 20 of them: for a failure message.
inline std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size() && i < 20; ++i) out += "\n  " + lines[i];
  if (lines.size() > 20) out += "\n  ... " + std::to_string(lines.size() - 20) + " more";
  return out;
}

}  // namespace synod::test_support
