#!/usr/bin/env bash
# The tests that run the API and the runtime against a database
# (tests/{api,apply,hostile_input,magic_login,runtime,replicas,imports,adoptions,cli}.rs; cli.rs: the real
# binary with `--database-url` of a fresh database; as root two end-to-end tests) once more on PostgreSQL: every
# migration, every API rule and the runtime's leases and wake-ups on both backends (issue 11 runs
# the whole suite there). Starts Debian's PostgreSQL cluster when it is down, uses a role of its own
# (pressluft_test, CREATEDB) over TCP; each test app creates a fresh database, dropped afterwards.
# Needs root and the postgresql package (scripts/install-prereqs.sh installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
[ -n "$version" ] || { echo "test-postgres.sh: PostgreSQL is not installed" >&2; exit 2; }
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

drop_test_databases() {
    su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'pl\\_test\\_%'\"" \
        | while read -r db; do
            [ -n "$db" ] && su postgres -c "psql -qc 'DROP DATABASE IF EXISTS \"$db\"'" >/dev/null
        done
}
drop_test_databases
trap drop_test_databases EXIT

echo "PostgreSQL $version on port $port"
PRESSLUFT_TEST_POSTGRES_URL="postgres://pressluft_test:$password@127.0.0.1:$port" \
    cargo test --locked --no-fail-fast --test api --test apply --test hostile_input --test magic_login \
    --test runtime --test replicas --test imports --test adoptions --test cli \
    2>&1 | tee target/cargo-test-postgres.log
# With PRESSLUFT_E2E=1 (scripts/test.sh as root): end-to-end tests on this machine with the
# server's state in PostgreSQL - a site's whole life with a kill -9 of the server mid-creation
# and a restart, and the GitOps round trip.
if [ "${PRESSLUFT_E2E:-}" = 1 ]; then
    PRESSLUFT_TEST_POSTGRES_URL="postgres://pressluft_test:$password@127.0.0.1:$port" \
        cargo test --locked --no-fail-fast --test e2e -- \
        local_node_sites_isolation_deletion_failure_and_crash gitops_apply_wait_export_round_trip \
        2>&1 | tee -a target/cargo-test-postgres.log
fi
grep -E '^test result:' target/cargo-test-postgres.log \
    | awk '{p+=$4; f+=$6} END {print "rust on PostgreSQL: " p " passed, " f " failed"; exit (f > 0)}'
