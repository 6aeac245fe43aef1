#!/usr/bin/env bash
# The Rust test suite, built once and run from the built test binaries (so a second backend costs
# no second build): unit, property, API, hostile-input, CLI, runtime, migration ... tests.
#
# Usage: scripts/test-rust.sh build        `cargo test --workspace --no-run` (and the doc tests);
#                                          lists the test binaries in $TARGET/test-binaries.tsv
#        scripts/test-rust.sh run LABEL    every test binary but the end-to-end one (tests/e2e.rs:
#                                          scripts/test-e2e.sh); with PRESSLUFT_TEST_POSTGRES_URL
#                                          set, every binary that opens a database (the others
#                                          below, pure or database-free, ran already)
#        scripts/test-rust.sh e2e-binary   prints the path of the end-to-end test binary
# Output of `run`: libtest's, one line `== LABEL NAME: ok|FAILED in Ns` per binary and a summary
# `rust[LABEL]: P passed, F failed (N binaries) in Ns`. Exit status 1 when a test failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
list="$target/test-binaries.tsv"

# Test binaries that open no database: reconcilers (pure functions), runner (the Ansible runner
# against a stand-in ansible-playbook), search_replace (the PHP helper), and the binaries without
# tests (the pressluft bin, the migration lib: migrate/test is the migration test).
no_database=(reconcilers/lib runner/test search_replace/test pressluft/bin migration/lib)

case "${1:-}" in
build)
    set -e
    mkdir -p "$target"
    cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
        | python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"] + "/" + m["target"]["kind"][0],
              os.path.dirname(m["manifest_path"]), m["executable"], sep="\t")
' >"$list.tmp"
    mv "$list.tmp" "$list"
    echo "$(wc -l <"$list") test binaries (list: $list)"
    # No doc test opens a database: they run once, here.
    cargo test --workspace --locked --doc -q
    ;;
e2e-binary)
    awk -F'\t' '$1 == "e2e/test" {print $3}' "$list"
    ;;
run)
    label="${2:?usage: scripts/test-rust.sh run LABEL}"
    [ -f "$list" ] || { echo "test-rust.sh: $list is missing: run scripts/test-rust.sh build" >&2; exit 2; }
    passed=0 failed=0 bins=0 t0=$SECONDS
    failures=()
    out="$(mktemp)"
    trap 'rm -f "$out"' EXIT
    while IFS=$'\t' read -r name dir bin; do
        [ "$name" = e2e/test ] && continue
        if [ -n "${PRESSLUFT_TEST_POSTGRES_URL:-}" ] && [[ " ${no_database[*]} " == *" $name "* ]]; then
            continue
        fi
        s=$SECONDS
        (cd "$dir" && "$bin") 2>&1 | tee "$out"
        rc=${PIPESTATUS[0]}
        bins=$((bins + 1))
        p=$(awk '/^test result:/ {print $4}' "$out" | tail -1)
        f=$(awk '/^test result:/ {print $6}' "$out" | tail -1)
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0}))
        if [ "$rc" -ne 0 ]; then
            failures+=("$name")
            [ "${f:-0}" -gt 0 ] || failed=$((failed + 1)) # a crash before the summary line
        fi
        echo "== $label $name: $([ "$rc" -eq 0 ] && echo ok || echo FAILED) in $((SECONDS - s))s"
    done <"$list"
    echo "rust[$label]: $passed passed, $failed failed ($bins binaries) in $((SECONDS - t0))s${failures[*]:+ (failed: ${failures[*]})}"
    [ "${#failures[@]}" -eq 0 ]
    ;;
*)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac
