# Shared by the process tests: a scratch directory, and the processes a
# test starts (append their PIDs to `pids`), all stopped by PID on exit,
# continued first in case a test left one stopped.
work="$(mktemp -d)"
pids=()
stop_processes() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; [ -n "${KEEP_WORK:-}" ] && echo "kept $work"
}
trap stop_processes EXIT
