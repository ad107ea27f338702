# Shared by the process tests: a scratch directory, and the processes a
# test starts (append their PIDs to `pids`), all stopped by PID on exit,
# continued first in case a test left one stopped. A test sets `synod`,
# `base` (its first port) and `nodes` (how many) before sourcing this.
work="$(mktemp -d)"
pids=()
stop_processes() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -9 "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; [ -n "${KEEP_WORK:-}" ] && echo "kept $work"
}
trap stop_processes EXIT

# Node i listens on base + 3i (clients), + 1 (peers), + 2 (admin).
client_port() { echo $(( base + $1 * 3 )); }
peer_port() { echo $(( base + $1 * 3 + 1 )); }
admin_port() { echo $(( base + $1 * 3 + 2 )); }
cluster=""
for i in $(seq 1 "${nodes:-0}"); do cluster+="${cluster:+,}$i=127.0.0.1:$(peer_port "$i")"; done
# Extra flags for every node (a test may set it before starting nodes).
node_flags=()
start_node() {
  "$synod" start --id "$1" --data-dir "$work/data$1" --client-addr "127.0.0.1:$(client_port "$1")" \
    --peer-addr "127.0.0.1:$(peer_port "$1")" --admin-addr "127.0.0.1:$(admin_port "$1")" \
    --initial-cluster "$cluster" "${node_flags[@]}" >>"$work/node$1.log" 2>&1 &
  pids[$1]=$!
  disown "${pids[$1]}"
}
cli() { local node=$1; shift; redis-cli -p "$(client_port "$node")" "$@" 2>&1; }
ctl() { local node=$1; shift; "$synod" ctl --admin "127.0.0.1:$(admin_port "$node")" "$@" 2>&1; }
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
fail() {  # prints the reason and the tail of every node's log, and exits
  echo "FAIL: $*"
  for i in $(seq 1 "${nodes:-0}"); do echo "--- node $i log (tail)"; tail -"${log_lines:-15}" "$work/node$i.log"; done
  exit 1
}
