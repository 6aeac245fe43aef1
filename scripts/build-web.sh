#!/usr/bin/env bash
# Builds the dashboard (web/ → web/dist, which the binary embeds): `npm ci` when node_modules is
# missing or package-lock.json changed since the last install, then `npm run build` (type check,
# Vite build, bundle sizes: fails when the initial JavaScript is over its budget).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../web"

if ! command -v npm >/dev/null; then
    echo "build-web.sh: npm is missing (install nodejs and npm, e.g. scripts/install-prereqs.sh)" >&2
    exit 1
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
stamp=node_modules/.package-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== web: npm ci"
    npm ci --no-audit --no-fund
    echo "$want" > "$stamp"
fi
echo "== web: npm run build"
npm run build
