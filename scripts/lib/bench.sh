# Shared by the benchmarks (scripts/bench-*.sh): timing helpers, the API client, and the real
# `pressluft serve` release binary started on a free port with a fresh data directory and this
# machine as its local node. Source it after setting `bench_name`; it creates "$tmp" (0700).
# The caller's cleanup calls bench_delete_site and bench_stop_server.
# shellcheck shell=bash
# shellcheck disable=SC2034  # variables for the sourcing script (ready, data, node_id, bin)
: "${bench_name:?set bench_name before sourcing scripts/lib/bench.sh}"

log() { printf '[%s %s] %s\n' "$bench_name" "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now_ms() { local t="${EPOCHREALTIME/./}"; echo $((t / 1000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ts_ms() { date -d "$1" +%s%3N; }

tmp="$(mktemp -d "/tmp/pressluft-$bench_name.XXXXXX")"
chmod 0700 "$tmp"
server_pid=""
base=""
data="$tmp/data"
playbook_bin=/var/lib/pressluft/ansible-venv/bin/ansible-playbook
export PATH="/var/lib/pressluft/ansible-venv/bin:$PATH"

# api METHOD PATH [JSON]: the body of a 2xx answer on stdout; anything else fails the run.
api() {
    local code
    code="$(api_code "$@")"
    case "$code" in
        2*) cat "$tmp/resp" ;;
        *) log "$1 $2: HTTP $code $(head -c 800 "$tmp/resp")"; return 1 ;;
    esac
}
# api_code METHOD PATH [JSON]: the HTTP status on stdout, the body in $tmp/resp.
api_code() {
    local args=(-sS -X "$1" -H "@$tmp/auth.hdr" -o "$tmp/resp" -w '%{http_code}' --max-time 60)
    [ $# -lt 3 ] || args+=(-H 'content-type: application/json' --data-binary "$3")
    curl "${args[@]}" "$base$2" || echo 000
}
server_alive() { kill -0 "$server_pid" 2>/dev/null || die "pressluft serve exited; log: $(tail -n 20 "$tmp/server.log")"; }
# wait_for WHAT PATH JQ TIMEOUT_S: polls every 0.1 s until the jq filter is true; the body on stdout.
wait_for() {
    local deadline=$(($(now_ms) + $4 * 1000)) body
    while :; do
        server_alive
        body="$(api GET "$2")" || true
        if [ -n "$body" ] && jq -e "$3" >/dev/null 2>&1 <<<"$body"; then
            printf '%s' "$body"
            return 0
        fi
        [ "$(now_ms)" -lt "$deadline" ] || die "timed out waiting for $1: $body"
        # a short poll: the wall time measured includes on average half of it
        sleep 0.02
    done
}
ready='.status == "active" and any(.conditions[]?; .type == "Ready" and .status == "True")'
job_facts() { sqlite3 -readonly "$data/pressluft.db" "SELECT facts_json FROM jobs WHERE id = '$1'" 2>/dev/null || true; }

# bench_login_shell_note: what each SSH command costs on this machine before it runs - sshd starts
# the user's login shell, and bash reads ~/.bashrc when sshd starts it (here root's, which may run
# e.g. `pyenv init`). Pressluft pays it for every SSH session of a job (the hand copy never does);
# a node whose root has no such .bashrc pays ~0. Printed as context, median of 5.
bench_login_shell_note() {
    local i t0 rc=() plain=()
    for ((i = 0; i < 5; i++)); do
        t0="$(now_ms)"; env -u SHLVL SSH_CLIENT="127.0.0.1 40000 22" bash -c true </dev/null >/dev/null 2>&1; rc+=($(($(now_ms) - t0)))
        t0="$(now_ms)"; bash --norc --noprofile -c true </dev/null >/dev/null 2>&1; plain+=($(($(now_ms) - t0)))
    done
    printf '  this machine: a shell started by sshd (reading ~/.bashrc) takes %s ms, without it %s ms; each job pays it once per SSH session\n' \
        "$(median "${rc[@]}")" "$(median "${plain[@]}")"
}

# bench_binary: $bin = BENCH_BIN (a release binary built beforehand, outside the node lock) or the
# release build of this tree (CARGO_TARGET_DIR keeps it apart from debug builds).
bench_binary() {
    if [ -n "${BENCH_BIN:-}" ]; then
        bin="$BENCH_BIN"
        [ -x "$bin" ] || die "BENCH_BIN=$bin is not an executable"
        log "using the release binary $bin (BENCH_BIN)"
    else
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
        log "building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
        cargo build --release --quiet --bin pressluft
        bin="$CARGO_TARGET_DIR/release/pressluft"
        [[ "$bin" = /* ]] || bin="$PWD/$bin"
    fi
}

# bench_start_server: `$bin serve` on a free loopback port ($base), logged in with an API token in
# $tmp/auth.hdr; then waits until the local node ($node_id) is active.
bench_start_server() {
    local port password token i
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    base="http://127.0.0.1:$port"
    password="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    log "starting pressluft serve on 127.0.0.1:$port (log: $tmp/server.log)"
    PRESSLUFT_ADMIN_EMAIL=bench@example.com PRESSLUFT_ADMIN_PASSWORD="$password" \
        PRESSLUFT_ANSIBLE_PLAYBOOK="$playbook_bin" PRESSLUFT_RETRY_BACKOFF_BASE=1s PRESSLUFT_RETRY_BACKOFF_MAX=2s \
        PRESSLUFT_LOG=info "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" \
        </dev/null >/dev/null 2>"$tmp/server.log" &
    server_pid=$!
    for ((i = 0; i < 1200; i++)); do
        server_alive
        curl -sf -o /dev/null "$base/api/healthz" 2>/dev/null && break
        sleep 0.1
    done
    jq -n --arg e bench@example.com --arg p "$password" '{email: $e, password: $p}' |
        curl -sS -f -c "$tmp/cookies" -H 'content-type: application/json' --data-binary @- "$base/api/login" >/dev/null
    token="$(curl -sS -f -b "$tmp/cookies" -H 'X-Pressluft-CSRF: 1' -H 'content-type: application/json' \
        -d "{\"name\":\"$bench_name\"}" "$base/api/tokens" | jq -r .token)"
    [[ -n "$token" && "$token" != null ]] || die "no API token"
    (umask 077; printf 'Authorization: Bearer %s\n' "$token" >"$tmp/auth.hdr")
}

bench_wait_local_node() {
    node_id="$(api GET /api/nodes | jq -r '[.items[] | select(.is_local == true)][0].id')"
    [[ -n "$node_id" && "$node_id" != null ]] || die "no local node"
    log "waiting for the local node to be active"
    wait_for "the local node" "/api/nodes/$node_id" '.status == "active"' 900 >/dev/null
}

# bench_delete_site SITE_ID: deletes the site through the API and waits (300 s) until it is gone.
bench_delete_site() {
    [ -n "$1" ] && [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null || return 0
    log "cleanup: deleting the site through the API"
    local sv code i
    sv="$(api GET "/api/sites/$1" | jq -r .state_version)"
    api DELETE "/api/sites/$1?state_version=$sv" >/dev/null
    for ((i = 0; i < 300; i++)); do
        code="$(api_code GET "/api/sites/$1")"
        [ "$code" = 404 ] && break
        sleep 1
    done
    [ "$code" = 404 ] || log "cleanup: the site $1 is still there after 300 s (see $tmp/server.log)"
}

# bench_stop_server RC: stops the server (TERM, then KILL after 40 s); keeps its log when RC != 0.
bench_stop_server() {
    local i
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null
        for ((i = 0; i < 400; i++)); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    if [ "$1" != 0 ] && [ -f "$tmp/server.log" ]; then
        cp "$tmp/server.log" "/tmp/pressluft-$bench_name-server.log" 2>/dev/null
        log "server log kept at /tmp/pressluft-$bench_name-server.log"
    fi
}

# bench_ratio A B: A / B as "1.23x".
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# bench_line LABEL MS [REFERENCE_MS TARGET]: one report row: wall seconds, MiB/s of $raw_bytes, and
# with a reference the ratio and PASS when MS <= TARGET x REFERENCE_MS.
bench_line() {
    local ratio="" verdict=""
    if [ $# -ge 3 ]; then
        ratio="$(bench_ratio "$2" "$3")"
        verdict="$(awk -v a="$2" -v b="$3" -v t="$4" 'BEGIN { print (a <= t * b) ? "PASS" : "FAIL" }')"
    fi
    printf '  %-64s %6s s %7s MiB/s %7s %s\n' "$1" "$(secs "$2")" \
        "$(awk -v b="$raw_bytes" -v ms="$2" 'BEGIN { printf "%.1f", b / 1048576 / (ms / 1000) }')" "$ratio" "$verdict"
}

# bench_fill DB UPLOADS_DIR [URL]: the benchmark's data: ~$db_mb MiB of ~1 KiB rows of random hex in
# the table wp_pl_bench of DB (with URL, a meta_value naming it every 64th row, so a URL rewrite has
# something to do) and $uploads_mb MiB of random (incompressible) files in UPLOADS_DIR/2025/01,
# owned and moded like UPLOADS_DIR. Sets $rows and $files.
bench_fill() {
    local db="$1" uploads="$2" url="${3:-}" prefix="''" owner i
    [ -n "$url" ] && prefix="IF(seq % 64 = 0, '$url/', '')"
    log "filling the database with ~$db_mb MiB and the uploads with $uploads_mb MiB of random data"
    rows=$((db_mb * 1024))
    mariadb --protocol=socket --user=root "$db" <<SQL
CREATE TABLE wp_pl_bench (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, meta_key VARCHAR(191),
  meta_value LONGTEXT, KEY meta_key (meta_key)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO wp_pl_bench (meta_key, meta_value)
  SELECT CONCAT('bench_', seq), CONCAT($prefix, SHA2(RAND(), 512), SHA2(RAND(), 512),
    SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512))
  FROM seq_1_to_${rows};
SQL
    owner="$(stat -c %u:%g "$uploads")"
    files=8
    mkdir -p "$uploads/2025/01"
    for ((i = 1; i <= files; i++)); do
        head -c "$((uploads_mb * 1048576 / files))" /dev/urandom >"$uploads/2025/01/bench-$i.bin"
    done
    chown -R "$owner" "$uploads/2025"
    find "$uploads/2025" -type d -exec chmod 2750 {} +
    find "$uploads/2025" -type f -exec chmod 0640 {} +
}
