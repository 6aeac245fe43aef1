#!/usr/bin/env bash
# Runs every test: formatting and lints, the Rust workspace (unit, property, API, hostile-input,
# CLI and migration tests), and the Ansible checks (syntax, lint, and the end-to-end run over real
# SSH against this machine when run as root with the node stack installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The dashboard first: the binary embeds web/dist, so it is built before cargo builds anything.
echo "== web: build (type check, bundle, size budget)"
scripts/build-web.sh
echo "== web: the generated API types match openapi/openapi.yaml; every error code has a message"
(cd web && npm run --silent check)

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy (deny warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test --workspace"
# As root on a machine with the node stack, the end-to-end test drives this machine for real.
if [ "$(id -u)" -eq 0 ]; then
    export PRESSLUFT_E2E=1
fi
mkdir -p target
cargo test --workspace --locked 2>&1 | tee target/cargo-test.log
# A summary line for CI readers.
grep -E '^test result:' target/cargo-test.log | awk '{p+=$4; f+=$6} END {print "rust: " p " passed, " f " failed"}'

if [ "$(id -u)" -eq 0 ]; then
    echo "== the API-level tests again on PostgreSQL"
    scripts/test-postgres.sh
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "== dashboard: browser tests (headless Chromium against the debug binary and this node)"
    flock -o /tmp/pressluft-node.lock scripts/test-browser.sh
fi

if [ -x ansible/tests/run.sh ]; then
    echo "== ansible: syntax, lint, end-to-end over SSH"
    ansible/tests/run.sh
fi
