#!/usr/bin/env bash
# Starts Pressluft on this machine: installs the node prerequisites when run as root (nginx,
# PHP-FPM, MariaDB, Redis, WordPress sources, sshd, an Ansible virtualenv), builds the binary and
# runs `pressluft serve` with embedded SQLite in the data directory, the host registered as the
# local node. Extra arguments go to `pressluft serve`. The service listens on 127.0.0.1:8080; once
# the local node is provisioned, its nginx serves the dashboard at http://<node-ip>/ (or
# https://<control_plane_domain>/ once that setting is set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

data_dir="${PRESSLUFT_DATA_DIR:-/var/lib/pressluft}"
if [ "$(id -u)" -eq 0 ]; then
    scripts/install-prereqs.sh --venv "$data_dir/ansible-venv"
else
    echo "start.sh: not root: skipping the node prerequisites (the local node will report what is missing)" >&2
    data_dir="${PRESSLUFT_DATA_DIR:-$HOME/.local/share/pressluft}"
fi
export PRESSLUFT_DATA_DIR="$data_dir"
# The dashboard (web/dist) is embedded in the binary: build it first.
scripts/build-web.sh
cargo build --release --locked
exec target/release/pressluft serve "$@"
