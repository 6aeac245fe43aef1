#!/usr/bin/env bash
# Clone benchmark (issue 8): the real `pressluft serve` release binary (fresh data directory, this
# machine as its local node) clones a site holding BENCH_UPLOADS_MB (100) MiB of incompressible
# uploads and a BENCH_DB_MB (50) MiB database into a staging environment
# (POST /api/sites/{id}/environments with source_environment_id), timed from the POST until the
# clone is Ready (its phase `cloning` included: a new Linux user, database, PHP-FPM pool, nginx
# server block, release, the copy, the URL rewrite and the health check), next to the same copy
# done by hand in the same run:
#   rsync -a of the source's wp-content and uploads into a fresh directory, and
#   mariadb-dump --single-transaction --quick | mariadb into a new database;
# side by side (as Pressluft does; the target <= 1.3x is judged against this) and one after the
# other (for reference). The hand copy has no URL rewrite (Pressluft's time includes the
# serialized-safe search-replace over the whole database) and creates no user, pool or site.
# Prints wall times (medians of the rounds), MiB/s of raw data, the ratio, and where the API
# clone's time goes (job timestamps and the module's clone_timings_ms); besides POST -> Ready (the
# issue's "clone time") and the env_create job, the copy inside the job (clone_timings_ms.total:
# the database copy and the rsyncs, started as soon as the new database exists, + the URL
# rewrite) against the same hand copy - the same work, without the environment's set-up.
# Rounds: BENCH_ROUNDS (default 3). Needs root, sshd and the node stack
# (scripts/install-prereqs.sh); run it under the node lock (flock -o /tmp/pressluft-node.lock ...).
# Removes what it creates (the site through the API, the hand copies, temporary files).
# Set CARGO_TARGET_DIR to keep the release build apart from debug builds, or BENCH_BIN to a release
# binary built beforehand (then nothing is built while the node lock is held).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "bench-clone.sh: run as root" >&2; exit 1; }
for bin in curl jq rsync mariadb mariadb-dump sqlite3 awk cargo; do
    command -v "$bin" >/dev/null || { echo "bench-clone.sh: $bin is missing (scripts/install-prereqs.sh)" >&2; exit 1; }
done
uploads_mb="${BENCH_UPLOADS_MB:-100}"
db_mb="${BENCH_DB_MB:-50}"
rounds="${BENCH_ROUNDS:-3}"
[[ "$uploads_mb" =~ ^[0-9]+$ && "$db_mb" =~ ^[0-9]+$ && "$rounds" =~ ^[1-9][0-9]*$ ]] ||
    { echo "bench-clone.sh: BENCH_* must be numbers (BENCH_ROUNDS >= 1)" >&2; exit 2; }
bench_name=bench-clone
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
site_id=""
hand_db="pl_bench_clone_$$"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    bench_delete_site "$site_id"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`" 2>/dev/null
    bench_stop_server "$rc"
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

db_of() { local h="${1//-/}"; h="pl_${h: -16}"; echo "${h,,}"; }

# ------------------------------------------------------------------ by hand ---------------------
# hand MODE: the copy by hand into $tmp/hand (files) and $hand_db; wall ms on stdout.
# parallel: rsync and dump|import side by side; sequential: one after the other.
hand_files() {
    mkdir -p "$tmp/hand/wp-content" "$tmp/hand/uploads"
    rsync -a --exclude=/uploads "$src_root/current/wp-content/" "$tmp/hand/wp-content/" &&
        rsync -a "$src_root/shared/uploads/" "$tmp/hand/uploads/"
}
hand_db() {
    mariadb-dump --protocol=socket --user=root --single-transaction --quick --routines --triggers --hex-blob \
        --default-character-set=utf8mb4 "$src_db" |
        mariadb --protocol=socket --user=root --default-character-set=utf8mb4 "$hand_db"
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
        hand_db || failed=1
    fi
    [ "$failed" = 0 ] || die "hand copy ($1) failed"
    local ms=$(($(now_ms) - t0))
    # what was copied is complete (not timed)
    [ "$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench" "$hand_db")" = "$rows" ] ||
        die "hand copy ($1): the database does not hold the $rows benchmark rows"
    [ "$(du -sb --apparent-size "$tmp/hand/uploads" | cut -f1)" -ge $((uploads_mb * 1048576)) ] ||
        die "hand copy ($1): the uploads are incomplete"
    rm -rf "$tmp/hand"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`"
    echo "$ms"
}

# ------------------------------------------------------------------ setup -----------------------
bench_binary
bench_start_server
bench_wait_local_node

slug="clbench$(($$ % 100000))"
site="$(api POST /api/sites "$(jq -n --arg s "$slug" '{name: "Clone Bench", slug: $s}')")"
site_id="$(jq -r .id <<<"$site")"
src_id="$(jq -r .primary_environment_id <<<"$site")"
log "waiting for the site $slug to be Ready"
src_env="$(wait_for "the site" "/api/environments/$src_id" "$ready" 900)"
src_url="$(jq -r .preview_url <<<"$src_env")"
src_url="${src_url%/}"
src_root="/var/www/sites/$site_id/$src_id"
src_db="$(db_of "$src_id")"
uploads="$src_root/shared/uploads"
[ -d "$uploads" ] || die "$uploads is missing"

# ------------------------------------------------------------------ the data --------------------
# as bench-backup.sh: ~1 KiB rows of random hex (a meta_key naming the source URL every 64th row,
# so the URL rewrite has something to do) and random (incompressible) upload files
bench_fill "$src_db" "$uploads" "$src_url"
dump_bytes="$(mariadb-dump --protocol=socket --user=root --single-transaction --quick --hex-blob "$src_db" | wc -c)"
uploads_bytes="$(du -sb --apparent-size "$uploads" | cut -f1)"
content_bytes="$(du -sb --apparent-size --exclude=uploads "$src_root/current/wp-content/" | cut -f1)"
raw_bytes=$((dump_bytes + uploads_bytes + content_bytes))
log "raw data: database dump $(mib "$dump_bytes") MiB, uploads $(mib "$uploads_bytes") MiB, wp-content $(mib "$content_bytes") MiB"
sync

# ------------------------------------------------------------------ rounds ----------------------
declare -a A_C A_J A_CP H_P H_S
for ((round = 1; round <= rounds; round++)); do
    log "round $round: API clone"
    sync
    t0="$(now_ms)"
    env="$(api POST "/api/sites/$site_id/environments" "$(jq -n --arg s "$src_id" --arg g "stg$round" \
        '{name: ("Staging " + $g), slug: $g, type: "staging", source_environment_id: $s, promotion_preset: "content-protect"}')")"
    clone_id="$(jq -r .id <<<"$env")"
    body="$(wait_for "the clone Ready" "/api/environments/$clone_id" "$ready or .status == \"failed\"" 1800)"
    A_C+=("$(($(now_ms) - t0))")
    [ "$(jq -r .status <<<"$body")" = active ] || die "the clone failed: $(jq -c '{status, conditions}' <<<"$body")"
    clone_db="$(db_of "$clone_id")"
    [ "$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench" "$clone_db")" = "$rows" ] ||
        die "the clone's database does not hold the $rows benchmark rows"
    left="$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench WHERE meta_key LIKE '${src_url//_/\\_}%'" "$clone_db")"
    [ "$left" = 0 ] || die "the clone's database still names the source URL in $left rows"
    [ "$(du -sb --apparent-size "/var/www/sites/$site_id/$clone_id/shared/uploads" | cut -f1)" -ge $((uploads_mb * 1048576)) ] ||
        die "the clone's uploads are incomplete"
    job="$(api GET "/api/jobs?environment_id=$clone_id&limit=100" | jq -c '[.items[] | select(.job_type == "env_create")] | sort_by(.created_at) | .[0]')"
    A_J+=("$(($(ts_ms "$(jq -r .finished_at <<<"$job")") - $(ts_ms "$(jq -r .started_at <<<"$job")")))")
    clone_job="$job"
    # the copy inside the job: the module's clone_timings_ms.total (database copy + rsyncs, started
    # during the environment's set-up, + the URL rewrite)
    A_CP+=("$(job_facts "$(jq -r .id <<<"$job")" | jq -r '.clone_timings_ms.total // 0' 2>/dev/null || echo 0)")

    # the clone's run started the node's next spare WordPress copy (pressluft_environment, detached,
    # niced): let it finish first, so it does not slow the hand copy down
    [ ! -e /var/www/sites/.pressluft-spare/.lock ] || flock -w 60 /var/www/sites/.pressluft-spare/.lock true || true
    log "round $round: hand copy"
    H_P+=("$(hand parallel)")
    H_S+=("$(hand sequential)")

    log "round $round: API $(secs "${A_C[-1]}") s, hand side by side $(secs "${H_P[-1]}") s, one after the other $(secs "${H_S[-1]}") s; deleting the clone"
    sv="$(api GET "/api/environments/$clone_id" | jq -r .state_version)"
    api DELETE "/api/environments/$clone_id?state_version=$sv" >/dev/null
    for ((i = 0; i < 600; i++)); do
        [ "$(api_code GET "/api/environments/$clone_id")" = 404 ] && break
        sleep 0.5
    done
    [ "$(api_code GET "/api/environments/$clone_id")" = 404 ] || die "the clone $clone_id was not deleted"
done

# ------------------------------------------------------------------ report ----------------------
mc="$(median "${A_C[@]}")" mj="$(median "${A_J[@]}")" mcp="$(median "${A_CP[@]}")" mp="$(median "${H_P[@]}")" ms="$(median "${H_S[@]}")"
echo
echo "Clone benchmark (issue 8): $uploads_mb MiB uploads ($files random files) + database dump $(mib "$dump_bytes") MiB + wp-content $(mib "$content_bytes") MiB = $(mib "$raw_bytes") MiB raw"
echo "$rounds round(s), medians; ratio = API / hand side by side, target <= 1.3x"
echo "  hand = rsync -a (wp-content, uploads) + mariadb-dump --single-transaction --quick | mariadb into a new database;"
echo "         no URL rewrite, no Linux user, pool, nginx or WordPress set-up (the API clone does all of these)"
printf '  %-64s %8s %13s %7s\n' "" wall throughput ratio
bench_line "API   POST -> clone Ready (staging environment)" "$mc" "$mp" 1.3
bench_line "API   env_create job alone (started -> finished)" "$mj" "$mp" 1.3
bench_line "API   the copy inside the job (+ URL rewrite; same work)" "$mcp" "$mp" 1.3
bench_line "hand  rsync and dump|import side by side (reference)" "$mp"
bench_line "hand  one after the other" "$ms"
printf '  each round (API / copy in the job / hand side by side / one after the other, s):'
for ((i = 0; i < ${#A_C[@]}; i++)); do
    printf ' %s/%s/%s/%s' "$(secs "${A_C[$i]}")" "$(secs "${A_CP[$i]}")" "$(secs "${H_P[$i]}")" "$(secs "${H_S[$i]}")"
done
echo
created="$(ts_ms "$(jq -r .created_at <<<"$clone_job")")"
started="$(ts_ms "$(jq -r .started_at <<<"$clone_job")")"
finished="$(ts_ms "$(jq -r .finished_at <<<"$clone_job")")"
facts="$(job_facts "$(jq -r .id <<<"$clone_job")")"
printf '  where the time goes (last round): env_create queued -> started %s s, started -> finished %s s; module clone_timings_ms %s, timings %s\n' \
    "$(secs $((started - created)))" "$(secs $((finished - started)))" \
    "$(jq -c '.clone_timings_ms // "none"' <<<"${facts:-null}" 2>/dev/null || echo none)" \
    "$(jq -c '.timings_ms // .environment_timings_ms // "none"' <<<"${facts:-null}" 2>/dev/null || echo none)"
# the playbook's tasks (ms, from the facts callback) and where the new release's core came from
# (spare: the node's copy made ahead by the previous create's filler; copy: copied in this run)
printf '  tasks (last round, ms): %s; release_core %s; health checks (ms, side by side) %s; database copy %s\n' \
    "$(jq -c '[._tasks[]? | {(.task // "?"): .ms}] | add // "none"' <<<"${facts:-null}" 2>/dev/null || echo none)" \
    "$(jq -r '.release_core // "none"' <<<"${facts:-null}" 2>/dev/null || echo none)" \
    "$(jq -c '(.health_checks // {}) | map_values(.elapsed_ms)' <<<"${facts:-null}" 2>/dev/null || echo none)" \
    "$(jq -c '.clone_database // "none"' <<<"${facts:-null}" 2>/dev/null || echo none)"
bench_login_shell_note
