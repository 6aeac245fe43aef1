#!/usr/bin/env bash
# Scale benchmark (issue 11 item 3): converge time of 10, 30 and 60 sites with 1 and 2 replicas on
# PostgreSQL, and the per-site cost. Starts Debian's PostgreSQL cluster and the pressluft_test role
# with scripts/postgres-test-cluster.sh, as the test command does (needs root), then runs
# scripts/bench-scale.py (see there for the options; --real runs the real playbooks on this
# machine: take the node lock,
# `flock -o /tmp/pressluft-node.lock scripts/bench-scale.sh --real`).
# BIN selects the binary (default target/release/pressluft, else target/debug/pressluft).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# the cluster and the pressluft_test role the tests use (its URL ends in :PORT)
url="$(scripts/postgres-test-cluster.sh)"
port="${url##*:}"

if [ -z "${BIN:-}" ]; then
    target=${CARGO_TARGET_DIR:-target}
    BIN=$target/release/pressluft
    [ -x "$BIN" ] || BIN=$target/debug/pressluft
fi
export BIN PG_PORT=$port
exec python3 scripts/bench-scale.py "$@"
