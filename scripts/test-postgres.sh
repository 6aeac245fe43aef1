#!/usr/bin/env bash
# The whole Rust test suite on PostgreSQL alone (scripts/test.sh runs it on both backends): every
# test binary that opens a database (every migration, every API rule, the runtime's leases and
# wake-ups, the CLI's real binary with --database-url, the unit tests of the key stores) and, with
# PRESSLUFT_E2E=1, the end-to-end tests with the server's state in PostgreSQL (one database per
# data directory, so a restarted server finds it). Starts Debian's PostgreSQL cluster when it is
# down (scripts/postgres-test-cluster.sh: a role of its own, pressluft_test, over TCP; each test
# creates a fresh database, dropped afterwards). Needs root and the postgresql package
# (scripts/install-prereqs.sh installs it).
#
# Usage: scripts/test-postgres.sh [E2E_TEST_NAME...]   (names: only those end-to-end tests)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"

PRESSLUFT_TEST_POSTGRES_URL="$(scripts/postgres-test-cluster.sh)"
export PRESSLUFT_TEST_POSTGRES_URL
trap 'scripts/postgres-test-cluster.sh --drop' EXIT

scripts/test-rust.sh build
status=0
scripts/test-rust.sh run postgres 2>&1 | tee "$target/test-postgres.log" || status=1
if [ "${PRESSLUFT_E2E:-}" = 1 ]; then
    scripts/test-e2e.sh "$(scripts/test-rust.sh e2e-binary)" postgres "$@" 2>&1 \
        | tee "$target/test-e2e-postgres.log" || status=1
fi
echo
tail -1 "$target/test-postgres.log"
[ "${PRESSLUFT_E2E:-}" = 1 ] && tail -1 "$target/test-e2e-postgres.log"
exit "$status"
