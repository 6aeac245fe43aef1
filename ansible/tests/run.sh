#!/usr/bin/env bash
# Pressluft Ansible tests.
#
#   (a) static: `ansible-playbook --syntax-check` of every playbook and `ansible-lint` (production),
#       the modules' Python unit tests (ansible/tests/test_*.py)
#   (b) end-to-end over REAL SSH to 127.0.0.1 as root (a fresh ed25519 key in
#       /root/.ssh/authorized_keys, host key pinned from ssh-keyscan): node-provision, two sites
#       (site-create) plus a staging environment (env-create), HTTP / wp-login / one-time login
#       checks, isolation between environments, idempotency (every playbook again: changed=0),
#       health-check, env-delete of all three and proof that nothing is left.
#
# Usage: ansible/tests/run.sh [--static] [--e2e] [--keep]
#   --static  only (a);  --e2e  only (b);  --keep  leave the environments when (b) fails
# Env:   PRESSLUFT_ANSIBLE_VENV  virtualenv with ansible-core + ansible-lint
#                                (default /var/lib/pressluft/ansible-venv; created when missing)
#        PRESSLUFT_SKIP_PREREQS=1  do not run scripts/install-prereqs.sh before (b)
# Exit status: 0 when everything passed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ansible_dir="$(dirname "$here")"
repo="$(dirname "$ansible_dir")"
venv="${PRESSLUFT_ANSIBLE_VENV:-/var/lib/pressluft/ansible-venv}"

run_static=1
run_e2e=1
keep=0
for arg in "$@"; do
    case "$arg" in
        --static) run_e2e=0 ;;
        --e2e) run_static=0 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ok() { printf '  ok   %s\n' "$*"; }
fail() { printf '  FAIL %s\n' "$*" >&2; exit 1; }

"$repo/scripts/ansible-venv.sh" "$venv"
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="$ansible_dir/ansible.cfg"
export ANSIBLE_FORCE_COLOR=0
cd "$ansible_dir"

playbooks=(node-provision site-create env-create env-delete health-check domain-add domain-remove
           backup-create backup-cleanup env-restore)

# ------------------------------------------------------------------------------------------------
if [ "$run_static" = 1 ]; then
    log "(a) syntax-check and ansible-lint"
    for pb in playbooks/*.yml; do
        ansible-playbook -i 127.0.0.1, --syntax-check "$pb" >/dev/null || fail "syntax-check $pb"
        ok "syntax-check $pb"
    done
    ansible-lint --profile production -q || fail "ansible-lint"
    ok "ansible-lint (profile production)"
    python3 -m py_compile library/*.py callback_plugins/*.py || fail "python modules do not compile"
    if command -v php >/dev/null; then
        for f in files/*.php; do php -l "$f" >/dev/null || fail "php -l $f"; done
        ok "php -l files/*.php"
    fi
    for t in tests/test_*.py; do
        python3 "$t" >/dev/null 2>&1 || { python3 "$t"; fail "unit tests $t"; }
        ok "unit tests $t"
    done
fi
[ "$run_e2e" = 1 ] || exit 0

# ------------------------------------------------------------------------------------------------
log "(b) end-to-end over SSH to root@127.0.0.1"
[ "$(id -u)" -eq 0 ] || fail "the end-to-end test must run as root"
if [ "${PRESSLUFT_SKIP_PREREQS:-0}" != 1 ]; then
    "$repo/scripts/install-prereqs.sh" --no-venv >/dev/null
fi

work="$(mktemp -d /tmp/pressluft-ansible-test.XXXXXX)"
marker="pressluft-ansible-test-$(basename "$work")"
declare -A created=()
declare -a timings=()
tests_passed=0

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" -ne 0 ] && [ "$keep" = 0 ] && [ "${#created[@]}" -gt 0 ]; then
        echo "cleaning up after failure (use --keep to inspect)..." >&2
        for name in "${!created[@]}"; do
            PRESSLUFT_FACTS_FILE="$work/cleanup-$name.json" ansible-playbook -i "$work/inventory.ini" \
                --ssh-extra-args="$ssh_extra" -e @"$work/$name.json" playbooks/env-delete.yml >/dev/null 2>&1
        done
    fi
    if [ -f /root/.ssh/authorized_keys ]; then
        sed -i "/ $marker\$/d" /root/.ssh/authorized_keys
    fi
    if [ "$rc" -ne 0 ] && [ "$keep" = 1 ]; then
        echo "kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT

# SSH: a fresh key authorized for root, the host key pinned from ssh-keyscan
ssh-keygen -q -t ed25519 -N '' -C "$marker" -f "$work/id_ed25519"
mkdir -p /root/.ssh && chmod 0700 /root/.ssh
cat "$work/id_ed25519.pub" >> /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
ssh-keyscan -T 5 -t ed25519 -p 22 127.0.0.1 2>/dev/null > "$work/known_hosts"
[ -s "$work/known_hosts" ] || fail "ssh-keyscan 127.0.0.1 returned no host key (is sshd running?)"
ssh_extra="-o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
cat > "$work/inventory.ini" <<EOF
[target]
127.0.0.1 ansible_port=22 ansible_user=root ansible_ssh_private_key_file=$work/id_ed25519
EOF
ssh -i "$work/id_ed25519" $ssh_extra -o BatchMode=yes root@127.0.0.1 true || fail "ssh root@127.0.0.1 with the test key"
ok "ssh with a fresh key and pinned host key"

# Extra-vars (flat, as Pressluft writes them) for three environments with fresh ids
python3 - "$work" <<'EOF'
import json, os, secrets, sys, time, uuid

work = sys.argv[1]

def uuid7():
    ms = int(time.time() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))

def env(site_id, env_id, site_slug, slug, typ):
    hexid = env_id.replace("-", "")
    label = hexid[-8:]
    host = "%s.127-0-0-1.sslip.io" % label
    name = "pl_" + hexid[-16:]
    return {
        "site_id": site_id, "site_slug": site_slug, "site_title": "Pressluft %s %s" % (site_slug, slug),
        "environment_id": env_id, "environment_slug": slug, "environment_type": typ,
        "environment_root": "/var/www/sites/%s/%s" % (site_id, env_id),
        "preview_url": "http://" + host, "preview_host": host, "php_version": "",
        "db_name": name, "db_user": name,
        "db_password": "db'" + secrets.token_urlsafe(18) + "\\x",
        "wp_admin_login": "pl-admin-" + label, "wp_admin_email": "admin-%s@example.com" % label,
        "wp_admin_password": "pw $&!% " + secrets.token_urlsafe(18),
        "redis_prefix": "pressluft_%s:" % env_id,
        "fastcgi_cache_enabled": typ == "production", "redis_cache_enabled": False,
        "wordpress_source_dir": "/usr/share/wordpress",
        "node_hostname": "127.0.0.1", "node_ssh_user": "root",
    }

site1, site2 = uuid7(), uuid7()
envs = {
    "a": env(site1, uuid7(), "alpha", "production", "production"),
    "b": env(site2, uuid7(), "bravo", "production", "production"),
    "c": env(site1, uuid7(), "alpha", "staging", "staging"),
    # its admin password cannot work with wp-login.php: the helper refuses it, site-create fails
    "d": dict(env(uuid7(), uuid7(), "delta", "production", "production"), wp_admin_password="bad'" + secrets.token_hex(10)),
    # never created: env-delete must tolerate it
    "ghost": env(uuid7(), uuid7(), "ghost", "production", "production"),
}
for name, data in envs.items():
    with open(os.path.join(work, name + ".json"), "w") as fh:
        json.dump(data, fh, indent=1)
with open(os.path.join(work, "node.json"), "w") as fh:
    json.dump({"node_hostname": "127.0.0.1", "node_ssh_user": "root", "php_version": ""}, fh)
EOF

# jq-less JSON access: jv FILE KEY.PATH
jv() { python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d=d.get(k) if isinstance(d,dict) else None
print("" if d is None else (json.dumps(d) if isinstance(d,(dict,list,bool)) else d))' "$1" "$2"; }

# play NAME PLAYBOOK VARS [expect_rc]  -> facts in $work/facts-NAME.json, log in $work/NAME.log
play() {
    local name="$1" pb="$2" vars="$3" expect="${4:-0}" start end rc
    start=$(date +%s.%N)
    set +e
    PRESSLUFT_FACTS_FILE="$work/facts-$name.json" ansible-playbook -i "$work/inventory.ini" \
        --ssh-extra-args="$ssh_extra" -e @"$work/$vars.json" "playbooks/$pb.yml" > "$work/$name.log" 2>&1
    rc=$?
    set -e
    end=$(date +%s.%N)
    local secs
    secs=$(python3 -c "print('%.1f' % ($end - $start))")
    timings+=("$(printf '%-20s %-15s %6ss  changed=%-2s %s' "$name" "$pb" "$secs" \
        "$(jv "$work/facts-$name.json" _stats.changed 2>/dev/null)" \
        "$(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
steps = d.get("environment_timings_ms") or {}
print(" ".join("%s=%.1f" % ((t["task"] or "?").split()[0].lower(), (t["ms"] or 0) / 1000) for t in d.get("_tasks", []) if t["status"] != "skipped")
      + ("  [module ms: %s]" % " ".join("%s=%s" % kv for kv in sorted(steps.items())) if steps else ""))' \
            "$work/facts-$name.json" 2>/dev/null)")")
    if [ "$rc" != "$expect" ]; then
        cat "$work/$name.log" >&2
        fail "$pb ($name) exited $rc, expected $expect"
    fi
    ok "$pb ($name) in ${secs}s"
}

expect_changed() {  # NAME N
    local got
    got=$(jv "$work/facts-$1.json" _stats.changed)
    [ "$got" = "$2" ] || { cat "$work/$1.log" >&2; fail "$1: changed=$got, expected $2"; }
}

expect_fact() {  # NAME KEY VALUE
    local got
    got=$(jv "$work/facts-$1.json" "$2")
    [ "$got" = "$3" ] || fail "$1: $2=$got, expected $3"
}

# ---- provisioning and creation -----------------------------------------------------------------
play provision node-provision node
expect_fact provision php_version "$(php -r 'echo PHP_MAJOR_VERSION.".".PHP_MINOR_VERSION;')"
expect_fact provision node_provisioned true

play create-a site-create a
created[a]=1
play create-b site-create b
created[b]=1
play create-c env-create c
created[c]=1
for e in a b c; do
    expect_fact "create-$e" healthy true
    expect_fact "create-$e" environment_present true
    expect_fact "create-$e" wordpress_install.installed true
    expect_fact "create-$e" health_checks.http.ok true
    expect_fact "create-$e" health_checks.database.ok true
    expect_fact "create-$e" health_checks.wordpress_installed.ok true
done
ok "facts: healthy, installed, HTTP/DB/installed checks pass for a, b, c"
# the module payloads' bytecode cache (node-provision): in the modules' Python, filled by the runs
pysite=$(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])')
[ -f "$pysite/pressluft-bytecode.pth" ] && [ -f "$pysite/pressluft_bytecode.py" ] || fail "bytecode cache not installed in $pysite"
[ "$(stat -c '%U %a' /var/cache/pressluft/python)" = "root 700" ] || fail "/var/cache/pressluft/python: $(stat -c '%U %a' /var/cache/pressluft/python)"
[ -n "$(find /var/cache/pressluft/python -type f -print -quit)" ] || fail "no module run stored its bytecode"
ok "bytecode cache for module payloads installed ($pysite) and filled by the runs"

# per-environment values
declare -A host user uid root pool conf db
for e in a b c; do
    uid[$e]=$(jv "$work/facts-create-$e.json" linux_uid)
    host[$e]=$(jv "$work/$e.json" preview_host)
    user[$e]=$(jv "$work/facts-create-$e.json" linux_user)
    root[$e]=$(jv "$work/facts-create-$e.json" environment_root)
    pool[$e]=$(jv "$work/facts-create-$e.json" fpm_pool)
    conf[$e]=$(jv "$work/facts-create-$e.json" nginx_server_block)
    db[$e]=$(jv "$work/facts-create-$e.json" db_name)
done

# ---- HTTP --------------------------------------------------------------------------------------
for e in a b c; do
    title=$(jv "$work/$e.json" site_title)
    body=$(curl -sS --max-time 10 -H "Host: ${host[$e]}" http://127.0.0.1/)
    grep -q "<title>$title" <<<"$body" || fail "$e: front page lacks <title>$title"
    grep -q "/wp-content/" <<<"$body" || fail "$e: front page lacks /wp-content/"
    code=$(curl -sS --max-time 10 -o "$work/login-$e.html" -w '%{http_code}' -H "Host: ${host[$e]}" http://127.0.0.1/wp-login.php)
    [ "$code" = 200 ] && grep -q 'id="loginform"' "$work/login-$e.html" || fail "$e: /wp-login.php (HTTP $code)"
done
ok "front page (WordPress, own title) and /wp-login.php answer for a, b, c"
# IPv6: the server blocks listen on [::] as well wherever the kernel has IPv6 (issue 12, item 5)
if [ -e /proc/net/if_inet6 ] && grep -q ' lo$' /proc/net/if_inet6; then
    grep -q 'listen \[::\]:80;' "${conf[a]}" || fail "a: the server block does not listen on [::]:80"
    body=$(curl -sS -g --max-time 10 -H "Host: ${host[a]}" 'http://[::1]/') || fail "a: no answer over IPv6 ([::1]:80)"
    grep -q "<title>$(jv "$work/a.json" site_title)" <<<"$body" || fail "a: the front page over IPv6 is not a's"
    ok "a answers over IPv6 too ([::1]:80, same server block)"
fi
headers=$(curl -sS -D - -o /dev/null -H "Host: ${host[a]}" http://127.0.0.1/)
for h in 'X-Content-Type-Options: nosniff' 'X-Frame-Options: SAMEORIGIN' 'Referrer-Policy: strict-origin-when-cross-origin' 'X-FastCGI-Cache:'; do
    grep -qi "^$h" <<<"$headers" || fail "a: response lacks header $h"
done
headers_c=$(curl -sS -D - -o /dev/null -H "Host: ${host[c]}" http://127.0.0.1/)
! grep -qi '^X-FastCGI-Cache:' <<<"$headers_c" || fail "c: FastCGI cache header although fastcgi_cache_enabled is false"
grep -qi '^X-Frame-Options: SAMEORIGIN' <<<"$headers_c" || fail "c: security headers missing"
ok "security headers; X-FastCGI-Cache only where the cache is enabled"
cache_status() { # host [curl args...]: the X-FastCGI-Cache value of GET /
    local h=$1; shift
    curl -sS -D - -o /dev/null -H "Host: $h" "$@" http://127.0.0.1/ | tr -d '\r' \
        | awk -F': ' 'tolower($1) == "x-fastcgi-cache" {print $2}'
}
cache_status "${host[a]}" >/dev/null
[ "$(cache_status "${host[a]}")" = HIT ] || fail "a: repeated anonymous GET / is not a cache HIT"
[ "$(cache_status "${host[a]}" -H 'Cookie: wordpress_logged_in_0123=x')" = BYPASS ] \
    || fail "a: a logged-in request is not a BYPASS"
[ "$(curl -sS -D - -o /dev/null -H "Host: ${host[a]}" 'http://127.0.0.1/?s=x' | tr -d '\r' \
    | awk -F': ' 'tolower($1) == "x-fastcgi-cache" {print $2}')" = BYPASS ] || fail "a: a query string is not a BYPASS"
cache_a=/var/cache/nginx/pressluft/$(jv "$work/a.json" environment_id)
[ -n "$(find "$cache_a" -type f 2>/dev/null | head -1)" ] || fail "a: no page in its own cache directory $cache_a"
ok "page cache: anonymous GET / cached (HIT), logged-in and query-string requests BYPASS, pages in the environment's own directory"
set +e
curl -sS --max-time 5 -o /dev/null -H "Host: unknown.invalid" http://127.0.0.1/ 2>/dev/null
rc=$?
set -e
[ "$rc" = 52 ] || fail "unknown host: expected the connection closed (444, curl 52), got curl rc $rc"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${host[a]}" http://127.0.0.1/wp-config.php)
[ "$code" = 403 ] || fail "wp-config.php: HTTP $code, expected 403"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Host: ${host[a]}" http://127.0.0.1/)
[ "$code" = 403 ] || fail "DELETE: HTTP $code, expected 403 (7G)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${host[a]}" "http://127.0.0.1/?p=../../etc/passwd")
[ "$code" = 403 ] || fail "traversal query: HTTP $code, expected 403 (7G)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${host[a]}" http://127.0.0.1/.env)
[ "$code" = 403 ] || fail "/.env: HTTP $code, expected 403"
ok "default server closes unknown hosts; wp-config.php, dotfiles, DELETE and traversal denied"

# ---- one-time login ----------------------------------------------------------------------------
out=$(cd / && runuser -u "${user[a]}" -- php /usr/local/lib/pressluft/pressluft-helper.php \
      --path="${root[a]}/current" login-token --user "$(jv "$work/a.json" wp_admin_login)" --ttl 60)
url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["url"])' "$out")
path="/${url#http://*/}"
resp=$(curl -sS -D - -o /dev/null -H "Host: ${host[a]}" "http://127.0.0.1$path")
grep -q '^HTTP/1.1 302' <<<"$resp" && grep -qi '^Set-Cookie: wordpress_logged_in_' <<<"$resp" \
    && grep -qi "^Location: http://${host[a]}/wp-admin/" <<<"$resp" || fail "login token: no login ($resp)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: ${host[a]}" "http://127.0.0.1$path")
[ "$code" = 403 ] || fail "login token accepted twice (HTTP $code)"
ok "login-token: one-time login sets the auth cookie, a second use is refused"
resp=$(curl -sS -D - -o /dev/null -H "Host: ${host[b]}" -b 'wordpress_test_cookie=WP%20Cookie%20check' \
    --data-urlencode "log=$(jv "$work/b.json" wp_admin_login)" --data-urlencode "pwd=$(jv "$work/b.json" wp_admin_password)" \
    --data-urlencode 'testcookie=1' http://127.0.0.1/wp-login.php)
grep -qi '^Set-Cookie: wordpress_logged_in_' <<<"$resp" || fail "b: password login with wp_admin_password failed"
ok "password login with wp_admin_password (passed to the helper on stdin)"

# ---- isolation ---------------------------------------------------------------------------------
[ "${user[a]}" != "${user[b]}" ] && [ "${user[a]}" != "${user[c]}" ] && [ "${user[b]}" != "${user[c]}" ] || fail "users not distinct"
[ "${pool[a]}" != "${pool[b]}" ] && [ "${pool[a]}" != "${pool[c]}" ] || fail "pools not distinct"
[ "${db[a]}" != "${db[b]}" ] && [ "${db[a]}" != "${db[c]}" ] || fail "databases not distinct"
for e in a b c; do
    [ "$(stat -c '%U:%G %a' "${root[$e]}")" = "${user[$e]}:www-data 2750" ] || fail "$e: root owner/mode $(stat -c '%U:%G %a' "${root[$e]}")"
    [ "$(stat -c '%a' "${root[$e]}/shared/wp-config.php")" = 600 ] || fail "$e: wp-config.php not 0600"
    grep -q "^user = ${user[$e]}\$" "${pool[$e]}" && grep -q "^php_admin_value\[open_basedir\] = ${root[$e]}/\$" "${pool[$e]}" || fail "$e: pool user/open_basedir"
done
[ "$(stat -c '%a' "$(dirname "${root[a]}")")" = 711 ] || fail "site directory not 0711"
ok "distinct users, pools, databases; owners and modes as specified"

probe="${root[a]}/current/pl-isolation-probe.php"
cat > "$probe" <<EOF
<?php
header('Content-Type: application/json');
echo json_encode(array(
    'user' => posix_getpwuid(posix_geteuid())['name'],
    'own_config' => is_readable(__DIR__ . '/wp-config.php'),
    'b_config' => @file_get_contents('${root[b]}/shared/wp-config.php'),
    'c_config' => @file_get_contents('${root[c]}/shared/wp-config.php'),
    'c_listing' => @scandir('${root[c]}'),
    'etc_passwd' => @file_get_contents('/etc/passwd'),
    'exec' => function_exists('exec') || function_exists('shell_exec') || function_exists('proc_open'),
    'open_basedir' => ini_get('open_basedir'),
));
EOF
chown "${user[a]}:www-data" "$probe"; chmod 0640 "$probe"
res=$(curl -sS --max-time 10 -H "Host: ${host[a]}" http://127.0.0.1/pl-isolation-probe.php)
rm -f "$probe"
python3 - "$res" "${user[a]}" "${root[a]}" <<'EOF' || fail "isolation probe: $res"
import json, sys
r = json.loads(sys.argv[1])
assert r["user"] == sys.argv[2], r
assert r["own_config"] is True, r
assert r["b_config"] is False and r["c_config"] is False and r["c_listing"] is False, r
assert r["etc_passwd"] is False, r
assert r["exec"] is False, r
assert r["open_basedir"] == sys.argv[3] + "/", r
EOF
ok "PHP as a: own wp-config readable; b's (other site) and c's (same site) not; no exec; open_basedir = its root"
for e in b c; do
    if (cd / && runuser -u "${user[a]}" -- php -r "exit(@file_get_contents('${root[$e]}/shared/wp-config.php') === false ? 0 : 1);"); then :; else
        fail "user a can read $e's wp-config.php without open_basedir"
    fi
    ! (cd / && runuser -u "${user[a]}" -- ls "${root[$e]}" >/dev/null 2>&1) || fail "user a can list $e's root"
done
ok "file permissions alone keep a out of b and c (CLI, no open_basedir)"
pw_a=$(jv "$work/a.json" db_password)
if MYSQL_PWD="$pw_a" mariadb -u "$(jv "$work/a.json" db_user)" -e "SELECT 1 FROM \`${db[b]}\`.wp_options LIMIT 1" >/dev/null 2>&1; then
    fail "database user of a can read b's database"
fi
MYSQL_PWD="$pw_a" mariadb -u "$(jv "$work/a.json" db_user)" -e "SELECT 1 FROM \`${db[a]}\`.wp_options LIMIT 1" >/dev/null \
    || fail "database user of a cannot read its own database"
ok "database user of a reaches its own database only"

# ---- idempotency -------------------------------------------------------------------------------
play provision-again node-provision node
expect_changed provision-again 0
play create-a-again site-create a
play create-b-again site-create b
play create-c-again env-create c
for e in a b c; do
    expect_changed "create-$e-again" 0
    expect_fact "create-$e-again" healthy true
done
for e in a b c; do
    play "health-$e" health-check "$e"
    expect_changed "health-$e" 0
    expect_fact "health-$e" healthy true
done
play health-ghost health-check ghost
expect_fact health-ghost healthy false
expect_fact health-ghost health_checks.http.ok false
ok "every playbook again: changed=0; health-check reports healthy / unhealthy"

source "$here/e2e-domains.sh"
source "$here/e2e-backups.sh"
source "$here/e2e-clones.sh"
# ---- deletion ----------------------------------------------------------------------------------
for e in a b c; do
    play "delete-$e" env-delete "$e"
    expect_fact "delete-$e" environment_present false
    unset "created[$e]"
done
for e in a b c; do
    ! getent passwd "${user[$e]}" >/dev/null || fail "$e: user ${user[$e]} still exists"
    ! getent group "${user[$e]}" >/dev/null || fail "$e: group ${user[$e]} still exists"
    [ ! -e "${pool[$e]}" ] || fail "$e: pool ${pool[$e]} still exists"
    [ ! -e "${conf[$e]}" ] || fail "$e: server block ${conf[$e]} still exists"
    [ ! -e "${root[$e]}" ] || fail "$e: ${root[$e]} still exists"
    n=$(mariadb -N -B -e "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='${db[$e]}'")
    [ "$n" = 0 ] || fail "$e: database ${db[$e]} still exists"
    n=$(mariadb -N -B -e "SELECT COUNT(*) FROM mysql.user WHERE User='${db[$e]}'")
    [ "$n" = 0 ] || fail "$e: database user ${db[$e]} still exists"
    ! pgrep -U "${uid[$e]}" >/dev/null || fail "$e: processes of uid ${uid[$e]} still run"
    set +e
    curl -sS --max-time 5 -o /dev/null -H "Host: ${host[$e]}" http://127.0.0.1/ 2>/dev/null
    rc=$?
    set -e
    [ "$rc" = 52 ] || fail "$e: preview host still served (curl rc $rc)"
done
[ ! -e "$cache_a" ] || fail "a: page cache directory $cache_a left behind"
[ ! -e "$(dirname "${root[a]}")" ] || fail "site directory of a and c left behind"
[ ! -e "$(dirname "${root[b]}")" ] || fail "site directory of b left behind"
ok "users, groups, pools, server blocks, databases, DB users, files gone; hosts no longer served"
play create-d site-create d 2
created[d]=1
expect_fact create-d healthy false
expect_fact create-d wordpress_install.ok false
expect_fact create-d health_checks.wordpress_installed.ok false
expect_fact create-d _stats.failed 1
grep -q "must not contain quotes" "$work/facts-create-d.json" || fail "d: helper error not reported"
secret=$(jv "$work/d.json" wp_admin_password); secret=${secret#bad\'}
! grep -qF "$secret" "$work/create-d.log" "$work/facts-create-d.json" || fail "d: admin password leaked into the log or facts"
! grep -qF "$(jv "$work/d.json" db_password)" "$work/create-d.log" "$work/facts-create-d.json" || fail "d: DB password leaked"
ok "site-create with an unusable admin password fails (exit 2), reports healthy=false and the helper's error, leaks no secret"
play delete-d env-delete d
unset "created[d]"
play delete-a-again env-delete a
expect_changed delete-a-again 0
play delete-ghost env-delete ghost
expect_changed delete-ghost 0
ok "env-delete again and for a never-created environment: changed=0"

log "timings (wall clock per ansible-playbook run; seconds per task, by its first word)"
printf '  %s\n' "${timings[@]}"
log "all Ansible tests passed"
