// The parent's side of a crash child (crash_child.h has the child's): a
// process started as `<binary> <dir> <report_fd> [--flag N]... --parent-pid P`
// that writes whole report lines to a pipe until the test SIGKILLs it.
//
// Whatever happens to the test (a failed ASSERT returns early), the
// destructor kills and reaps the child, so no writer is left behind writing
// to a directory about to be removed.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace synod::test_support {

class ChildProcess {
 public:
  using Clock = std::chrono::steady_clock;
  // Called with each report line, without its newline.
  using LineFn = std::function<void(std::string_view line)>;

  // How long a killed child may take to close its end of the pipe.
  static constexpr int kExitWaitMs = 10'000;

  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    kill_and_reap();
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  // Starts `binary` on `dir` with `flags`; false (with `error` set) if it
  // could not be started.
  bool start(const std::string& binary, const std::string& dir,
             const std::vector<std::string>& flags, std::string* error) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      *error = std::string("pipe2: ") + std::strerror(errno);
      return false;
    }
    std::vector<std::string> args = {binary, dir, std::to_string(fds[1])};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back("--parent-pid");
    args.push_back(std::to_string(::getpid()));
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) {
      *error = std::string("fork: ") + std::strerror(errno);
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::fcntl(fds[1], F_SETFD, 0);  // the report end survives exec
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    read_fd_ = fds[0];
    return true;
  }

  // Reads report lines until `deadline` (or, with no deadline, until end of
  // file), passing each whole line to `on_line`; a partial line waits for the
  // next call. Returns true at end of file: the child is gone.
  bool read_lines(const LineFn& on_line, const Clock::time_point* deadline) {
    char buffer[4096];
    while (true) {
      int timeout_ms = kExitWaitMs;
      if (deadline != nullptr) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
        if (left.count() <= 0) return false;
        timeout_ms = static_cast<int>(left.count());
      }
      pollfd poll_fd{read_fd_, POLLIN, 0};
      const int ready = ::poll(&poll_fd, 1, timeout_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;  // deadline reached (or a child that will not die)
      const ssize_t got = ::read(read_fd_, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return true;
      partial_.append(buffer, static_cast<size_t>(got));
      size_t start = 0;
      for (size_t end; (end = partial_.find('\n', start)) != std::string::npos; start = end + 1) {
        on_line(std::string_view(partial_).substr(start, end - start));
      }
      partial_.erase(0, start);
    }
  }

  // SIGKILL (if it still runs) and waitpid; returns the wait status, or -1
  // when there was no child.
  int kill_and_reap() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
  std::string partial_;  // the start of a line whose newline has not come yet
};

inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace synod::test_support
