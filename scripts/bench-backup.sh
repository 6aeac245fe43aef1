#!/usr/bin/env bash
# Backup and restore benchmark (issue 7): the real `pressluft serve` release binary (fresh data
# directory, this machine as its local node, backups to the local S3 test server of
# scripts/s3-test-server.sh) backs up and restores a site holding BENCH_UPLOADS_MB (200) MiB of
# incompressible uploads and a BENCH_DB_MB (50) MiB database, next to the same work done by hand in
# the same run:
#   backup   mariadb-dump --single-transaction --quick | zstd | rclone rcat, tar uploads | zstd |
#            rclone rcat, tar wp-content | zstd | rclone rcat, each hashed while written and read
#            back with `rclone cat | sha256sum` (Pressluft verifies by reading back too);
#   restore  rclone cat | zstd -d | mariadb (a scratch database), rclone cat | zstd -d | tar -x
#            (a fresh directory); also, for reference, all artifacts downloaded and their SHA-256
#            checked before anything is restored (what Pressluft's restore has to do);
# the three artifacts side by side (as pressluft_backup does; the backup's target ≤ 1.3× is judged
# against this, the restore job's against the hand restore that checks every checksum first, since
# Pressluft must, its ratio to the unchecked streamed one is shown too) and one after the other
# (shown for reference). Prints wall time, MiB/s of raw data and the
# ratio (medians of the rounds), the restore job alone (env_restore started → finished) besides the
# end-to-end restore (POST → succeeded: the pre-restore backup + the restore; compared, ≤ 1.3×, with
# a hand backup side by side + a hand restore that checks every checksum first, of the same data;
# should the pre-restore backup ever be an existing backup instead of a new one - Pressluft takes a
# new one today, docs/decisions.md "Pre-restore backup not reused" - the round's reference is the
# checked hand restore alone, and the output says so), the control
# plane's RSS (VmRSS of the serve process sampled every 50 ms) idle and peak during a small and
# the large backups, and where
# the time of the API backup and restore goes (job timestamps and the module's *_timings_ms).
# Rounds: BENCH_ROUNDS (default auto: 3 when that keeps the run within BENCH_BUDGET_SECONDS (720)
# after the build, else 1). Needs root, sshd and the node stack (scripts/install-prereqs.sh); run it
# under the node lock (flock -o /tmp/pressluft-node.lock ...). Removes what it creates (the site
# through the API, the S3 objects, the temporary files; the S3 test server keeps running).
# Set CARGO_TARGET_DIR to keep the release build apart from debug builds, or BENCH_BIN to a release
# binary built beforehand (then nothing is built while the node lock is held).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "$(id -u)" = 0 ] || { echo "bench-backup.sh: run as root" >&2; exit 1; }
for bin in curl jq zstd rclone mariadb mariadb-dump sqlite3 sha256sum tar awk cargo; do
    command -v "$bin" >/dev/null || { echo "bench-backup.sh: $bin is missing (scripts/install-prereqs.sh)" >&2; exit 1; }
done
uploads_mb="${BENCH_UPLOADS_MB:-200}"
db_mb="${BENCH_DB_MB:-50}"
rounds="${BENCH_ROUNDS:-auto}"
budget="${BENCH_BUDGET_SECONDS:-720}"
[[ "$uploads_mb" =~ ^[0-9]+$ && "$db_mb" =~ ^[0-9]+$ && "$budget" =~ ^[0-9]+$ ]] || { echo "bench-backup.sh: BENCH_* must be numbers" >&2; exit 2; }
[[ "$rounds" =~ ^(auto|[1-9][0-9]*)$ ]] || { echo "bench-backup.sh: BENCH_ROUNDS is auto or a number" >&2; exit 2; }
rclone_bin="$(command -v rclone)"  # the node's rclone (what pressluft_backup uses), not the test server's
rclone_flags=(-q --low-level-retries 3 --retries 1 --contimeout 10s --timeout 2m)
bench_name=bench-backup
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh
sampler_pid=""
site_id=""
hand_db="pl_bench_hand_$$"
s3_prefix="bench-backup-$$"
S3_DATA_DIR=""
S3_BUCKET=""

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -z "$sampler_pid" ] || { rm -f "$tmp/rss.run"; kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null; }
    bench_delete_site "$site_id"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`" 2>/dev/null
    bench_stop_server "$rc"
    if [ -n "$S3_DATA_DIR" ] && [ -n "$S3_BUCKET" ] && [ -d "$S3_DATA_DIR/$S3_BUCKET" ]; then
        rm -rf "${S3_DATA_DIR:?}/${S3_BUCKET:?}/$s3_prefix" "${S3_DATA_DIR:?}/${S3_BUCKET:?}/$s3_prefix-hand"
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# the job of a resource (newest first among the environment's jobs)
job_of() { api GET "/api/jobs?environment_id=$env_id&limit=100" | jq -c --arg r "$1" --arg t "$2" '[.items[] | select(.resource_id == $r and .job_type == $t)][0]'; }

# ------------------------------------------------------------------ memory ----------------------
rss_kb() {
    local k v rest
    while read -r k v rest; do
        [ "$k" = "VmRSS:" ] && { echo "$v"; return; }
    done <"/proc/$server_pid/status"
    echo 0
}
sampler_start() {
    : >"$tmp/rss.run"
    echo 0 >"$tmp/rss.peak"
    (
        peak=0
        while [ -e "$tmp/rss.run" ]; do
            v=0
            while read -r k val _; do [ "$k" = "VmRSS:" ] && { v="$val"; break; }; done <"/proc/$server_pid/status"
            if [ "$v" -gt "$peak" ]; then peak="$v"; echo "$peak" >"$tmp/rss.peak"; fi
            sleep 0.05
        done
    ) &
    sampler_pid=$!
}
sampler_stop() {  # the peak in kB on stdout
    rm -f "$tmp/rss.run"
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    cat "$tmp/rss.peak"
}

# ------------------------------------------------------------------ by hand ---------------------
# rclone configured as pressluft_backup does it: environment only (remote `hand`), no config file,
# no other AWS_* or RCLONE_* variable (an AWS_CA_BUNDLE, say, would change how it connects).
hand_rclone() {
    local unset=() v
    for v in "${!AWS_@}" "${!RCLONE_@}"; do unset+=(-u "$v"); done
    env "${unset[@]}" RCLONE_CONFIG=/dev/null \
        RCLONE_CONFIG_HAND_TYPE=s3 RCLONE_CONFIG_HAND_PROVIDER=Other \
        RCLONE_CONFIG_HAND_ENDPOINT="$S3_ENDPOINT" RCLONE_CONFIG_HAND_REGION="$S3_REGION" \
        RCLONE_CONFIG_HAND_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" \
        RCLONE_CONFIG_HAND_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
        RCLONE_CONFIG_HAND_FORCE_PATH_STYLE=true RCLONE_CONFIG_HAND_NO_CHECK_BUCKET=true \
        RCLONE_CONFIG_HAND_CHUNK_SIZE=16Mi "$rclone_bin" "${rclone_flags[@]}" "$@"
}
produce() {  # NAME: the raw stream of one artifact
    case "$1" in
        database) mariadb-dump --protocol=socket --user=root --single-transaction --quick --routines --triggers \
            --hex-blob --no-tablespaces --skip-lock-tables --skip-dump-date --default-character-set=utf8mb4 "$db_name" ;;
        uploads) tar --create --file=- --directory="$uploads" -- . ;;
        files) tar --create --file=- --directory="$env_root/current/" --anchored --exclude=wp-content/uploads \
            --exclude=wp-content/cache --exclude=wp-content/upgrade --exclude=wp-content/upgrade-temp-backup -- wp-content ;;
    esac
}
# hand_put PREFIX NAME: produce | zstd | (sha256 while written) rclone rcat, then read back and compare
hand_put() {
    local key="$S3_BUCKET/$1/$2.zst" sums="$tmp/sums/$1" w r fifo="$tmp/hand.$2.fifo" hasher
    mkdir -p "$sums"
    rm -f "$fifo"
    mkfifo -m 0600 "$fifo"
    sha256sum <"$fifo" >"$sums/$2" &
    hasher=$!
    produce "$2" | zstd -q -c -3 -T0 | tee "$fifo" | hand_rclone rcat "hand:$key"
    wait "$hasher"
    rm -f "$fifo"
    r="$(hand_rclone cat "hand:$key" | sha256sum)"
    w="$(cat "$sums/$2")"
    [ "${r%% *}" = "${w%% *}" ] || { log "hand backup: $2 read back differs"; return 1; }
}
hand_apply() {  # NAME DEST: restores the artifact read from stdin
    case "$1" in
        database) zstd -q -d -c | mariadb --protocol=socket --user=root "$hand_db" ;;
        *) zstd -q -d -c | tar --extract --file=- --directory="$2/$1" ;;
    esac
}
hand_get() {  # PREFIX NAME DEST: streamed from S3 into the database / directory
    hand_rclone cat "hand:$S3_BUCKET/$1/$2.zst" | hand_apply "$2" "$3"
}
hand_check() {  # PREFIX NAME: the downloaded artifact's SHA-256 is the one recorded when written
    local got
    got="$(sha256sum <"$tmp/dl/$2.zst")"
    [ "${got%% *}" = "$(cut -d' ' -f1 "$tmp/sums/$1/$2")" ] || { log "hand restore: $2 checksum differs"; return 1; }
}
# hand MODE put|get PREFIX: wall ms on stdout. MODE: parallel (3 artifacts side by side),
# sequential (one after the other) or, for get, verified (all downloaded and checked first, side by
# side, then restored side by side: nothing is touched before every checksum matched).
hand() {
    local mode=$1 op=$2 prefix=$3 t0 pids=() name failed=0 p
    if [ "$op" = get ]; then
        mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`; CREATE DATABASE \`$hand_db\`"
        rm -rf "$tmp/hand-restore" "$tmp/dl"
        mkdir -p "$tmp/hand-restore/files" "$tmp/hand-restore/uploads" "$tmp/dl"
        sync
    fi
    t0="$(now_ms)"
    if [ "$mode" = verified ]; then
        hand_rclone copy --transfers 4 "hand:$S3_BUCKET/$prefix" "$tmp/dl" || die "hand download failed"
        for name in database files uploads; do hand_check "$prefix" "$name" & pids+=($!); done
        for p in "${pids[@]}"; do wait "$p" || failed=1; done
        [ "$failed" = 0 ] || die "hand restore (verified): checksum mismatch"
        pids=()
        for name in database files uploads; do hand_apply "$name" "$tmp/hand-restore" <"$tmp/dl/$name.zst" & pids+=($!); done
    else
        for name in database files uploads; do
            if [ "$mode" = parallel ]; then
                "hand_$op" "$prefix" "$name" "$tmp/hand-restore" &
                pids+=($!)
            else
                "hand_$op" "$prefix" "$name" "$tmp/hand-restore" || failed=1
            fi
        done
    fi
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    [ "$failed" = 0 ] || die "hand $op ($mode) failed"
    if [ "$op" = get ]; then  # what was restored is complete (not timed)
        [ "$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench" "$hand_db")" = "$rows" ] ||
            die "hand restore ($mode): the database does not hold the $rows benchmark rows"
        [ "$(du -sb --apparent-size "$tmp/hand-restore/uploads" | cut -f1)" -ge $((uploads_mb * 1048576)) ] ||
            die "hand restore ($mode): the uploads are incomplete"
        rm -rf "$tmp/dl"
    fi
    echo $(($(now_ms) - t0))
}

# ------------------------------------------------------------------ setup -----------------------
log "starting the S3 test server"
s3_settings="$(scripts/s3-test-server.sh start)"
while IFS='=' read -r k v; do
    case "$k" in S3_ENDPOINT | S3_ACCESS_KEY_ID | S3_SECRET_ACCESS_KEY | S3_BUCKET | S3_REGION | S3_DATA_DIR) printf -v "$k" '%s' "$v" ;; esac
done <<<"$s3_settings"
[[ -n "$S3_BUCKET" && -d "$S3_DATA_DIR/$S3_BUCKET" ]] || die "unexpected s3-test-server output"

bench_binary
t_start="$(now_ms)"
bench_start_server

settings="$(jq -n --arg e "$S3_ENDPOINT" --arg b "$S3_BUCKET" --arg r "$S3_REGION" --arg p "$s3_prefix" \
    --arg k "$S3_ACCESS_KEY_ID" --arg s "$S3_SECRET_ACCESS_KEY" \
    '{backup_storage_type: "s3", backup_s3_endpoint: $e, backup_s3_bucket: $b, backup_s3_region: $r,
      backup_s3_path_prefix: $p, backup_s3_force_path_style: true, backup_s3_access_key_id: $k,
      backup_s3_secret_access_key: $s}')"
api PATCH /api/settings "$settings" >/dev/null

bench_wait_local_node

slug="bkbench$(($$ % 100000))"
site="$(api POST /api/sites "$(jq -n --arg s "$slug" '{name: "Backup Bench", slug: $s}')")"
site_id="$(jq -r .id <<<"$site")"
env_id="$(jq -r .primary_environment_id <<<"$site")"
log "waiting for the site $slug to be Ready"
wait_for "the site" "/api/environments/$env_id" "$ready" 900 >/dev/null
env_root="/var/www/sites/$site_id/$env_id"
uploads="$env_root/shared/uploads"
hex="${env_id//-/}"
db_name="pl_${hex: -16}"
db_name="${db_name,,}"
[ -d "$uploads" ] || die "$uploads is missing"

# one API backup: sets b_id, b_ms (POST -> completed as polled), b_peak (kB), b_job
api_backup() {
    local t0 body
    sampler_start
    t0="$(now_ms)"
    b_id="$(api POST "/api/environments/$env_id/backups" '{"backup_scope":"full"}' | jq -r .id)"
    body="$(wait_for "backup $b_id" "/api/backups/$b_id" '.status == "completed" or .status == "failed"' 1200)"
    b_ms=$(($(now_ms) - t0))
    b_peak="$(sampler_stop)"
    if [ "$(jq -r .status <<<"$body")" != completed ]; then
        b_job="$(job_of "$b_id" backup_create)"
        die "backup $b_id failed: $(jq -c '{last_error_code, conditions}' <<<"$body") job: $(jq -c '{error_code, error_message}' <<<"$b_job")"
    fi
    b_size="$(jq -r .size_bytes <<<"$body")"
    b_job="$(job_of "$b_id" backup_create)"
}

idle_kb="$(rss_kb)"
log "small backup (the fresh site) for the memory baseline"
api_backup
small_ms="$b_ms" small_peak="$b_peak" small_size="$b_size"

# ------------------------------------------------------------------ the data --------------------
bench_fill "$db_name" "$uploads"
dump_bytes="$(produce database | wc -c)"
uploads_bytes="$(produce uploads | wc -c)"
files_bytes="$(produce files | wc -c)"
raw_bytes=$((dump_bytes + uploads_bytes + files_bytes))
log "raw data: database dump $(mib "$dump_bytes") MiB, uploads tar $(mib "$uploads_bytes") MiB, wp-content tar $(mib "$files_bytes") MiB"
sync

# ------------------------------------------------------------------ rounds ----------------------
declare -a A_B A_R A_RJ A_PEAK A_RPEAK A_REUSED H_BP H_BS H_RP H_RS H_RV H_E2E
round=0
want="$rounds"
[ "$want" != auto ] || want=3
while [ "$round" -lt "$want" ]; do
    round=$((round + 1))
    t_round="$(now_ms)"
    log "round $round: API backup"
    api_backup
    A_B+=("$b_ms") A_PEAK+=("$b_peak")
    backup_id="$b_id" backup_job="$b_job" backup_size="$b_size"

    log "round $round: hand backup"
    H_BP+=("$(hand parallel put "$s3_prefix-hand/r$round-p")")
    H_BS+=("$(hand sequential put "$s3_prefix-hand/r$round-s")")

    log "round $round: API restore"
    sampler_start
    t0="$(now_ms)"
    restore_id="$(api POST "/api/environments/$env_id/restores" "{\"backup_id\":\"$backup_id\"}" | jq -r .id)"
    body="$(wait_for "restore $restore_id" "/api/restores/$restore_id" '.status == "succeeded" or .status == "failed"' 1800)"
    A_R+=("$(($(now_ms) - t0))")
    A_RPEAK+=("$(sampler_stop)")
    [ "$(jq -r .status <<<"$body")" = succeeded ] || die "restore failed: $(jq -c '{error_code, conditions}' <<<"$body")"
    restore_job="$(job_of "$restore_id" env_restore)"
    pre_id="$(jq -r .pre_backup_id <<<"$body")"
    pre_job="$(job_of "$pre_id" backup_create)"
    if [ "$pre_id" = "$backup_id" ]; then A_REUSED+=(1); else A_REUSED+=(0); fi
    A_RJ+=("$(($(ts_ms "$(jq -r .finished_at <<<"$restore_job")") - $(ts_ms "$(jq -r .started_at <<<"$restore_job")")))")
    wait_for "the environment Ready after the restore" "/api/environments/$env_id" "$ready" 300 >/dev/null
    [ "$(mariadb -N --protocol=socket --user=root -e "SELECT COUNT(*) FROM wp_pl_bench" "$db_name")" = "$rows" ] ||
        die "the restored database does not hold the $rows benchmark rows"

    log "round $round: hand restore"
    H_RP+=("$(hand parallel get "$s3_prefix-hand/r$round-p")")
    H_RS+=("$(hand sequential get "$s3_prefix-hand/r$round-p")")
    H_RV+=("$(hand verified get "$s3_prefix-hand/r$round-p")")
    # the end-to-end reference: hand backup (side by side) + hand restore checked first, same data;
    # the checked hand restore alone when Pressluft reused the fresh backup (no new backup either)
    if [ "${A_REUSED[-1]}" = 1 ]; then H_E2E+=("${H_RV[-1]}"); else H_E2E+=("$((${H_BP[-1]} + ${H_RV[-1]}))"); fi
    rm -rf "$tmp/hand-restore"
    mariadb -e "DROP DATABASE IF EXISTS \`$hand_db\`"

    round_ms=$(($(now_ms) - t_round))
    log "round $round: $(secs "$round_ms") s"
    if [ "$rounds" = auto ] && [ "$round" = 1 ] && [ $(($(now_ms) - t_start + 2 * round_ms)) -gt $((budget * 1000)) ]; then
        log "one round only: 3 would take more than $budget s"
        want=1
    fi
done

# ------------------------------------------------------------------ report ----------------------
raw_mib="$(mib "$raw_bytes")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
line() {  # LABEL MS [REFERENCE_MS TARGET]: labels in ASCII (printf pads bytes)
    local ratio="" verdict=""
    if [ $# -ge 3 ]; then
        ratio="$(ratio "$2" "$3")"
        verdict="$(awk -v a="$2" -v b="$3" -v t="$4" 'BEGIN { print (a <= t * b) ? "PASS" : "FAIL" }')"
    fi
    printf '  %-56s %6s s %7s MiB/s %7s %s\n' "$1" "$(secs "$2")" \
        "$(awk -v b="$raw_bytes" -v ms="$2" 'BEGIN { printf "%.1f", b / 1048576 / (ms / 1000) }')" "$ratio" "$verdict"
}
mb_b="$(median "${A_B[@]}")" mh_bp="$(median "${H_BP[@]}")" mh_bs="$(median "${H_BS[@]}")"
mb_r="$(median "${A_R[@]}")" mb_rj="$(median "${A_RJ[@]}")" mh_rp="$(median "${H_RP[@]}")"
mh_rs="$(median "${H_RS[@]}")" mh_rv="$(median "${H_RV[@]}")" mh_e2e="$(median "${H_E2E[@]}")"
peak_large="$(median "${A_PEAK[@]}")"
peak_max=0
for v in "${A_PEAK[@]}"; do [ "$v" -gt "$peak_max" ] && peak_max="$v"; done
growth=$((peak_max - small_peak))
echo
echo "Backup and restore benchmark (issue 7): $uploads_mb MiB uploads ($files random files) + database dump $(mib "$dump_bytes") MiB + wp-content $(mib "$files_bytes") MiB = $raw_mib MiB raw"
echo "S3: rclone serve s3 on 127.0.0.1 (scripts/s3-test-server.sh); $round round(s), medians; ratio = API / hand side by side, target <= 1.3x"
echo "  hand backup:  mariadb-dump --single-transaction --quick | zstd -3 -T0 | rclone rcat, tar uploads | zstd | rclone rcat,"
echo "                tar wp-content | zstd | rclone rcat; each hashed (sha256) while written, then read back and compared"
echo "  hand restore: streamed = rclone cat | zstd -d | mariadb (into an empty database) / | tar -x (into an empty"
echo "                directory), no checksum; checked first = all artifacts downloaded (rclone copy), every sha256"
echo "                compared with the one written, then applied side by side (what Pressluft must guarantee)"
echo "  API restore:  env_restore = each artifact read once, hashed while imported into a scratch database /"
echo "                extracted beside the live release and uploads; swapped in only when every checksum matched;"
echo "                then URL check, caches, health check (a rollback point is always there)"
printf '  %-56s %8s %13s %7s\n' backup wall throughput ratio
line "API   POST -> completed (stored $(mib "$backup_size") MiB)" "$mb_b" "$mh_bp" 1.3
line "hand  3 artifacts side by side (reference)" "$mh_bp"
line "hand  one after the other" "$mh_bs"
echo "  restore"
line "API   restore job / hand checked first (the judged ratio)" "$mb_rj" "$mh_rv" 1.3
line "API   restore job / hand streamed unchecked (reference)" "$mb_rj" "$mh_rp" 1.3
line "API   POST -> succeeded (pre-restore backup + restore)" "$mb_r"
line "hand  3 artifacts side by side, streamed (reference)" "$mh_rp"
line "hand  one after the other, streamed" "$mh_rs"
line "hand  all downloaded + checked first, then applied" "$mh_rv"
reused=0
for v in "${A_REUSED[@]}"; do reused=$((reused + v)); done
if [ "$reused" = "${#A_REUSED[@]}" ]; then
    e2e_label="API end-to-end / hand checked restore ($(secs "$mh_e2e") s)"
    echo "  (every round: the round's fresh API backup was reused as the pre-restore backup, no new backup taken)"
elif [ "$reused" = 0 ]; then
    e2e_label="API end-to-end / hand backup+checked restore ($(secs "$mh_e2e") s)"
    echo "  (every round: a new pre-restore backup was taken)"
else
    e2e_label="API end-to-end / hand (backup+)checked restore ($(secs "$mh_e2e") s)"
    echo "  ($reused of ${#A_REUSED[@]} rounds reused the fresh backup as the pre-restore backup; their hand reference has no backup)"
fi
line "$e2e_label" "$mb_r" "$mh_e2e" 1.3
printf '  API / hand one after the other: backup %s, restore job %s; restore job / hand checked first: %s\n' \
    "$(ratio "$mb_b" "$mh_bs")" "$(ratio "$mb_rj" "$mh_rs")" "$(ratio "$mb_rj" "$mh_rv")"
printf '  each round (s): API backup / hand side by side; restore job / hand streamed / hand checked; end to end / reference:'
for ((i = 0; i < ${#A_B[@]}; i++)); do
    printf ' [%s/%s; %s/%s/%s; %s/%s]' "$(secs "${A_B[$i]}")" "$(secs "${H_BP[$i]}")" "$(secs "${A_RJ[$i]}")" \
        "$(secs "${H_RP[$i]}")" "$(secs "${H_RV[$i]}")" "$(secs "${A_R[$i]}")" "$(secs "${H_E2E[$i]}")"
done
echo
echo "  control plane RSS (pressluft serve, VmRSS every 50 ms)"
printf '    idle %s MiB; peak during the small backup (%s KiB stored, %s s) %s MiB; peak during the large backups %s MiB (max %s MiB); during the restores %s MiB\n' \
    "$(mib $((idle_kb * 1024)))" "$((small_size / 1024))" "$(secs "$small_ms")" "$(mib $((small_peak * 1024)))" \
    "$(mib $((peak_large * 1024)))" "$(mib $((peak_max * 1024)))" "$(mib $(($(median "${A_RPEAK[@]}") * 1024)))"
printf '    growth small -> large: %+.1f MiB for %sx the data: %s (target: no growth with backup size, <= 8 MiB)\n' \
    "$(awk -v k="$growth" 'BEGIN { print k / 1024 }')" "$(( (backup_size + 1) / (small_size + 1) ))" \
    "$([ "$growth" -le 8192 ] && echo PASS || echo FAIL)"

echo "  where the time goes (last round)"
describe_job() {  # LABEL JOB_JSON TIMINGS_KEY
    local created started finished facts
    created="$(ts_ms "$(jq -r .created_at <<<"$2")")"
    started="$(ts_ms "$(jq -r .started_at <<<"$2")")"
    finished="$(ts_ms "$(jq -r .finished_at <<<"$2")")"
    facts="$(job_facts "$(jq -r .id <<<"$2")")"
    printf '    %s: job queued -> started %s s, started -> finished %s s; module %s\n' "$1" \
        "$(secs $((started - created)))" "$(secs $((finished - started)))" \
        "$(jq -c --arg k "$3" '.[$k] // "no timings"' <<<"${facts:-null}" 2>/dev/null || echo "no facts")"
}
describe_job "backup" "$backup_job" backup_timings_ms
describe_job "pre-restore backup$([ "${A_REUSED[-1]}" = 1 ] && echo " (reused: the round's backup)")" "$pre_job" backup_timings_ms
describe_job "restore" "$restore_job" restore_timings_ms
echo "  (module timings in ms; started -> finished minus the module's total = ansible-playbook start-up and SSH)"
