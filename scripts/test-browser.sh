#!/usr/bin/env bash
# The dashboard's browser tests: starts the built debug binary (`pressluft serve`, fresh data dir,
# a free port, the real local node provisioned over SSH), waits for /api/healthz, runs the
# Playwright suite in Debian's headless Chromium against it (web/tests/), then stops the server.
# The suite deletes the site it created. Screenshots: target/screenshots/*.png.
#
# Run after scripts/build-web.sh and `cargo build`, as root, under the node lock:
#   flock -o /tmp/pressluft-node.lock scripts/test-browser.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$(pwd)"

bin="${PRESSLUFT_BIN:-${CARGO_TARGET_DIR:-target}/debug/pressluft}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
    echo "test-browser.sh: $bin is missing: run cargo build first" >&2
    exit 1
fi
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
    echo "test-browser.sh: $chromium is missing (apt-get install -y chromium)" >&2
    exit 1
fi
if [ ! -f web/dist/index.html ] || [ ! -d web/node_modules/@playwright/test ]; then
    echo "test-browser.sh: the dashboard is not built: run scripts/build-web.sh first" >&2
    exit 1
fi

tmp="$(mktemp -d /tmp/pressluft-browser.XXXXXX)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PRESSLUFT_URL="http://127.0.0.1:$port"
export PRESSLUFT_ADMIN_EMAIL="browser@example.com"
PRESSLUFT_ADMIN_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
export PRESSLUFT_ADMIN_PASSWORD
venv_playbook=/var/lib/pressluft/ansible-venv/bin/ansible-playbook
if [ -x "$venv_playbook" ] && [ -z "${PRESSLUFT_ANSIBLE_PLAYBOOK:-}" ]; then
    export PRESSLUFT_ANSIBLE_PLAYBOOK="$venv_playbook"
fi

echo "== browser tests: pressluft serve on $PRESSLUFT_URL (data $tmp/data, log $tmp/server.log)"
PRESSLUFT_RETRY_BACKOFF_BASE=1s PRESSLUFT_RETRY_BACKOFF_MAX=5s PRESSLUFT_MAX_ATTEMPTS=2 \
    PRESSLUFT_PROBE_INTERVAL=2s PRESSLUFT_LOG=info \
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$tmp/data" >"$tmp/server.log" 2>&1 &
server=$!
status=1
cleanup() {
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 1 400); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        echo "== browser tests failed; the server log's end ($tmp/server.log kept):"
        tail -n 60 "$tmp/server.log" || true
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

for _ in $(seq 1 600); do
    if curl -fsS "$PRESSLUFT_URL/api/healthz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then echo "test-browser.sh: the server exited" >&2; exit 1; fi
    sleep 0.2
done
curl -fsS "$PRESSLUFT_URL/api/healthz" >/dev/null
# The dashboard is served by the binary itself, with its policy.
curl -fsS -D - -o /dev/null "$PRESSLUFT_URL/sites" | grep -qi '^content-security-policy:' \
    || { echo "test-browser.sh: / has no Content-Security-Policy" >&2; exit 1; }

mkdir -p target/screenshots
cd web
CHROMIUM="$chromium" npx playwright test "$@"
status=0
echo "== browser tests passed; screenshots in target/screenshots/"
