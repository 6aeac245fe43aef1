#!/usr/bin/env bash
# Runs the API benchmark (issue 3): the real `pressluft serve` release binary on embedded SQLite
# with 10,000 sites; prints read/write throughput, p50/p99 latency and server RSS, each next to
# its target. Set CARGO_TARGET_DIR to keep the release build apart from debug builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
exec cargo bench --bench api
