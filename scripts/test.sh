#!/usr/bin/env bash
# Runs every test: the dashboard's build and checks, formatting and lints, the Rust workspace (unit,
# property, API, hostile-input, CLI, runtime, migration tests) on SQLite and on PostgreSQL, as root
# the end-to-end tests on this machine (real SSH, Ansible, nginx, PHP-FPM, MariaDB) on both
# backends, the dashboard's browser tests and the Ansible checks (syntax, lint, end-to-end).
#
# The test binaries are built once (scripts/test-rust.sh build) and run for each backend; the
# database-backed tests on PostgreSQL and the static Ansible checks run in the background of the
# end-to-end tests on SQLite (those mostly wait for the node). As root a local PostgreSQL cluster is started for them
# (scripts/postgres-test-cluster.sh); otherwise PRESSLUFT_TEST_POSTGRES_URL names a server to use
# (`postgres://user:password@host:port`, a role with CREATEDB), else PostgreSQL is skipped.
# PRESSLUFT_E2E_POSTGRES_SKIP="NAME...": end-to-end tests not repeated on PostgreSQL (default: none).
# Logs: target/test-*.log. Exit status 1 when any test failed (every test stage still runs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"

t0=$SECONDS
stage() { printf '\n== [%dm%02ds] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*"; }
status=0
summary=()
root=0
[ "$(id -u)" -eq 0 ] && root=1

# The dashboard first: the binary embeds web/dist, so it is built before cargo builds anything.
stage "web: build (type check, bundle, size budget)"
scripts/build-web.sh
stage "web: the generated API types match openapi/openapi.yaml; every error code has a message"
(cd web && npm run --silent check)

stage "cargo fmt --check"
cargo fmt --all --check

stage "cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "cargo test: build every test binary once (and run the doc tests)"
scripts/test-rust.sh build
e2e_bin="$(scripts/test-rust.sh e2e-binary)"
# As root on a machine with the node stack, the end-to-end tests drive this machine for real.
[ "$root" = 1 ] && export PRESSLUFT_E2E=1

pg_url="${PRESSLUFT_TEST_POSTGRES_URL:-}"
unset PRESSLUFT_TEST_POSTGRES_URL
if [ "$root" = 1 ] && [ -z "$pg_url" ]; then
    stage "PostgreSQL: start the local cluster"
    pg_url="$(scripts/postgres-test-cluster.sh)"
    trap 'scripts/postgres-test-cluster.sh --drop' EXIT
fi

stage "Rust tests on SQLite (every test binary but the end-to-end one)"
scripts/test-rust.sh run sqlite 2>&1 | tee "$target/test-sqlite.log" || status=1
summary+=("$(tail -1 "$target/test-sqlite.log")")

pg_pid=
if [ -n "$pg_url" ]; then
    stage "Rust tests on PostgreSQL: started in the background (log: $target/test-postgres.log)"
    PRESSLUFT_TEST_POSTGRES_URL="$pg_url" scripts/test-rust.sh run postgres \
        >"$target/test-postgres.log" 2>&1 &
    pg_pid=$!
else
    summary+=("rust[postgres]: NOT RUN (not root and no PRESSLUFT_TEST_POSTGRES_URL)")
fi

static_pid=
if [ -x ansible/tests/run.sh ]; then
    stage "ansible: syntax, lint, unit tests: started in the background (log: $target/test-ansible-static.log)"
    ansible/tests/run.sh --static >"$target/test-ansible-static.log" 2>&1 &
    static_pid=$!
fi

stage "end-to-end tests on SQLite (scripts/test-e2e.sh)"
scripts/test-e2e.sh "$e2e_bin" sqlite 2>&1 | tee "$target/test-e2e-sqlite.log" || status=1
summary+=("$(tail -1 "$target/test-e2e-sqlite.log")")

if [ -n "$pg_pid" ]; then
    stage "Rust tests on PostgreSQL: the background run's log"
    wait "$pg_pid" || status=1
    cat "$target/test-postgres.log"
    summary+=("$(tail -1 "$target/test-postgres.log")")

    stage "end-to-end tests on PostgreSQL (the server's state in PostgreSQL)"
    PRESSLUFT_TEST_POSTGRES_URL="$pg_url" E2E_SKIP="${PRESSLUFT_E2E_POSTGRES_SKIP:-}" \
        scripts/test-e2e.sh "$e2e_bin" postgres 2>&1 \
        | tee "$target/test-e2e-postgres.log" || status=1
    summary+=("$(tail -1 "$target/test-e2e-postgres.log")")
fi

if [ "$root" = 1 ]; then
    stage "dashboard: browser tests (headless Chromium against the debug binary and this node)"
    if flock -o /tmp/pressluft-node.lock scripts/test-browser.sh; then
        summary+=("browser: ok")
    else
        summary+=("browser: FAILED")
        status=1
    fi
fi

if [ -n "$static_pid" ]; then
    stage "ansible: syntax, lint, unit tests: the background run's log"
    if wait "$static_pid"; then
        summary+=("ansible static: ok")
    else
        summary+=("ansible static: FAILED")
        status=1
    fi
    cat "$target/test-ansible-static.log"
    stage "ansible: end-to-end over SSH (playbooks directly, idempotency)"
    if ansible/tests/run.sh --e2e; then
        summary+=("ansible e2e: ok")
    else
        summary+=("ansible e2e: FAILED")
        status=1
    fi
fi

stage "summary"
printf '%s\n' "${summary[@]}"
exit "$status"
