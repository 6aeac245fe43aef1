#!/usr/bin/env bash
# Page cache benchmark (issue 6): requests per second of a cached and an uncached WordPress front
# page on this machine (the local node), next to nginx serving a static file from the same server
# block, all in the same run. Target: the cached page at >= 50 % of the static file's rate.
#
# How: one real environment created the way Pressluft does it (ansible/playbooks/site-create.yml
# over SSH to root@127.0.0.1 with a fresh key and a pinned host key, flat extra-vars) with
# fastcgi_cache_enabled=true and an 8 KB static file in <root>/current/; `wrk` (keep-alive) against
# 127.0.0.1 with the preview Host header: the static file, the front page (X-FastCGI-Cache: HIT
# checked before and after), then the same environment reconciled with the cache switched off
# (site-create again, fastcgi_cache_enabled=false) and the uncached front page. Each target: one
# 1 s warm-up, then BENCH_ROUNDS rounds; the table shows req/s as the median round (min-max) and
# the median round's mean and p99 latency. env-delete removes the environment at the end, also
# when the run fails; the SSH key is removed from authorized_keys.
#
# Needs root, sshd and the node stack (scripts/install-prereqs.sh, run here unless
# PRESSLUFT_SKIP_PREREQS=1); installs the Debian package `wrk` when missing. Touches the node: on a
# shared machine run it under the node lock (flock -o /tmp/pressluft-node.lock ...). ~1.5 min.
#
# Usage: scripts/bench-page-cache.sh [--keep]   (--keep: leave the environment when the run fails)
# Knobs: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
#        BENCH_UNCACHED_CONNECTIONS (8), BENCH_UNCACHED_SECONDS (3), BENCH_STATIC_BYTES (8192),
#        PRESSLUFT_ANSIBLE_VENV (/var/lib/pressluft/ansible-venv).
# Exit status: 0 when the target is met, 1 when the run failed or the target was missed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
ansible_dir="$repo/ansible"
venv="${PRESSLUFT_ANSIBLE_VENV:-/var/lib/pressluft/ansible-venv}"
rounds="${BENCH_ROUNDS:-3}"
seconds="${BENCH_SECONDS:-5}"
conns="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"
unc_conns="${BENCH_UNCACHED_CONNECTIONS:-8}"
unc_seconds="${BENCH_UNCACHED_SECONDS:-3}"
static_bytes="${BENCH_STATIC_BYTES:-8192}"
target_pct=50

keep=0
for arg in "$@"; do
    case "$arg" in
        --keep) keep=1 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "bench-page-cache.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'bench-page-cache.sh: FAIL %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it creates a WordPress environment on this machine)"
if [ "${PRESSLUFT_SKIP_PREREQS:-0}" != 1 ]; then
    "$repo/scripts/install-prereqs.sh" --no-venv >/dev/null
fi
"$repo/scripts/ansible-venv.sh" "$venv"
if ! command -v wrk >/dev/null; then
    log "installing wrk (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q wrk >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null; }
    command -v wrk >/dev/null || fail "could not install wrk"
fi
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="$ansible_dir/ansible.cfg"
export ANSIBLE_FORCE_COLOR=0
cd "$ansible_dir"

work="$(mktemp -d /tmp/pressluft-bench-cache.XXXXXX)"
marker="pressluft-bench-cache-$(basename "$work")"
ssh_extra="-o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
created=0
measured=0

cleanup() {
    local rc=$?
    set +e
    if [ "$created" = 1 ]; then
        if [ "$rc" -ne 0 ] && [ "$keep" = 1 ] && [ "$measured" = 0 ]; then
            echo "kept the environment and $work (delete: ansible-playbook -i $work/inventory.ini -e @$work/on.json playbooks/env-delete.yml)" >&2
        else
            log "removing the environment (env-delete)"
            if ! PRESSLUFT_FACTS_FILE="$work/facts-delete.json" ansible-playbook -i "$work/inventory.ini" \
                --ssh-extra-args="$ssh_extra" -e @"$work/on.json" playbooks/env-delete.yml > "$work/delete.log" 2>&1; then
                cat "$work/delete.log" >&2
                echo "bench-page-cache.sh: env-delete failed; environment $(basename "$work") left behind" >&2
                rc=1
            fi
        fi
    fi
    if [ -f /root/.ssh/authorized_keys ]; then
        sed -i "/ $marker\$/d" /root/.ssh/authorized_keys
    fi
    if [ "$rc" -eq 0 ] || [ "$keep" = 0 ] || [ "$created" = 0 ] || [ "$measured" = 1 ]; then
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- SSH: a fresh key authorized for root, the host key pinned ---------------------------------
ssh-keygen -q -t ed25519 -N '' -C "$marker" -f "$work/id_ed25519"
mkdir -p /root/.ssh && chmod 0700 /root/.ssh
cat "$work/id_ed25519.pub" >> /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
ssh-keyscan -T 5 -t ed25519 -p 22 127.0.0.1 2>/dev/null > "$work/known_hosts"
[ -s "$work/known_hosts" ] || fail "ssh-keyscan 127.0.0.1 returned no host key (is sshd running?)"
cat > "$work/inventory.ini" <<EOF
[target]
127.0.0.1 ansible_port=22 ansible_user=root ansible_ssh_private_key_file=$work/id_ed25519
EOF

# ---- extra-vars: one environment, cache on (on.json) and the same with the cache off (off.json) -
python3 - "$work" <<'EOF'
import json, os, secrets, sys, time, uuid

work = sys.argv[1]

def uuid7():
    ms = int(time.time() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))

site_id, env_id = uuid7(), uuid7()
hexid = env_id.replace("-", "")
label = hexid[-8:]
host = "%s.127-0-0-1.sslip.io" % label
name = "pl_" + hexid[-16:]
env = {
    "site_id": site_id, "site_slug": "bench", "site_title": "Pressluft cache bench",
    "environment_id": env_id, "environment_slug": "production", "environment_type": "production",
    "environment_root": "/var/www/sites/%s/%s" % (site_id, env_id),
    "preview_url": "http://" + host, "preview_host": host, "php_version": "",
    "db_name": name, "db_user": name, "db_password": secrets.token_urlsafe(24),
    "wp_admin_login": "pl-admin-" + label, "wp_admin_email": "admin-%s@example.com" % label,
    "wp_admin_password": secrets.token_urlsafe(24),
    "redis_prefix": "pressluft_%s:" % env_id,
    "fastcgi_cache_enabled": True, "fastcgi_cache_ttl_seconds": 3600, "redis_cache_enabled": False,
    "wordpress_source_dir": "/usr/share/wordpress",
    "node_hostname": "127.0.0.1", "node_ssh_user": "root",
}
old = os.umask(0o077)
for fname, cache in (("on.json", True), ("off.json", False)):
    with open(os.path.join(work, fname), "w") as fh:
        json.dump(dict(env, fastcgi_cache_enabled=cache), fh, indent=1)
with open(os.path.join(work, "node.json"), "w") as fh:
    json.dump({"node_hostname": "127.0.0.1", "node_ssh_user": "root", "php_version": ""}, fh)
os.umask(old)
EOF

jv() { python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d=d.get(k) if isinstance(d,dict) else None
print("" if d is None else (json.dumps(d) if isinstance(d,(dict,list,bool)) else d))' "$1" "$2"; }

play() {  # NAME PLAYBOOK VARS
    local start secs
    start=$(date +%s.%N)
    if ! PRESSLUFT_FACTS_FILE="$work/facts-$1.json" ansible-playbook -i "$work/inventory.ini" \
        --ssh-extra-args="$ssh_extra" -e @"$work/$3.json" "playbooks/$2.yml" > "$work/$1.log" 2>&1; then
        cat "$work/$1.log" >&2
        fail "$2 ($1) failed"
    fi
    secs=$(python3 -c "import sys,time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$start")
    log "$2 ($1): ${secs}s, changed=$(jv "$work/facts-$1.json" _stats.changed)"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
host=$(jv "$work/on.json" preview_host)
title=$(jv "$work/on.json" site_title)

log "node-provision"
play provision node-provision node
log "site-create with fastcgi_cache_enabled=true"
created=1
play create site-create on
[ "$(jv "$work/facts-create.json" healthy)" = true ] || fail "site-create: environment not healthy"
root=$(jv "$work/facts-create.json" environment_root)
user=$(jv "$work/facts-create.json" linux_user)

# ---- the static file, in the environment's document root ---------------------------------------
static_name=pl-bench-static.html
python3 - "$root/current/$static_name" "$static_bytes" <<'EOF'
import sys
path, size = sys.argv[1], int(sys.argv[2])
head, tail = b"<!doctype html><title>static</title><pre>\n", b"\n</pre>\n"
line = b"Pressluft page cache benchmark: nginx serving a static file. " * 2 + b"\n"
body = (line * (size // len(line) + 1))[: size - len(head) - len(tail)]
with open(path, "wb") as fh:
    fh.write(head + body + tail)
EOF
chown "$user:www-data" "$root/current/$static_name"
chmod 0640 "$root/current/$static_name"

url_static="http://127.0.0.1/$static_name"
url_front="http://127.0.0.1/"

header_of() {  # URL HEADER: the header's value of a GET with the preview host
    curl -sS --max-time 30 -D - -o /dev/null -H "Host: $host" "$1" | tr -d '\r' \
        | awk -F': ' -v h="$2" 'tolower($1) == tolower(h) {print $2}'
}
check_get() {  # URL WHAT: 200 and a body with WHAT
    local code
    code=$(curl -sS --max-time 30 -o "$work/body" -w '%{http_code}' -H "Host: $host" "$1")
    if [ "$code" != 200 ] || ! grep -qF "$2" "$work/body"; then
        fail "GET $1 (Host $host): HTTP $code, body lacks '$2'"
    fi
}
check_get "$url_static" "nginx serving a static file"
[ "$(stat -c %s "$work/body")" = "$static_bytes" ] || fail "static file: $(stat -c %s "$work/body") bytes, expected $static_bytes"
check_get "$url_front" "<title>$title"
cache_status=""
for _ in 1 2 3 4 5; do
    cache_status=$(header_of "$url_front" X-FastCGI-Cache)
    [ "$cache_status" = HIT ] && break
    sleep 0.2
done
[ "$cache_status" = HIT ] || fail "front page: X-FastCGI-Cache is '$cache_status', expected HIT"
log "front page: X-FastCGI-Cache: HIT"

# ---- wrk -----------------------------------------------------------------------------------------
# bench KEY URL CONNECTIONS THREADS SECONDS: a 1 s warm-up, then $rounds rounds; one line per round
# in $work/KEY.rounds: req/s mean_ms p99_ms
to_ms() {  # wrk duration (123.45us, 1.23ms, 1.02s, 2.00m) -> milliseconds
    awk -v d="$1" 'BEGIN {
        n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f < 0) exit 0
        printf "%.3f", n * f }'
}
bench() {
    local key=$1 url=$2 c=$3 t=$4 d=$5 i out rps mean p99 bad
    : > "$work/$key.rounds"
    wrk -t "$t" -c "$c" -d 1s -H "Host: $host" "$url" > /dev/null
    for ((i = 1; i <= rounds; i++)); do
        out=$(wrk -t "$t" -c "$c" -d "${d}s" --latency -H "Host: $host" "$url")
        echo "$out" > "$work/$key.$i.wrk"
        bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
        [ -z "$bad" ] || { echo "$out" >&2; fail "$key: $bad non-2xx/3xx responses"; }
        if grep -q 'Socket errors:.*timeout [1-9]' <<<"$out"; then echo "$out" >&2; fail "$key: request timeouts"; fi
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        mean=$(to_ms "$(awk '$1 == "Latency" && NF >= 4 {print $2; exit}' <<<"$out")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2; exit}' <<<"$out")")
        if [ -z "$rps" ] || [ -z "$mean" ] || [ -z "$p99" ]; then echo "$out" >&2; fail "$key: cannot parse wrk output"; fi
        echo "$rps $mean $p99" >> "$work/$key.rounds"
        log "$key round $i: $rps req/s, mean ${mean} ms, p99 ${p99} ms"
    done
}

log "static file: $rounds x ${seconds}s, $conns connections, $threads threads"
bench static "$url_static" "$conns" "$threads" "$seconds"
log "cached front page: $rounds x ${seconds}s, $conns connections, $threads threads"
bench cached "$url_front" "$conns" "$threads" "$seconds"
cache_status=$(header_of "$url_front" X-FastCGI-Cache)
[ "$cache_status" = HIT ] || fail "after the cached run: X-FastCGI-Cache is '$cache_status', expected HIT"

log "site-create with fastcgi_cache_enabled=false (the same environment, cache switched off)"
play uncache site-create off
[ -z "$(header_of "$url_front" X-FastCGI-Cache)" ] || fail "cache switched off, but the front page still has X-FastCGI-Cache"
check_get "$url_front" "<title>$title"
log "uncached front page: $rounds x ${unc_seconds}s, $unc_conns connections, $threads threads"
bench uncached "$url_front" "$unc_conns" "$threads" "$unc_seconds"

# ---- report --------------------------------------------------------------------------------------
summary() {  # KEY -> "median min max mean_ms p99_ms" (latencies of the median round)
    sort -g -k1,1 "$work/$1.rounds" | awk '{r[NR] = $1; m[NR] = $2; p[NR] = $3}
        END {k = int((NR + 1) / 2); printf "%s %s %s %s %s\n", r[k], r[1], r[NR], m[k], p[k]}'
}
read -r s_med s_min s_max s_mean s_p99 <<<"$(summary static)"
read -r c_med c_min c_max c_mean c_p99 <<<"$(summary cached)"
read -r u_med u_min u_max u_mean u_p99 <<<"$(summary uncached)"

echo
echo "Page cache benchmark: $(nproc) CPUs, nginx $(nginx -v 2>&1 | sed 's|.*/||'), PHP $(php -r 'echo PHP_VERSION;'), wrk keep-alive to 127.0.0.1, Host $host"
echo "load average at start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other load skews the figures)"
echo "req/s: median of $rounds rounds (min-max); latency: mean and p99 of the median round"
printf '%-22s %-26s %10s %10s %10s\n' target load "req/s" "mean ms" "p99 ms"
row() {  # label load med min max mean p99
    printf '%-22s %-26s %10.0f %10.2f %10.2f   (%.0f-%.0f)\n' "$1" "$2" "$3" "$6" "$7" "$4" "$5"
}
row "static file ($((static_bytes / 1024)) KB)" "${conns}c/${threads}t x ${seconds}s" "$s_med" "$s_min" "$s_max" "$s_mean" "$s_p99"
row "cached front page" "${conns}c/${threads}t x ${seconds}s" "$c_med" "$c_min" "$c_max" "$c_mean" "$c_p99"
row "uncached front page" "${unc_conns}c/${threads}t x ${unc_seconds}s" "$u_med" "$u_min" "$u_max" "$u_mean" "$u_p99"
pct=$(awk -v c="$c_med" -v s="$s_med" 'BEGIN {printf "%.1f", 100 * c / s}')
ratio=$(awk -v c="$c_med" -v u="$u_med" 'BEGIN {printf "%.1f", c / u}')
if awk -v p="$pct" -v t="$target_pct" 'BEGIN {exit !(p >= t)}'; then verdict=PASS; else verdict=FAIL; fi
echo "cached/static = $pct % (target >= $target_pct %): $verdict"
echo "cached/uncached = ${ratio}x"
echo "run time so far: ${SECONDS}s (env-delete follows)"
echo
measured=1
[ "$verdict" = PASS ]
