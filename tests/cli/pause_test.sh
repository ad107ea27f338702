#!/usr/bin/env bash
# Five `synod start` processes; SIGSTOP two: writes go on; SIGSTOP a third:
# a write answers -TRYAGAIN within the request deadline instead of hanging;
# SIGCONT: writes resume. Every process started here is stopped by its PID.
set -u
synod="$1"
# Below the ephemeral range (32768+), where outgoing connections take ports.
base=$(( 24000 + ($$ % 350) * 20 ))
nodes=5
log_lines=8
source "$(dirname "$0")/lib.sh"
for i in 1 2 3 4 5; do start_node "$i"; done
for _ in $(seq 1 200); do [ "$(cli 1 set ready 1)" = "OK" ] && break; sleep 0.05; done
[ "$(cli 1 get ready)" = "1" ] || fail "the cluster did not start serving"

# Node 1 keeps serving clients throughout; stop two others.
for i in 1 2 3 4 5; do kill -0 "${pids[$i]}" 2>/dev/null || fail "node $i is not running"; done
kill -STOP "${pids[4]}" "${pids[5]}"
for n in $(seq 1 20); do
  [ "$(cli 1 set "k$n" "$n")" = "OK" ] || fail "write $n with two nodes stopped: $(cli 1 set "k$n" "$n")"
done

# A third: no majority. A write must end with -TRYAGAIN by its deadline.
kill -STOP "${pids[3]}"
sleep 1.5  # if the leader was among them, let every node notice
start=$(date +%s%N)
reply="$(timeout 10 redis-cli -p "$(client_port 1)" set stuck 1 2>&1)"
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "without a majority: '$reply' after ${took_ms} ms"
case "$reply" in TRYAGAIN*) ;; *) fail "expected TRYAGAIN without a majority, got '$reply'" ;; esac
[ "$took_ms" -le 4000 ] || fail "the write took ${took_ms} ms to fail (deadline 3 s)"

# Continue them all: writes resume, and nothing acknowledged was lost.
kill -CONT "${pids[3]}" "${pids[4]}" "${pids[5]}"
for _ in $(seq 1 200); do [ "$(cli 1 set resumed 1)" = "OK" ] && break; sleep 0.05; done
[ "$(cli 2 get resumed)" = "1" ] || fail "writes did not resume"
for n in $(seq 1 20); do
  [ "$(cli 5 get "k$n")" = "$n" ] || fail "k$n lost: $(cli 5 get "k$n")"
done
echo ok
