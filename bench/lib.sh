# Shared by the bench scripts: start servers in the background, remember
# their PIDs, and stop exactly those (by PID) when the script exits.
#   source "$here/lib.sh"; bench_init; bench_start LOG COMMAND...
bench_init() {
  work="$(mktemp -d)"
  pids=()
  trap bench_stop_all EXIT
}
bench_stop_all() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
  rm -rf "$work"
}
# bench_kill PID: SIGKILLs a server started here, waits until it is gone and
# forgets it (so bench_stop_all never signals a PID the kernel reused).
bench_kill() {
  local victim=$1 kept=() pid
  kill -9 "$victim" 2>/dev/null
  while kill -0 "$victim" 2>/dev/null; do sleep 0.02; done
  for pid in "${pids[@]}"; do [ "$pid" = "$victim" ] || kept+=("$pid"); done
  pids=("${kept[@]}")
}
# bench_start LOG COMMAND...: runs COMMAND with its output in LOG; its PID is
# in $last_pid (and in $pids, for bench_stop_all).
bench_start() {
  local log=$1; shift
  "$@" >>"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
  disown "$last_pid"
}
# synod_node SYNOD WORK BASE ID CLUSTER [ARGS...]: one `synod start` of a
# cluster whose node ID listens on BASE+10*ID (clients), +1 (peers), +2
# (admin), with ARGS added; its data stays in WORK/synodID across restarts.
# The array `node_prefix` (e.g. a taskset pinning) goes before the command.
node_prefix=()
synod_node() {
  local synod=$1 dir=$2 base=$3 id=$4 cluster=$5; shift 5
  bench_start "$dir/synod$id.log" "${node_prefix[@]}" "$synod" start --id "$id" \
    --data-dir "$dir/synod$id" --client-addr "127.0.0.1:$((base + id * 10))" \
    --peer-addr "127.0.0.1:$((base + id * 10 + 1))" \
    --admin-addr "127.0.0.1:$((base + id * 10 + 2))" --initial-cluster "$cluster" "$@"
}
synod_cluster_spec() {  # BASE: the --initial-cluster of the 3 nodes
  local base=$1
  echo "1=127.0.0.1:$((base + 11)),2=127.0.0.1:$((base + 21)),3=127.0.0.1:$((base + 31))"
}
