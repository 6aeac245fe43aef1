#!/usr/bin/env bash
# Scale benchmark (issue 11 item 3): converge time of 10, 30 and 60 sites with 1 and 2 replicas on
# PostgreSQL, and the per-site cost. Starts Debian's PostgreSQL cluster and the pressluft_test role
# as scripts/test-postgres.sh does (needs root), then runs scripts/bench-scale.py (see there for the
# options; --real runs the real playbooks on this machine: take the node lock,
# `flock -o /tmp/pressluft-node.lock scripts/bench-scale.sh --real`).
# BIN selects the binary (default target/release/pressluft, else target/debug/pressluft).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$version" ] || { echo "bench-scale.sh: PostgreSQL is not installed" >&2; exit 2; }
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 50); do
    su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 0.2
done
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
password="pressluft-test-$(id -u)"
su postgres -c "psql -qtA" <<SQL >/dev/null
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pressluft_test') THEN
    CREATE ROLE pressluft_test LOGIN CREATEDB PASSWORD '$password';
  ELSE
    ALTER ROLE pressluft_test LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL

if [ -z "${BIN:-}" ]; then
    target=${CARGO_TARGET_DIR:-target}
    BIN=$target/release/pressluft
    [ -x "$BIN" ] || BIN=$target/debug/pressluft
fi
export BIN PG_PORT=$port
exec python3 scripts/bench-scale.py "$@"
