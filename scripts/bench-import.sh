#!/usr/bin/env bash
# Import benchmark (issue 12): the real `pressluft serve` release binary (fresh data directory,
# this machine as its local node) imports an archive holding BENCH_UPLOADS_MB (100) MiB of
# incompressible uploads and a BENCH_DB_MB (50) MiB database (db.sql + files/ + meta.json, tar.gz)
# into a new site's production environment (POST /api/environments/{id}/imports with a file://
# URL under /var/lib/pressluft/imports), timed from the POST until the import succeeded (the
# pre-import backup of the target, the archive read and checked whole, the dump into a scratch
# database and the files beside the live release, the switch, the serialized-safe URL rewrite,
# the administrator, the health check), next to the same steps done by hand in the same run:
#   the same steps: a backup of the target (mariadb-dump | zstd, tar of wp-content and uploads |
#     zstd), tar xzf of the archive beside tar xzOf db.sql | mariadb into a new database, wp-content
#     moved into a WordPress tree, the URL rewrite with the same serialized-safe helper and the
#     administrator made sure of (helper ensure-admin) - what an operator types for a safe import
#     (no member checks, no switch, no health check: the hand copy is not served);
#   the raw copy: only tar xzf beside the dump's load, and one after the other.
# The target <= 1.3x is judged against the same steps by hand; the raw copy is printed too.
# The archive is made from a real site of this run (its database filled with ~1 KiB rows of random
# hex, every 64th naming the old URL the import rewrites; random upload files).
# Rounds: BENCH_ROUNDS (default 3); every round imports into a new site (an import into a site
# that already holds 150 MiB would time the pre-import backup of that data too).
# Needs root, sshd and the node stack (scripts/install-prereqs.sh); run it under the node lock
# (flock -o /tmp/pressluft-node.lock ...). Removes what it creates. BENCH_BIN / CARGO_TARGET_DIR
# as in scripts/bench-clone.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "bench-import.sh: run as root" >&2; exit 1; }
for bin in curl jq tar gzip zstd php mariadb mariadb-dump sqlite3 awk cargo; do
    command -v "$bin" >/dev/null || { echo "bench-import.sh: $bin is missing (scripts/install-prereqs.sh)" >&2; exit 1; }
done
uploads_mb="${BENCH_UPLOADS_MB:-100}"
db_mb="${BENCH_DB_MB:-50}"
rounds="${BENCH_ROUNDS:-3}"
[[ "$uploads_mb" =~ ^[0-9]+$ && "$db_mb" =~ ^[0-9]+$ && "$rounds" =~ ^[1-9][0-9]*$ ]] ||
    { echo "bench-import.sh: BENCH_* must be numbers (BENCH_ROUNDS >= 1)" >&2; exit 2; }
bench_name=bench-import
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
src_site=""
target_site=""
hand_db="pl_bench_import_$$"
imports_dir="/var/lib/pressluft/imports/bench-$$"
old_url="http://old-bench-import.example.test"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    bench_delete_site "$target_site"
    bench_delete_site "$src_site"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`" 2>/dev/null
    rm -rf "$imports_dir"
    bench_stop_server "$rc"
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

db_of() { local h="${1//-/}"; h="pl_${h: -16}"; echo "${h,,}"; }

# new_site SLUG: creates a site, waits until its production is Ready; "site_id env_id" on stdout.
new_site() {
    local site sid eid
    site="$(api POST /api/sites "$(jq -n --arg s "$1" '{name: ("Import Bench " + $s), slug: $s}')")"
    sid="$(jq -r .id <<<"$site")"
    eid="$(jq -r .primary_environment_id <<<"$site")"
    wait_for "the site $1" "/api/environments/$eid" "$ready" 900 >/dev/null
    echo "$sid $eid"
}

# ------------------------------------------------------------------ by hand ---------------------
# hand_steps TARGET_SITE TARGET_ENV TARGET_URL: the import's steps by hand (wall ms on stdout);
# the WordPress tree the hand import lands in is prepared before the clock starts.
hand_steps() {
    local root="/var/www/sites/$1/$2" tdb t0 p1 p2 failed=0 out
    tdb="$(db_of "$2")"
    rm -rf "$tmp/hand" "$tmp/handwp" "$tmp/handbk"
    mkdir -p "$tmp/hand" "$tmp/handbk"
    cp -a /usr/share/wordpress "$tmp/handwp"
    rm -rf "$tmp/handwp/wp-content" "$tmp/handwp/wp-config.php" "$tmp/handwp/.htaccess"
    cat >"$tmp/handwp/wp-config.php" <<PHP
<?php
define('DB_NAME', '$hand_db'); define('DB_USER', 'root'); define('DB_PASSWORD', ''); define('DB_HOST', 'localhost');
define('DB_CHARSET', 'utf8mb4'); define('DB_COLLATE', ''); \$table_prefix = 'wp_';
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
PHP
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`; CREATE DATABASE \`$hand_db\`"
    sync
    t0="$(now_ms)"
    # 1. a backup of the target (its database, its wp-content and uploads)
    mariadb-dump --protocol=socket --user=root --single-transaction --quick --hex-blob "$tdb" | zstd -q >"$tmp/handbk/db.sql.zst" || failed=1
    tar -C "$root" -cf - current/wp-content shared/uploads 2>/dev/null | zstd -q >"$tmp/handbk/files.tar.zst" || failed=1
    # 2. the archive unpacked beside the dump's load
    tar xzf "$archive" -C "$tmp/hand" & p1=$!
    hand_db & p2=$!
    wait "$p1" || failed=1
    wait "$p2" || failed=1
    mv "$tmp/hand/files" "$tmp/handwp/wp-content" || failed=1
    # 3. the URL rewrite and the administrator, with the helper Pressluft uses
    out="$(php ansible/files/pressluft-helper.php --path="$tmp/handwp" search-replace --old="$old_url" --new="$3" 2>&1)" ||
        { failed=1; log "hand search-replace: $(tail -c 400 <<<"$out")"; }
    out="$(PRESSLUFT_ADMIN_PASSWORD=hand-admin-password-0 php ansible/files/pressluft-helper.php --path="$tmp/handwp" \
        ensure-admin --user=handadmin --email=hand@example.com 2>&1)" ||
        { failed=1; log "hand ensure-admin: $(tail -c 400 <<<"$out")"; }
    [ "$failed" = 0 ] || die "hand import (same steps) failed"
    local ms=$(($(now_ms) - t0))
    left="$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench WHERE meta_value LIKE '${old_url//_/\\_}%'" "$hand_db")"
    [ "$left" = 0 ] || die "hand import (same steps): $left rows still name the old URL"
    rm -rf "$tmp/hand" "$tmp/handwp" "$tmp/handbk"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`"
    echo "$ms"
}
hand_files() { mkdir -p "$tmp/hand" && tar xzf "$archive" -C "$tmp/hand"; }
hand_db() {
    # the dump is inside the archive: extracted with the files (sequential) or read from the
    # archive on its own (side by side), as an operator would do either way
    tar xzOf "$archive" db.sql | mariadb --protocol=socket --user=root --default-character-set=utf8mb4 "$hand_db"
}
hand() {
    local t0 p1 p2 failed=0
    rm -rf "$tmp/hand"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`; CREATE DATABASE \`$hand_db\`"
    sync
    t0="$(now_ms)"
    if [ "$1" = parallel ]; then
        hand_files & p1=$!
        hand_db & p2=$!
        wait "$p1" || failed=1
        wait "$p2" || failed=1
    else
        hand_files || failed=1
        mariadb --protocol=socket --user=root --default-character-set=utf8mb4 "$hand_db" <"$tmp/hand/db.sql" || failed=1
    fi
    [ "$failed" = 0 ] || die "hand import ($1) failed"
    local ms=$(($(now_ms) - t0))
    [ "$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench" "$hand_db")" = "$rows" ] ||
        die "hand import ($1): the database does not hold the $rows benchmark rows"
    [ "$(du -sb --apparent-size "$tmp/hand/files/uploads" | cut -f1)" -ge $((uploads_mb * 1048576)) ] ||
        die "hand import ($1): the uploads are incomplete"
    rm -rf "$tmp/hand"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`"
    echo "$ms"
}

# ------------------------------------------------------------------ setup -----------------------
bench_binary
bench_start_server
bench_wait_local_node

slug="imsrc$(($$ % 100000))"
log "creating the source site $slug"
read -r src_site src_id <<<"$(new_site "$slug")"
src_root="/var/www/sites/$src_site/$src_id"
src_db="$(db_of "$src_id")"
uploads="$src_root/shared/uploads"
[ -d "$uploads" ] || die "$uploads is missing"

bench_fill "$src_db" "$uploads" "$old_url"

log "packing the archive (db.sql + files/ + meta.json, tar.gz)"
mkdir -p "$tmp/pack" "$imports_dir"
chmod 0700 "$imports_dir"
mariadb-dump --protocol=socket --user=root --single-transaction --quick --hex-blob --default-character-set=utf8mb4 \
    "$src_db" >"$tmp/pack/db.sql"
cp -a "$src_root/current/wp-content" "$tmp/pack/files"
rm -rf "$tmp/pack/files/uploads"
cp -a "$uploads" "$tmp/pack/files/uploads"
printf '{"source_url": "%s"}\n' "$old_url" >"$tmp/pack/meta.json"
archive="$imports_dir/site.tgz"
tar czf "$archive" -C "$tmp/pack" db.sql files meta.json
dump_bytes="$(stat -c %s "$tmp/pack/db.sql")"
files_bytes="$(du -sb --apparent-size "$tmp/pack/files" | cut -f1)"
raw_bytes=$((dump_bytes + files_bytes))
archive_bytes="$(stat -c %s "$archive")"
rm -rf "$tmp/pack"
log "raw data: dump $(mib "$dump_bytes") MiB, wp-content $(mib "$files_bytes") MiB; archive $(mib "$archive_bytes") MiB"
# the source is no longer needed: its removal must not run beside the rounds
bench_delete_site "$src_site"
src_site=""
sync

# ------------------------------------------------------------------ rounds ----------------------
declare -a A_I A_J A_M H_P H_S H_F
for ((round = 1; round <= rounds; round++)); do
    log "round $round: a new target site"
    read -r target_site target_id <<<"$(new_site "imtgt$round$(($$ % 10000))")"
    [ ! -e /var/www/sites/.pressluft-spare/.lock ] || flock -w 60 /var/www/sites/.pressluft-spare/.lock true || true
    target_url="$(api GET "/api/environments/$target_id" | jq -r .preview_url)"
    target_url="${target_url%/}"
    # by hand first: its backup is of the target as the API import finds it (a new, empty site)
    log "round $round: the same steps by hand"
    H_F+=("$(hand_steps "$target_site" "$target_id" "$target_url")")
    sync
    log "round $round: API import"
    t0="$(now_ms)"
    imp="$(api POST "/api/environments/$target_id/imports" "$(jq -n --arg u "file://$archive" '{archive_url: $u}')")"
    imp_id="$(jq -r .id <<<"$imp")"
    body="$(wait_for "the import" "/api/imports/$imp_id" '.status == "succeeded" or .status == "failed"' 1800)"
    A_I+=("$(($(now_ms) - t0))")
    [ "$(jq -r .status <<<"$body")" = succeeded ] || die "the import failed: $(jq -c '{status, error_code, result}' <<<"$body")"
    tdb="$(db_of "$target_id")"
    [ "$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench" "$tdb")" = "$rows" ] ||
        die "the imported database does not hold the $rows benchmark rows"
    left="$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench WHERE meta_value LIKE '${old_url//_/\\_}%'" "$tdb")"
    [ "$left" = 0 ] || die "the imported database still names the old URL in $left rows"
    [ "$(du -sb --apparent-size "/var/www/sites/$target_site/$target_id/shared/uploads" | cut -f1)" -ge $((uploads_mb * 1048576)) ] ||
        die "the imported uploads are incomplete"
    job="$(api GET "/api/jobs?environment_id=$target_id&limit=100" | jq -c '[.items[] | select(.job_type == "site_import")] | sort_by(.created_at) | .[-1]')"
    A_J+=("$(($(ts_ms "$(jq -r .finished_at <<<"$job")") - $(ts_ms "$(jq -r .started_at <<<"$job")")))")
    timings="$(jq -c '.result.import_timings_ms // {}' <<<"$body")"
    # the module's own work from the archive read to the health check (no Ansible, no backup gate)
    A_M+=("$(jq -r '[.download, .inspect, .stage, .caches_before, .url_rewrite, .admin, .prune, .caches, .health] | map(. // 0) | add' <<<"$timings")")
    last_job="$job"
    last_backup="$(api GET "/api/jobs?environment_id=$target_id&limit=100" | jq -c '[.items[] | select(.job_type == "backup_create")] | sort_by(.created_at) | .[-1]')"
    last_post="$t0"
    last_timings="$timings"
    last_pre="$(jq -r .pre_backup_id <<<"$body")"

    log "round $round: hand import"
    H_P+=("$(hand parallel)")
    H_S+=("$(hand sequential)")
    log "round $round: API $(secs "${A_I[-1]}") s, same steps by hand $(secs "${H_F[-1]}") s, raw copy side by side $(secs "${H_P[-1]}") s, one after the other $(secs "${H_S[-1]}") s"
    bench_delete_site "$target_site"
    target_site=""
done

# ------------------------------------------------------------------ report ----------------------
mf="$(median "${H_F[@]}")" mi="$(median "${A_I[@]}")" mj="$(median "${A_J[@]}")" mm="$(median "${A_M[@]}")" mp="$(median "${H_P[@]}")" ms="$(median "${H_S[@]}")"
echo
echo "Import benchmark (issue 12): archive $(mib "$archive_bytes") MiB (tar.gz) = dump $(mib "$dump_bytes") MiB + wp-content $(mib "$files_bytes") MiB ($uploads_mb MiB random uploads in $files files)"
echo "$rounds round(s), medians; ratio = API / the same steps by hand (target <= 1.3x), and / the raw copy"
echo "  same steps by hand = backup of the target (dump | zstd, tar | zstd), tar xzf beside tar xzOf db.sql | mariadb,"
echo "         wp-content moved into a WordPress tree, the helper's search-replace and ensure-admin"
echo "         (not done by hand: the member checks, the switch of a live site, the health check, the rollback)"
echo "  raw copy = tar xzf + mariadb < db.sql into a new database, nothing else"
printf '  %-64s %8s %13s %7s\n' "" wall throughput ratio
bench_line "API   POST -> import succeeded (new site's production)" "$mi" "$mf" 1.3
bench_line "API   site_import job alone (started -> finished)" "$mj" "$mf" 1.3
bench_line "API   module work (read, stage, switch, rewrite, health)" "$mm" "$mf" 1.3
bench_line "hand  the same steps (reference)" "$mf"
bench_line "API   POST -> import succeeded, against the raw copy" "$mi" "$mp" 1.3
bench_line "hand  raw copy: tar xzf beside tar xzOf db.sql | mariadb" "$mp"
bench_line "hand  raw copy: tar xzf, then mariadb < db.sql" "$ms"
printf '  each round (API / job / module / same steps by hand / raw side by side / raw one after the other, s):'
for ((i = 0; i < ${#A_I[@]}; i++)); do
    printf ' %s/%s/%s/%s/%s/%s' "$(secs "${A_I[$i]}")" "$(secs "${A_J[$i]}")" "$(secs "${A_M[$i]}")" "$(secs "${H_F[$i]}")" "$(secs "${H_P[$i]}")" "$(secs "${H_S[$i]}")"
done
echo
# POST -> the pre-import backup's job (queued, started, finished) -> site_import (queued, started)
if [ -n "${last_backup:-}" ] && [ "$last_backup" != null ]; then
    printf '  POST -> pre-import backup_create queued %s s, started %s s, finished %s s -> site_import queued %s s, started %s s (from the POST)\n' \
        "$(secs $(($(ts_ms "$(jq -r .created_at <<<"$last_backup")") - last_post)))" \
        "$(secs $(($(ts_ms "$(jq -r .started_at <<<"$last_backup")") - last_post)))" \
        "$(secs $(($(ts_ms "$(jq -r .finished_at <<<"$last_backup")") - last_post)))" \
        "$(secs $(($(ts_ms "$(jq -r .created_at <<<"$last_job")") - last_post)))" \
        "$(secs $(($(ts_ms "$(jq -r .started_at <<<"$last_job")") - last_post)))"
fi
printf '  where the time goes (last round): pre-import backup %s; site_import queued -> started %s s; module timings (ms) %s\n' \
    "$last_pre" \
    "$(secs $(($(ts_ms "$(jq -r .started_at <<<"$last_job")") - $(ts_ms "$(jq -r .created_at <<<"$last_job")"))))" \
    "$last_timings"
bench_login_shell_note
