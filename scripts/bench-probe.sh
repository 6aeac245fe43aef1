#!/usr/bin/env bash
# Probe round benchmark (issue 5): 50 environments converged by Pressluft on this machine (the
# local node), then the wall and CPU time of every probe round during 10 resync rounds, printed
# as min / median / max; the run also checks that those resyncs launched no playbook.
# Needs root, sshd and the node stack (scripts/install-prereqs.sh); removes what it creates.
# Release build; set CARGO_TARGET_DIR to keep it apart from debug builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "bench-probe.sh: run as root" >&2; exit 1; }
export PRESSLUFT_E2E=1
exec cargo test --release --test e2e fifty_converged_environments_resync_without_playbooks -- --nocapture "$@"
