#!/usr/bin/env bash
# A one-node cluster under misbehaving clients: garbage, oversized lengths,
# a slow-loris and too many connections get errors or are dropped, and a
# well-behaved client at the same time sees no failure. Then
# redis-benchmark -t set,get,incr runs with zero errors.
set -u
synod="$1"
# Below the ephemeral range (32768+), where outgoing connections take ports.
port=$(( 17000 + ($$ % 2000) * 3 ))
source "$(dirname "$0")/lib.sh"
fail() { echo "FAIL: $*"; tail -20 "$work/node.log"; exit 1; }

"$synod" start --id 1 --data-dir "$work/data" --client-addr "127.0.0.1:$port" \
  --peer-addr "127.0.0.1:$(( port + 1 ))" --admin-addr "127.0.0.1:$(( port + 2 ))" \
  --initial-cluster "1=127.0.0.1:$(( port + 1 ))" \
  --incomplete-request-timeout-ms 1000 --max-clients 50 >"$work/node.log" 2>&1 &
pids+=($!)
disown $!
cli() { redis-cli -p "$port" "$@" 2>&1; }
for _ in $(seq 1 200); do [ "$(cli set ready 1)" = "OK" ] && break; sleep 0.05; done
[ "$(cli get ready)" = "1" ] || fail "the node did not start serving"

# Sends raw bytes on a fresh connection; prints what comes back (1 s).
raw() {
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf "$1" >&3
  timeout 1 cat <&3 2>/dev/null
  exec 3>&-
}
expect_reply() {  # expect_reply BYTES EXPECTED-SUBSTRING
  local got
  got="$(raw "$1" | tr -d '\r')"
  case "$got" in *"$2"*) ;; *) fail "sent $(printf '%q' "$1"), expected '$2', got '$got'" ;; esac
}

# A well-behaved client keeps working, on one connection, throughout.
(
  for n in $(seq 1 400); do echo "INCR steady"; sleep 0.01; done |
    redis-cli -p "$port" >"$work/steady.out" 2>&1
) &
steady=$!
sleep 0.2  # it holds its connection before the others arrive

expect_reply '*1\r\n$4\r\nPING\r\n' '+PONG'
expect_reply '*x\r\n' '-ERR Protocol error: invalid multibulk length'
expect_reply '*1\r\n$99999999999\r\n' '-ERR Protocol error: invalid bulk length'
expect_reply '*1\r\n$-7\r\n' '-ERR Protocol error: invalid bulk length'
expect_reply '*99999999999\r\n' '-ERR Protocol error: invalid multibulk length'
expect_reply '*2\r\n$3\r\nGET\r\n:1\r\n' "-ERR Protocol error: expected '\$', got ':'"
expect_reply 'SET "unbalanced\r\n' '-ERR Protocol error: unbalanced quotes in request'
expect_reply "$(head -c 70000 /dev/zero | tr '\0' 'a')" '-ERR Protocol error: too big inline request'
expect_reply 'NOSUCH a b\r\n' "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b'"
expect_reply '*1\r\n$3\r\nGET\r\n' "-ERR wrong number of arguments for 'get' command"
expect_reply '\x00\x01\x02\xff\r\n' '-ERR unknown command'

# A slow-loris: half a request, then nothing. It is disconnected after the
# incomplete-request timeout (1 s here) without an answer.
start=$(date +%s%N)
exec 4<>"/dev/tcp/127.0.0.1/$port"
printf '*2\r\n$3\r\nGET\r\n$5\r\nab' >&4
timeout 5 cat <&4 >"$work/loris.out"
held_ms=$(( ($(date +%s%N) - start) / 1000000 ))
exec 4>&-
[ "$held_ms" -lt 4000 ] || fail "a slow-loris was held for ${held_ms} ms"
[ ! -s "$work/loris.out" ] || fail "a slow-loris got an answer: $(cat "$work/loris.out")"

# The same, with the request cut exactly between two arguments.
start=$(date +%s%N)
exec 4<>"/dev/tcp/127.0.0.1/$port"
printf '*2\r\n$3\r\nGET\r\n' >&4
timeout 5 cat <&4 >"$work/loris.out"
held_ms=$(( ($(date +%s%N) - start) / 1000000 ))
exec 4>&-
[ "$held_ms" -lt 4000 ] || fail "a slow-loris cut between arguments was held for ${held_ms} ms"

# MGET of 100,000 keys: answered in full (the keys are looked up one after
# another without the stack growing per key).
mget_replies=$(redis-cli -p "$port" mget $(seq -f 'many%g' 1 100000) 2>&1 | wc -l)
[ "$mget_replies" = 100000 ] || fail "MGET of 100000 keys gave $mget_replies lines"

# Too many connections: beyond --max-clients 50 the server says so.
for i in $(seq 1 60); do exec {fd}<>"/dev/tcp/127.0.0.1/$port"; fds+=("$fd"); done
refused="$(timeout 1 redis-cli -p "$port" ping 2>&1)"
for fd in "${fds[@]}"; do exec {fd}>&-; done
case "$refused" in *"max number of clients reached"*) ;; *) fail "the 61st client got: $refused" ;; esac

wait "$steady"
[ "$(seq 1 400)" = "$(cat "$work/steady.out")" ] ||
  fail "the steady client saw: $(grep -vxE '[0-9]+' "$work/steady.out" | head -3)"
[ "$(cli get steady)" = "400" ] || fail "steady counter is $(cli get steady)"

# redis-benchmark completes with zero errors.
bench="$(timeout 120 redis-benchmark -p "$port" -t set,get,incr -n 20000 -c 50 -q 2>&1 | tr '\r' '\n')"
echo "$bench" | grep -E 'requests per second' | tail -3
echo "$bench" | grep -qiE 'error|ERR' && fail "redis-benchmark saw errors: $(echo "$bench" | grep -iE 'error|ERR' | head -3)"
[ "$(echo "$bench" | grep -c 'requests per second')" -ge 3 ] || fail "redis-benchmark did not finish: $bench"
[ "$(cli ping)" = "PONG" ] || fail "the node is not serving after all that"

# synod bench: a fixed number of mixed requests, reported as JSON.
result="$("$synod" bench --target "127.0.0.1:$port" -c 8 -P 4 -n 4000 --reads 50 --cas 10 \
  --distribution zipfian --keys 100 --json)" || fail "synod bench failed: $result"
echo "$result" | grep -q '"requests":4000' || fail "synod bench did not run 4000 requests: $result"
echo "$result" | grep -q '"errors":0' || fail "synod bench saw errors: $result"
echo ok
