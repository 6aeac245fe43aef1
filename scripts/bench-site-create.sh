#!/usr/bin/env bash
# Runs the site creation benchmark (issue 4): the real `pressluft serve` release binary provisions
# this machine as its local node over SSH, creates sites through the API and prints POST → Ready
# split into queue pickup, playbook and health check, next to scripts/bench-shell-site.sh (the
# same node steps by hand) measured in the same run, and the queue pickup p50/p99 of a burst.
# Needs root, sshd and the node stack (scripts/install-prereqs.sh); removes what it creates.
# Knobs: BENCH_SITES (5), BENCH_BURST (30), BENCH_SERVER_LOG. Set CARGO_TARGET_DIR to keep the
# release build apart from debug builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
exec cargo bench --bench site_create "$@"
