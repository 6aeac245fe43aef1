#!/usr/bin/env bash
# The PostgreSQL server the tests use: starts Debian's cluster (the newest installed version, created
# when missing) when it is down, gives the role pressluft_test (LOGIN CREATEDB, over TCP) a known
# password, drops the test databases (pl_test_*) left from earlier runs and prints the base URL for
# PRESSLUFT_TEST_POSTGRES_URL: `postgres://pressluft_test:PASSWORD@127.0.0.1:PORT` (each test
# creates a database of its own there). `--drop` only drops the test databases.
# Needs root and the postgresql package (scripts/install-prereqs.sh installs it).
set -euo pipefail

drop_test_databases() {
    su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'pl\\_test\\_%'\"" \
        | while read -r db; do
            [ -n "$db" ] && su postgres -c "psql -qc 'DROP DATABASE IF EXISTS \"$db\"'" >/dev/null || true
        done
}
if [ "${1:-}" = --drop ]; then
    drop_test_databases
    exit 0
fi

version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$version" ] || { echo "postgres-test-cluster.sh: PostgreSQL is not installed" >&2; exit 2; }
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
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
drop_test_databases
echo "PostgreSQL $version on port $port" >&2
echo "postgres://pressluft_test:$password@127.0.0.1:$port"
