#!/usr/bin/env bash
# Install the Pressluft node stack (Debian 12 / Ubuntu 24.04) and make sshd reachable.
#
# Idempotent; run as root. It does NOT start nginx, PHP-FPM, MariaDB or Redis:
# provisioning (ansible/playbooks/node-provision.yml) configures and starts those.
#
# It also creates the Ansible virtualenv (scripts/ansible-venv.sh DIR).
#
# Usage: scripts/install-prereqs.sh [--venv DIR | --no-venv]
#   --venv DIR   Ansible virtualenv location (default: $PRESSLUFT_ANSIBLE_VENV,
#                else /var/lib/pressluft/ansible-venv)
#   --no-venv    skip the virtualenv
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-prereqs.sh: must be run as root (try: sudo $0)" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv_dir="${PRESSLUFT_ANSIBLE_VENV:-/var/lib/pressluft/ansible-venv}"
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv_dir="${2:?--venv needs a directory}"; shift 2 ;;
        --no-venv) venv_dir=""; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "install-prereqs.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

packages=(
    openssh-server nginx php8.2-fpm php8.2-cli php8.2-mysql php8.2-redis php8.2-xml
    php8.2-mbstring php8.2-curl php8.2-zip php8.2-gd php mariadb-server redis-server
    wordpress wordpress-theme-twentytwentythree rsync unzip curl sudo python3-pymysql
    python3-venv
    # TLS (certbot on nodes; pebble + challtestsrv as the ACME server of the tests), backups
    # (zstd; rclone: the S3 client of backup-create / env-restore / backup-cleanup)
    certbot pebble zstd rclone
    # the PostgreSQL backend's tests (scripts/test-postgres.sh)
    postgresql
    # the dashboard's browser tests (headless Chromium; web/, scripts/test-browser.sh)
    chromium
    # the versionless metapackages node-provision checks for (portable to Ubuntu's PHP 8.3)
    php-fpm php-cli php-mysql php-redis php-xml php-mbstring php-curl php-zip php-gd
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-prereqs.sh: installing: ${missing[*]}"
    # Services are configured and started by node-provision, not by package installation: keep
    # maintainer scripts from starting them (a policy-rc.d that already exists is left alone).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, scripts/install-prereqs.sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -q
    # `php` together with php8.2-fpm, otherwise apt satisfies `php` with Apache.
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${packages[@]}"
else
    echo "install-prereqs.sh: node packages already installed"
fi

# --- the dashboard's build: Node.js and npm (a newer Node.js already installed is kept) ----------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "install-prereqs.sh: installing nodejs and npm"
    apt-get update -q
    apt-get install -y -q --no-install-recommends nodejs npm
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "install-prereqs.sh: warning: Node.js $(node --version) is older than 20.19, which Vite 7 (web/) needs" >&2
fi

# --- sshd: keys only, root by key -------------------------------------------------------------
mkdir -p /etc/ssh/sshd_config.d /run/sshd /root/.ssh
chmod 0700 /root/.ssh
conf=/etc/ssh/sshd_config.d/10-pressluft.conf
want='# Managed by Pressluft scripts/install-prereqs.sh
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
MaxStartups 50:30:200
MaxSessions 50'
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$want" ]; then
    printf '%s\n' "$want" > "$conf"
    chmod 0644 "$conf"
    ssh_changed=1
else
    ssh_changed=0
fi
ssh-keygen -A >/dev/null
sshd -t

if [ -d /run/systemd/system ]; then
    systemctl enable --now ssh >/dev/null 2>&1 || systemctl enable --now sshd
    [ "$ssh_changed" = 1 ] && systemctl reload ssh 2>/dev/null || true
else
    if pgrep -x sshd >/dev/null 2>&1; then
        [ "$ssh_changed" = 1 ] && service ssh reload || true
    else
        service ssh start
    fi
fi
echo "install-prereqs.sh: sshd running"

if [ -n "$venv_dir" ]; then
    "$here/ansible-venv.sh" "$venv_dir"
fi
echo "install-prereqs.sh: done"
