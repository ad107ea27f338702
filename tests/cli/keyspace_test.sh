#!/usr/bin/env bash
# Keyspaces across three `synod start` processes: create (ctl and RESP),
# route by the longest "K:" prefix, serve keys whose partitions live on a
# subset of the nodes (forwarded), refuse keys of a keyspace still being
# created, survive a SIGKILL and restart, and drop. Every process started
# here is stopped by its PID.
set -u
synod="$1"
base=$(( 17000 + ($$ % 450) * 15 ))
nodes=3
source "$(dirname "$0")/lib.sh"

for i in 1 2 3; do start_node "$i"; done
wait_for 10 sh -c "redis-cli -p $(client_port 1) set probe 1 | grep -q OK" || fail "no write succeeded within 10 s"

# A key written before its keyspace exists stays in default (the README says so).
[ "$(cli 1 set app:early before)" = "OK" ] || fail "SET app:early"

# Create through ctl: it returns once the keyspace is active.
out="$(ctl 1 keyspace create app --partitions 8 --replicas 2)" || fail "keyspace create app: $out"
echo "$out" | grep -q "8 partitions x 2 replicas.*active" || fail "create printed: $out"
# Every partition has two replicas on two different nodes.
ctl 2 keyspace describe app --json >"$work/app.json" || fail "describe app: $(cat "$work/app.json")"
python3 - "$work/app.json" <<'PY' || fail "app's placement is wrong: $(cat "$work/app.json")"
import json, sys
k = json.load(open(sys.argv[1]))
assert k["state"] == "active" and len(k["placement"]) == 8, k
for p in k["placement"]:
    assert len(p["replicas"]) == 2 and len(set(p["replicas"])) == 2, p
loads = {}
for p in k["placement"]:
    for r in p["replicas"]: loads[r] = loads.get(r, 0) + 1
assert sorted(loads) == [1, 2, 3] and max(loads.values()) - min(loads.values()) <= 1, loads
PY

# Create through RESP without waiting: its keys are refused until it is active.
[ "$(cli 2 keyspace create app:users partitions 4 replicas 1)" != "" ] || fail "KEYSPACE CREATE"
# (Node 3 refuses once it has applied the creation; until then it may still
# route the key to app, which is as correct: a read, so nothing is written.)
wait_for 3 sh -c "redis-cli -p $(client_port 3) get app:users:1 | grep -q \"TRYAGAIN keyspace 'app:users' is being created\"" ||
  fail "a key of a keyspace being created was not refused: $(cli 3 get app:users:1)"
wait_for 15 sh -c "$synod ctl --admin 127.0.0.1:$(admin_port 3) keyspace describe app:users --json | grep -q '\"active\"'" ||
  fail "app:users did not become active: $(ctl 3 keyspace describe app:users)"

# Writes through every node, reads through every node; with one replica per
# partition most of these are forwarded to the node that holds it.
for n in $(seq 1 30); do
  node=$(( n % 3 + 1 ))
  [ "$(cli "$node" set "app:k$n" "v$n")" = "OK" ] || fail "SET app:k$n through node $node: $(cli "$node" set "app:k$n" "v$n")"
  [ "$(cli "$node" set "app:users:u$n" "u$n")" = "OK" ] || fail "SET app:users:u$n through node $node"
done
for i in 1 2 3; do
  for n in 1 7 30; do
    [ "$(cli "$i" get "app:k$n")" = "v$n" ] || fail "GET app:k$n through node $i: $(cli "$i" get "app:k$n")"
    [ "$(cli "$i" get "app:users:u$n")" = "u$n" ] || fail "GET app:users:u$n through node $i"
  done
done
[ "$(cli 3 incr app:users:count)" = "1" ] || fail "INCR in a one-replica keyspace"
[ -z "$(cli 2 get app:early)" ] || fail "app:early now belongs to app, where it was never written"

# The longest defined prefix wins.
ctl 1 locate app:users:u1 | grep -q "^keyspace app:users," || fail "locate app:users:u1: $(ctl 1 locate app:users:u1)"
ctl 1 locate app:orders:1 | grep -q "^keyspace app," || fail "locate app:orders:1: $(ctl 1 locate app:orders:1)"
ctl 1 locate plainkey | grep -q "^keyspace default," || fail "locate plainkey: $(ctl 1 locate plainkey)"
[ "$(cli 1 keyspace list | tr '\n' ' ')" = "app app:users default " ] || fail "KEYSPACE LIST: $(cli 1 keyspace list)"

# Bad requests get a clear error and change nothing.
refused() {  # refused TEXT CTL-ARGS...: the ctl call fails and says TEXT
  local text=$1 out; shift
  out="$(ctl 1 "$@")" && fail "ctl $* succeeded"
  echo "$out" | grep -q "$text" || fail "ctl $* said: $out"
}
refused "already exists" keyspace create app --partitions 8
refused "power of two" keyspace create other --partitions 48
refused "more than the 3 members" keyspace create other --replicas 5
refused "not served yet" keyspace create other --mode eventual
refused "cannot be dropped" keyspace drop default
refused "404" keyspace describe nothere
[ "$(cli 1 keyspace list | wc -l)" = "3" ] || fail "a refused request changed the catalog: $(cli 1 keyspace list)"

# SIGKILL a node and restart it: it holds keys with a ':' until its catalog
# is confirmed, then serves every keyspace again.
kill -9 "${pids[2]}"
while kill -0 "${pids[2]}" 2>/dev/null; do sleep 0.02; done
start_node 2
wait_for 15 sh -c "[ \"\$(redis-cli -p $(client_port 2) get app:k7)\" = v7 ]" ||
  fail "restarted node 2 does not serve app:k7: $(cli 2 get app:k7)"
for n in 1 2 3 29 30; do
  [ "$(cli 2 get "app:users:u$n")" = "u$n" ] || fail "GET app:users:u$n through restarted node 2"
done

# A keyspace created while a node is down: when it comes back, its first
# answer for a key of that keyspace is the written value, never "absent"
# (it must not route by the catalog it had before it went down).
kill -9 "${pids[2]}"
while kill -0 "${pids[2]}" 2>/dev/null; do sleep 0.02; done
out="$(ctl 1 keyspace create late --partitions 2)" || fail "create late with node 2 down: $out"
[ "$(cli 1 set late:x written)" = "OK" ] || fail "SET late:x"
start_node 2
deadline=$(( $(date +%s) + 15 ))
while :; do
  got="$(cli 2 get late:x)"
  [ "$got" = "written" ] && break
  [ -z "$got" ] && fail "restarted node 2 read late:x as absent (routed by a stale catalog)"
  [ "$(date +%s)" -lt "$deadline" ] || fail "restarted node 2 never served late:x: $got"
  sleep 0.02
done

# Move a replica of app's partition 0 to the node that does not hold one:
# the new node catches up as a learner and is swapped in by joint
# consensus; every key stays readable through every node.
ctl 1 keyspace describe app --json >"$work/app.json" || fail "describe app: $(cat "$work/app.json")"
read -r from to < <(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["placement"][0]["replicas"]
print(p[0], ({1, 2, 3} - set(p)).pop())' "$work/app.json")
out="$(ctl 2 keyspace move app 0 "$from" "$from")" && fail "a move onto a node that holds the partition was accepted"
echo "$out" | grep -q "already holds" || fail "move onto a holder said: $out"
out="$(ctl 2 keyspace move app 0 "$from" "$to")" || fail "move app 0 $from -> $to: $out"
moved() {
  "$synod" ctl --admin "127.0.0.1:$(admin_port "$to")" keyspace describe app --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["placement"][0]
want = sorted(p["replicas"])
sys.exit(0 if sorted(p.get("voters", [])) == want and not p.get("learners") and not p.get("joint") else 1)'
}
wait_for 20 moved || fail "partition 0 did not move from node $from to node $to: $(ctl "$to" keyspace describe app)"
for i in 1 2 3; do
  wait_for 5 sh -c "! $synod ctl --admin 127.0.0.1:$(admin_port "$i") status | grep -q '^MOVES'" ||
    fail "node $i still shows a move in flight: $(ctl "$i" status | sed -n '/^MOVES/,$p')"
done
wait_for 10 sh -c "grep -q 'keyspace app partition 0: .*removing this replica' $work/node$from.log" ||
  fail "node $from did not remove its moved replica: $(grep 'app partition 0' "$work/node$from.log" | tail -3)"
# ctl status reports the placement: app's 8 partitions x 2 replicas.
line="$(ctl 1 status | grep '^app ')"
total=$(echo "$line" | grep -oE 'node [0-9]+: [0-9]+' | awk '{ s += $3 } END { print s }')
[ "$total" = 16 ] || fail "ctl status placement line for app: $line"
out="$(ctl 3 keyspace move app 0 "$to" "$from")" && fail "moving the replica back onto node $from was accepted"
echo "$out" | grep -q "held partition 0 of keyspace 'app' before" || fail "move back said: $out"
for n in $(seq 1 30); do
  i=$(( n % 3 + 1 ))
  [ "$(cli "$i" get "app:k$n")" = "v$n" ] || fail "after the move, GET app:k$n through node $i: $(cli "$i" get "app:k$n")"
done

# Drop: once gone its keys belong to the next shorter prefix (app).
out="$(ctl 3 keyspace drop app:users)" || fail "drop app:users: $out"
[ -z "$(cli 1 get app:users:u1)" ] || fail "app:users:u1 still reads after the drop"
[ "$(cli 1 keyspace list | tr '\n' ' ')" = "app default late " ] || fail "after the drop: $(cli 1 keyspace list)"
wait_for 5 sh -c "cat $work/node1.log $work/node2.log $work/node3.log | grep -c 'keyspace app:users partition .*: replica removed' | grep -qx 4" ||
  fail "the dropped keyspace's 4 replicas were not all removed: $(grep -h 'replica removed' "$work"/node*.log)"
[ "$(cli 2 get app:k30)" = "v30" ] || fail "app lost a key when app:users was dropped"
echo "PASS"
