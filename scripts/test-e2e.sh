#!/usr/bin/env bash
# Runs the end-to-end tests (tests/e2e.rs) one by one from an already built test binary and prints
# how long each took; the tests' own progress lines (eprintln) stay in the log. The backend is
# whatever the environment says: PRESSLUFT_TEST_POSTGRES_URL set = the server's state in PostgreSQL.
#
# Usage: scripts/test-e2e.sh E2E_TEST_BINARY LABEL [TEST_NAME...]   (default: every test)
# Env:   E2E_SKIP="NAME..."  tests not run here (listed as skipped; a split of the CI time budget)
#        E2E_LOCK=FILE  run each test under `flock -o FILE` (a shared test node: the lock is held
#                       for one test at a time, not for the whole run)
# Output: one line per test `e2e[LABEL] NAME: ok|FAILED in Ns`, then a summary line
#         `e2e[LABEL]: P passed, F failed, S skipped in Ns`. Exit status 1 when a test failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="$1"
label="$2"
shift 2
if [ "$#" -gt 0 ]; then
    tests=("$@")
else
    mapfile -t tests < <("$bin" --list --format terse 2>/dev/null | sed -n 's/: test$//p')
fi

passed=0
failed=0
failures=()
t0=$SECONDS
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
skipped=0
for t in "${tests[@]}"; do
    if [[ " ${E2E_SKIP:-} " == *" $t "* ]]; then
        echo "e2e[$label] $t: skipped (E2E_SKIP)"
        skipped=$((skipped + 1))
        continue
    fi
    echo "== e2e[$label] $t"
    lock=()
    [ -n "${E2E_LOCK:-}" ] && lock=(flock -o "$E2E_LOCK")
    # the duration is libtest's own ("finished in Ns"): without the wait for the lock
    "${lock[@]}" "$bin" --exact "$t" --nocapture --test-threads=1 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    took=$(sed -n 's/^test result: .*finished in \([0-9.]*\)s$/\1/p' "$out" | tail -1)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "e2e[$label] $t: ok in ${took:-?}s"
    else
        failed=$((failed + 1))
        failures+=("$t")
        echo "e2e[$label] $t: FAILED in ${took:-?}s"
    fi
done
echo "e2e[$label]: $passed passed, $failed failed, $skipped skipped in $((SECONDS - t0))s${failures[*]:+ (failed: ${failures[*]})}"
[ "$failed" -eq 0 ]
