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
echo "identical: $(wc -c <"$work/redis.out") bytes of replies to $(grep -vc '^#' "$here/redis_diff/cases.txt") case lines and 7 built requests"
