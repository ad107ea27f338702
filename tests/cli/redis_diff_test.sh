#!/usr/bin/env bash
# Differential compatibility: the same command scripts go to Debian's
# redis-server and to a Synod node in the same run, and the raw replies are
# compared byte for byte. Cases: tests/cli/redis_diff/cases.txt, plus huge
# and empty values built here. Intended differences are in the README
# ("Differences from Redis") and are not in the cases.
set -u
synod="$1"
here="$(cd "$(dirname "$0")" && pwd)"
port=$(( 12000 + ($$ % 1500) * 3 ))   # below the ephemeral range
redis_port=$(( port + 4500 ))
source "$(dirname "$0")/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }

command -v redis-server >/dev/null || fail "redis-server is missing (scripts/bootstrap installs it)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!); disown $!
"$synod" start --id 1 --data-dir "$work/synod" --client-addr "127.0.0.1:$port" \
  --peer-addr "127.0.0.1:$(( port + 1 ))" --admin-addr "127.0.0.1:$(( port + 2 ))" \
  --initial-cluster "1=127.0.0.1:$(( port + 1 ))" >"$work/synod.log" 2>&1 &
pids+=($!); disown $!
for p in "$port" "$redis_port"; do
  for _ in $(seq 1 200); do [ "$(redis-cli -p "$p" set ready 1 2>/dev/null)" = "OK" ] && break; sleep 0.05; done
done

# The requests: every case line as an inline command, then huge and empty
# values as multibulk, then QUIT so the server closes and we read to EOF.
{
  grep -v '^#' "$here/redis_diff/cases.txt" | grep -v '^$' | sed 's/$/\r/'
  big=$(head -c 300000 /dev/zero | tr '\0' 'x')
  printf '*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n' "${#big}" "$big"
  printf '*2\r\n$6\r\nSTRLEN\r\n$3\r\nbig\r\n'
  printf '*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n'
  printf '*3\r\n$6\r\nAPPEND\r\n$3\r\nbig\r\n$0\r\n\r\n'
  printf '*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\nempty\r\n'
  printf '*2\r\n$3\r\nGET\r\n$0\r\n\r\n'
  printf '*1\r\n$4\r\nQUIT\r\n'
} >"$work/requests"

ask() {  # ask PORT: the raw replies to the requests
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  cat "$work/requests" >&3
  timeout 20 cat <&3
  exec 3>&-
}
ask "$redis_port" >"$work/redis.out" || fail "cannot talk to redis-server"
ask "$port" >"$work/synod.out" || fail "cannot talk to synod"
[ -s "$work/redis.out" ] || fail "redis-server answered nothing"
if ! cmp -s "$work/redis.out" "$work/synod.out"; then
  # Show the first differing reply with the command that caused it.
  diff -a <(tr -d '\r' <"$work/redis.out" | cut -c1-200) <(tr -d '\r' <"$work/synod.out" | cut -c1-200) | head -20
  fail "replies differ from redis-server's (above: < redis, > synod)"
fi
# Expiry over time: keys set with a short TTL, then read after it passed.
printf 'SET t1 v PX 300\r\nSET t2 v PX 300\r\nSET t2 w KEEPTTL\r\nSET t3 v PX 300\r\nSET t3 w\r\nSET t4 5 PX 300\r\nINCR t4\r\nSET t5 v PX 300\r\nAPPEND t5 x\r\nSET t6 v PX 300\r\nDEL t6\r\nSET t6 new\r\nQUIT\r\n' >"$work/requests"
ask "$redis_port" >"$work/redis1.out"; ask "$port" >"$work/synod1.out"
sleep 0.8
printf 'GET t1\r\nEXISTS t1\r\nGET t2\r\nGET t3\r\nGET t4\r\nINCR t4\r\nGET t5\r\nGET t6\r\nSET t1 again NX\r\nGETDEL t5\r\nQUIT\r\n' >"$work/requests"
ask "$redis_port" >"$work/redis2.out"; ask "$port" >"$work/synod2.out"
for phase in 1 2; do
  if ! cmp -s "$work/redis$phase.out" "$work/synod$phase.out"; then
    diff -a <(tr -d '\r' <"$work/redis$phase.out") <(tr -d '\r' <"$work/synod$phase.out") | head -20
    fail "expiry phase $phase differs from redis-server (< redis, > synod)"
  fi
done
# synod bench drives redis-server too (the comparison runs the same tool).
"$synod" bench --target "127.0.0.1:$redis_port" -c 4 -n 1000 --reads 50 --json | grep -q '"errors":0' ||
  fail "synod bench against redis-server"
echo "identical: $(wc -c <"$work/redis.out") bytes of replies to $(grep -vc '^#' "$here/redis_diff/cases.txt") case lines and 7 built requests"
