#!/usr/bin/env bash
# Create (or verify) the Python virtualenv that runs Ansible for Pressluft.
#
# Usage: scripts/ansible-venv.sh DIR
#
# Installs pinned ansible-core and ansible-lint into DIR. Idempotent and fast when DIR already
# holds exactly these versions (a stamp file is compared; no pip call). The control plane calls
# this at first start with <data-dir>/ansible-venv; afterwards use DIR/bin/ansible-playbook.
#
# Environment: PRESSLUFT_PYTHON  interpreter for the venv (default: /usr/bin/python3, else python3)
set -euo pipefail

ANSIBLE_CORE_VERSION="2.19.14"
ANSIBLE_LINT_VERSION="26.10.1"

dir="${1:-}"
if [ -z "$dir" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

stamp_want="ansible-core==${ANSIBLE_CORE_VERSION} ansible-lint==${ANSIBLE_LINT_VERSION}"
stamp="$dir/.pressluft-ansible-venv"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_want" ] \
    && [ -x "$dir/bin/ansible-playbook" ] && [ -x "$dir/bin/python" ] \
    && [ -x "$dir/bin/ansible-lint" ]; then
    exit 0
fi

py="${PRESSLUFT_PYTHON:-}"
if [ -z "$py" ]; then
    if [ -x /usr/bin/python3 ]; then py=/usr/bin/python3; else py="$(command -v python3)"; fi
fi
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "ansible-venv.sh: $py lacks the venv/ensurepip modules (apt-get install python3-venv)" >&2
    exit 1
fi

mkdir -p "$dir"
# One installer at a time (two control-plane replicas or a test run starting together).
exec 9>"$dir/.pressluft-install.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_want" ] && [ -x "$dir/bin/ansible-playbook" ]; then
        exit 0
    fi
fi
echo "ansible-venv.sh: installing ${stamp_want} into $dir" >&2
rm -f "$stamp"
if [ ! -x "$dir/bin/python" ]; then
    "$py" -m venv "$dir"
fi
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
    "ansible-core==${ANSIBLE_CORE_VERSION}" "ansible-lint==${ANSIBLE_LINT_VERSION}" >&2
"$dir/bin/ansible-playbook" --version >/dev/null
printf '%s' "$stamp_want" > "$stamp"
echo "ansible-venv.sh: ready: $dir/bin/ansible-playbook" >&2
