#!/usr/bin/env bash
# A local ACME server for tests: Debian's `pebble` (RFC 8555 test CA) on 127.0.0.1:14000
# (management, with the issuing roots, on 127.0.0.1:15000) and `pebble-challtestsrv` as its DNS
# server on 127.0.0.1:8053 (every name resolves to 127.0.0.1, no AAAA; its management API on
# 127.0.0.1:8055; its own challenge servers disabled, so nothing but nginx binds 80/443/5001/5002).
# Pebble validates HTTP-01 on port 80 of 127.0.0.1, i.e. through this node's nginx and
# /var/www/acme. Pebble's HTTPS certificate comes from a small CA made with openssl in the state
# directory: point the ACME client at that CA (ACME_CA_FILE, certbot: REQUESTS_CA_BUNDLE).
# A failing HTTP-01 challenge for tests: make the DNS server answer SERVFAIL for a name,
#   curl -d '{"host":"NAME"}' "$ACME_DNS_MANAGEMENT_URL/set-servfail"   (undo: /clear-servfail)
#
# Usage: scripts/acme-test-server.sh start|stop|status
#   start   start both unless they run (reused when they do), wait until the directory answers,
#           and print the settings as shell assignments (eval-able):
#             ACME_DIRECTORY_URL ACME_CA_FILE ACME_ROOTS_URL ACME_DNS_MANAGEMENT_URL
#   stop    stop both (SIGTERM, then SIGKILL)
#   status  print the settings and exit 0 when both run, exit 3 when not
# Env: PRESSLUFT_ACME_TEST_DIR (default /tmp/pressluft-acme-test): pid files, logs, config, certs.
set -euo pipefail

base="${PRESSLUFT_ACME_TEST_DIR:-/tmp/pressluft-acme-test}"
config="$base/pebble-config.json"
ca_key="$base/ca.key"
ca_crt="$base/ca.crt"
srv_key="$base/pebble.key"
srv_crt="$base/pebble.crt"

settings() {
    cat <<EOF
ACME_DIRECTORY_URL=https://127.0.0.1:14000/dir
ACME_CA_FILE=$ca_crt
ACME_ROOTS_URL=https://127.0.0.1:15000/roots/0
ACME_DNS_MANAGEMENT_URL=http://127.0.0.1:8055
EOF
}

# running_pid NAME: the pid of our process NAME (pebble | challtestsrv) when it runs
running_pid() {
    local pid file="$base/$1.pid" exe
    [ -f "$file" ] || return 1
    pid="$(cat "$file" 2>/dev/null)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    exe="pebble"
    [ "$1" = challtestsrv ] && exe="pebble-challtestsrv"
    # the process must still be ours (a reused pid is not)
    [ "$(tr '\0' '\n' 2>/dev/null < "/proc/$pid/cmdline" | head -n 1 | xargs -r basename 2>/dev/null)" = "$exe" ] || return 1
    echo "$pid"
}

# alive NAME: the process we just started still runs (between writing its pid file and exec'ing
# it is still `sh`, which running_pid does not accept)
alive() {
    local pid
    pid="$(cat "$base/$1.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

answers() {
    curl -s -o /dev/null --max-time 2 --cacert "$ca_crt" https://127.0.0.1:14000/dir 2>/dev/null
}

make_certs() {
    [ -s "$ca_crt" ] && [ -s "$srv_crt" ] && [ -s "$srv_key" ] \
        && openssl x509 -checkend 86400 -noout -in "$srv_crt" >/dev/null 2>&1 && return
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=Pressluft ACME test CA" -keyout "$ca_key" -out "$ca_crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        >/dev/null 2>&1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$srv_key" -out "$base/pebble.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        > "$base/pebble.ext"
    openssl x509 -req -in "$base/pebble.csr" -CA "$ca_crt" -CAkey "$ca_key" -CAcreateserial -days 825 \
        -extfile "$base/pebble.ext" -out "$srv_crt" >/dev/null 2>&1
    rm -f "$base/pebble.csr" "$base/pebble.ext"
    chmod 0600 "$ca_key" "$srv_key"
}

start_challtestsrv() {
    running_pid challtestsrv >/dev/null && return
    # only the DNS server (and the management API): the HTTP-01 / HTTPS / TLS-ALPN challenge
    # servers are off, nginx answers the challenges
    # (the pid written by the process itself: setsid may fork)
    setsid sh -c 'echo $$ > "$0"; exec pebble-challtestsrv -management 127.0.0.1:8055 -dns01 127.0.0.1:8053 \
        -http01 "" -https01 "" -tlsalpn01 "" -defaultIPv6 "" -defaultIPv4 127.0.0.1' "$base/challtestsrv.pid" \
        </dev/null >"$base/challtestsrv.log" 2>&1 &
}

start_pebble() {
    running_pid pebble >/dev/null && return
    cat > "$config" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:14000",
    "managementListenAddress": "127.0.0.1:15000",
    "certificate": "$srv_crt",
    "privateKey": "$srv_key",
    "httpPort": 80,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
    PEBBLE_WFE_NONCEREJECT=0 PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0 \
        setsid sh -c 'echo $$ > "$0"; exec pebble -config "$1" -dnsserver 127.0.0.1:8053' "$base/pebble.pid" "$config" \
        </dev/null >"$base/pebble.log" 2>&1 &
}

stop_one() {
    local pid
    if pid="$(running_pid "$1")"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if running_pid "$1" >/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$base/$1.pid"
}

case "${1:-}" in
    start)
        for exe in pebble pebble-challtestsrv openssl curl; do
            command -v "$exe" >/dev/null || { echo "acme-test-server: $exe is not installed (apt-get install pebble)" >&2; exit 1; }
        done
        mkdir -p "$base"
        chmod 0700 "$base"
        if running_pid pebble >/dev/null && running_pid challtestsrv >/dev/null && answers; then
            settings
            exit 0
        fi
        make_certs
        start_challtestsrv
        start_pebble
        for _ in $(seq 1 50); do  # the pid files are written by the started processes
            [ -s "$base/pebble.pid" ] && [ -s "$base/challtestsrv.pid" ] && break
            sleep 0.05
        done
        for _ in $(seq 1 100); do
            if answers && running_pid challtestsrv >/dev/null; then
                settings
                exit 0
            fi
            for name in pebble challtestsrv; do
                if ! alive "$name"; then
                    echo "acme-test-server: $name exited; see $base/$name.log" >&2
                    tail -n 20 "$base/$name.log" >&2 || true
                    exit 1
                fi
            done
            sleep 0.1
        done
        echo "acme-test-server: no answer on https://127.0.0.1:14000/dir after 10 s" >&2
        tail -n 20 "$base/pebble.log" >&2 || true
        exit 1
        ;;
    stop)
        stop_one pebble
        stop_one challtestsrv
        ;;
    status)
        if running_pid pebble >/dev/null && running_pid challtestsrv >/dev/null && answers; then
            settings
            exit 0
        fi
        echo "acme-test-server: not running" >&2
        exit 3
        ;;
    *)
        sed -n '2,20p' "$0" >&2
        exit 2
        ;;
esac
