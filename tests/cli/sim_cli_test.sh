#!/usr/bin/env bash
# `synod sim` as scripts use it: the digest line, exit statuses, replay,
# the bug and fault lists, and the files a failing seed leaves behind.
set -u
synod="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out="$("$synod" sim --seed 5 --duration 3)" || fail "seed 5 should pass: $out"
digest="$(grep -E '^digest: [0-9a-f]{16}$' <<<"$out")" || fail "no digest line in: $out"
again="$("$synod" sim --seed 5 --duration 3 | grep '^digest: ')"
[ "$digest" = "$again" ] || fail "same seed, different digests: $digest vs $again"
other="$("$synod" sim --seed 6 --duration 3 | grep '^digest: ')"
[ "$digest" != "$other" ] || fail "seeds 5 and 6 gave the same digest"

# --replay prints the whole trace and the same digest.
replay="$("$synod" sim --replay 5 --duration 3)" || fail "replay of a passing seed failed"
grep -q "^$digest\$" <<<"$replay" || fail "replay digest differs"
[ "$(grep -c ' leads term ' <<<"$replay")" -ge 1 ] || fail "the trace shows no election"

# Many seeds: one summary line and a digest.
many="$("$synod" sim --seeds 3 --duration 2)" || fail "seeds 1..3 should pass: $many"
grep -q '^3 seeds (1..3): 3 passed, 0 failed' <<<"$many" || fail "no summary in: $many"
grep -qE '^digest: [0-9a-f]{16}$' <<<"$many" || fail "no digest for many seeds"

# An injected bug is caught: exit status 1, the violation, the saved files.
"$synod" sim --list-bugs | grep -q '^skip-dedupe ' || fail "--list-bugs lacks skip-dedupe"
"$synod" sim --list-faults | grep -q '^partition ' || fail "--list-faults lacks partition"
bug="$("$synod" sim --seed 1 --duration 5 --bug skip-dedupe --out "$work/failures")"
status=$?
[ $status -eq 1 ] || fail "an injected bug should exit 1, got $status: $bug"
grep -q 'seed 1: FAIL: linearizability' <<<"$bug" || fail "no violation reported: $bug"
[ -s "$work/failures/seed-1/history.jsonl" ] || fail "no history saved"
[ -s "$work/failures/seed-1/trace.txt" ] || fail "no trace saved"
grep -q 'replay: synod sim --replay 1 ' <<<"$bug" || fail "no replay command printed"

# synod check judges a saved history on its own: the bug's is refused...
"$synod" check "$work/failures/seed-1/history.jsonl" >"$work/check" 2>&1
[ $? -eq 1 ] || fail "check of a violating history should exit 1: $(cat "$work/check")"
grep -q '^violation: ' "$work/check" || fail "check did not say violation: $(cat "$work/check")"
# ...a passing seed's is accepted, and a malformed file is an error.
"$synod" sim --seed 5 --duration 3 --history "$work/ok.jsonl" >/dev/null || fail "seed 5 with --history"
"$synod" check "$work/ok.jsonl" | grep -q '^ok: ' || fail "check of a passing history"
echo '{"id":1}' >"$work/broken.jsonl"
"$synod" check "$work/broken.jsonl" >"$work/check" 2>&1
[ $? -eq 2 ] || fail "a malformed history should exit 2"

# Bad arguments: exit status 2 and a reason.
"$synod" sim --faults meteor >"$work/bad" 2>&1
[ $? -eq 2 ] || fail "an unknown fault should exit 2"
grep -q 'unknown fault "meteor"' "$work/bad" || fail "unknown fault not explained: $(cat "$work/bad")"
"$synod" sim --bug nonsense >"$work/bad" 2>&1
[ $? -eq 2 ] || fail "an unknown bug should exit 2"
echo "ok"
