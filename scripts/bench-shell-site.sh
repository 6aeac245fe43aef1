#!/usr/bin/env bash
# The site-create node steps done by hand, as fast as plain bash can do them: the baseline that
# benches/site_create.rs (issue 4) compares `POST /api/sites` → Ready with. No Ansible, no SSH;
# independent steps run in parallel (the database with the files, the reloads with the copy).
#
#   scripts/bench-shell-site.sh ENV_ID HOST [SITE_ID]          create; prints "ok <ms>"
#   scripts/bench-shell-site.sh --delete ENV_ID [SITE_ID]      remove everything the create made
#
# ENV_ID: a UUID (the Linux user, database and pool are pl_ + its last 16 hex digits, as Pressluft
# names them); HOST: the preview host name (served by nginx on 127.0.0.1:80); SITE_ID: default
# ENV_ID. The environment lives in /var/www/sites/SITE_ID/ENV_ID with the same layout, owners and
# modes, wp-config.php constants, PHP-FPM pool and nginx server block as pressluft_environment
# builds. Needs root and a provisioned node (node-provision: nginx, PHP-FPM, MariaDB, the helper).
# What it leaves out on purpose (Pressluft does it): idempotency (it only creates, a rerun fails),
# nginx -t / php-fpm -t before the reloads, the config lock, the helper's is-installed and db-ping
# checks (only the front page is checked), facts. BENCH_SHELL_TRACE=1 prints ms per step.
set -euo pipefail

die() { echo "bench-shell-site: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

delete=0
if [ "${1:-}" = --delete ]; then delete=1; shift; fi
env_id="${1:-}"
[[ "$env_id" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] || die "ENV_ID must be a UUID"
env_id="${env_id,,}"
if [ "$delete" = 1 ]; then
    site_id="${2:-$env_id}"
else
    host="${2:-}"
    [[ "$host" =~ ^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$ ]] || die "HOST must be a host name"
    site_id="${3:-$env_id}"
fi
site_id="${site_id,,}"
[[ "$site_id" =~ ^[0-9a-f-]{36}$ ]] || die "SITE_ID must be a UUID"

hex="${env_id//-/}"
user="pl_${hex: -16}"
site_dir="/var/www/sites/$site_id"
root="$site_dir/$env_id"
php_dirs=(/etc/php/*/fpm/pool.d)
[ -d "${php_dirs[0]}" ] || die "no PHP-FPM installed"
php="$(basename "$(dirname "$(dirname "${php_dirs[-1]}")")")"
pool="/etc/php/$php/fpm/pool.d/$user.conf"
sock="/run/php/pressluft-$user.sock"
vhost="/etc/nginx/sites-enabled/pressluft-env-$env_id.conf"
fpm_pid="/run/php/php$php-fpm.pid"
helper=/usr/local/lib/pressluft/pressluft-helper.php
src=/usr/share/wordpress

reload_fpm() { kill -USR2 "$(cat "$fpm_pid")"; }
reload_nginx() { nginx -s reload 2>/dev/null; }

# ---- delete ----------------------------------------------------------------------------------
if [ "$delete" = 1 ]; then
    rm -f "$vhost" "$pool"
    reload_nginx || true
    reload_fpm || true
    mariadb -e "DROP DATABASE IF EXISTS \`$user\`; DROP USER IF EXISTS '$user'@'localhost';"
    rm -rf "$root"
    rmdir "$site_dir" 2>/dev/null || true
    if uid="$(id -u "$user" 2>/dev/null)"; then
        # the removed pool's workers end with the reload; wait for them (bounded), then remove
        for _ in $(seq 50); do pgrep -U "$uid" >/dev/null || break; sleep 0.1; done
        pkill -KILL -U "$uid" 2>/dev/null || true
        userdel "$user"
        getent group "$user" >/dev/null && groupdel "$user"
    fi
    echo ok
    exit 0
fi

# ---- create ----------------------------------------------------------------------------------
start=$(date +%s%N)
last=$start
# BENCH_SHELL_TRACE=1: milliseconds per step on stderr
mark() {
    [ "${BENCH_SHELL_TRACE:-0}" = 1 ] || return 0
    local now; now=$(date +%s%N)
    printf '  %-10s %5d ms\n' "$1" $(( (now - last) / 1000000 )) >&2
    last=$now
}
release=$(date -u +%Y%m%d%H%M%S)
db_password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
admin_password=$(head -c 12 /dev/urandom | base64 | tr '+/' '-_')
salts=$(head -c 384 /dev/urandom | base64 -w0)

# database and its user (in parallel with the files)
mariadb -e "CREATE DATABASE \`$user\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '$user'@'localhost' IDENTIFIED BY '$db_password';
GRANT ALL PRIVILEGES ON \`${user//_/\\_}\`.* TO '$user'@'localhost';" &
db_job=$!

useradd --no-create-home --home-dir "$root" --shell /usr/sbin/nologin \
    --comment "Pressluft environment $env_id" --user-group "$user"
install -d -m 0711 "$site_dir"
install -d -o "$user" -g www-data -m 2750 "$root" "$root/releases" "$root/shared" "$root/shared/uploads" "$root/tmp"
mark user+dirs

# PHP-FPM pool and nginx server block, reloaded at once (in parallel with the copy)
cat > "$pool" <<EOF
; PHP-FPM pool of Pressluft environment $env_id (site $site_id), bench-shell-site.sh.
[$user]
user = $user
group = $user
listen = $sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = ondemand
pm.max_children = 5
pm.process_idle_timeout = 30s
pm.max_requests = 500
chdir = /
catch_workers_output = no
security.limit_extensions = .php
env[TMPDIR] = $root/tmp
php_admin_value[open_basedir] = $root/
php_admin_value[upload_tmp_dir] = $root/tmp/
php_admin_value[sys_temp_dir] = $root/tmp/
php_admin_value[session.save_path] = $root/tmp/
php_admin_value[disable_functions] = exec,passthru,shell_exec,system,proc_open,popen
php_admin_flag[allow_url_include] = off
php_admin_flag[allow_url_fopen] = on
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
php_admin_value[error_log] = $root/tmp/php-error.log
php_admin_value[upload_max_filesize] = 64M
php_admin_value[post_max_size] = 64M
php_admin_value[memory_limit] = 256M
EOF
listen6=""
[ -e /proc/net/if_inet6 ] && listen6="listen [::]:80;"
cat > "$vhost" <<EOF
# nginx server block of Pressluft environment $env_id (site $site_id), bench-shell-site.sh.
server {
    listen 80;
    $listen6
    server_name $host;
    root $root/current;
    index index.php index.html;
    client_max_body_size 64m;
    include /etc/nginx/pressluft/7g-firewall.conf;
    include /etc/nginx/pressluft/7g-exclusions.conf;
    if (\$pressluft_7g_block) { return 403; }
    include /etc/nginx/pressluft/security-headers.conf;
    location ^~ /.well-known/acme-challenge/ { root /var/www/acme; default_type text/plain; try_files \$uri =404; }
    location ~ /\\. { deny all; }
    location ~* ^/wp-content/uploads/.*\\.(?:php[0-9]?|phtml|phar|pht)\$ { deny all; }
    location ~* ^/(?:wp-config\\.php|readme\\.html|license\\.txt)\$ { deny all; }
    location ~* \\.(?:sql|bak|old|orig|swp|log)\$ { deny all; }
    location / { try_files \$uri \$uri/ /index.php?\$args; }
    location ~ \\.php\$ {
        try_files \$uri =404;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME \$realpath_root\$fastcgi_script_name;
        fastcgi_param DOCUMENT_ROOT \$realpath_root;
        fastcgi_param HTTP_PROXY "";
        fastcgi_pass unix:$sock;
        fastcgi_read_timeout 120s;
    }
    location ~* \\.(?:css|js|mjs|gif|jpe?g|png|webp|avif|svg|ico|woff2?|ttf)\$ { expires 7d; access_log off; try_files \$uri =404; }
}
EOF
reload_fpm
reload_nginx
mark config

# release: copy (symlinks dereferenced), owner user:www-data, dirs 2750, files 0640
rel="$root/releases/$release"
mkdir "$rel"
cp -rL --no-preserve=all "$src"/. "$rel"/
rm -f "$rel/wp-config.php" "$rel/.htaccess"
rm -rf "$rel/wp-content/uploads"
chown -R "$user:www-data" "$rel"
find "$rel" -type d -exec chmod 2750 {} + -o -type f -exec chmod 0640 {} +
ln -s ../../shared/wp-config.php "$rel/wp-config.php"
ln -s ../../../shared/uploads "$rel/wp-content/uploads"
install -d -o "$user" -g www-data -m 2750 "$rel/wp-content/mu-plugins"
install -o "$user" -g www-data -m 0640 /usr/local/lib/pressluft/pressluft-login.php "$rel/wp-content/mu-plugins/"
ln -s "releases/$release" "$root/current"
mark release

# wp-config.php (0600, the user's)
salt() { printf '%s' "${salts:$(( $1 * 64 )):64}"; }
install -o "$user" -g www-data -m 0600 /dev/null "$root/shared/wp-config.php"
cat > "$root/shared/wp-config.php" <<EOF
<?php
define( 'DB_NAME', '$user' );
define( 'DB_USER', '$user' );
define( 'DB_PASSWORD', '$db_password' );
define( 'DB_HOST', 'localhost' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
define( 'AUTH_KEY', '$(salt 0)' );
define( 'SECURE_AUTH_KEY', '$(salt 1)' );
define( 'LOGGED_IN_KEY', '$(salt 2)' );
define( 'NONCE_KEY', '$(salt 3)' );
define( 'AUTH_SALT', '$(salt 4)' );
define( 'SECURE_AUTH_SALT', '$(salt 5)' );
define( 'LOGGED_IN_SALT', '$(salt 6)' );
define( 'NONCE_SALT', '$(salt 7)' );
\$table_prefix = 'wp_';
define( 'WP_HOME', 'http://$host' );
define( 'WP_SITEURL', 'http://$host' );
define( 'WP_ENVIRONMENT_TYPE', 'production' );
define( 'WP_REDIS_HOST', '127.0.0.1' );
define( 'WP_REDIS_PORT', 6379 );
define( 'WP_REDIS_DATABASE', 0 );
define( 'WP_REDIS_PREFIX', 'pressluft_$env_id:' );
define( 'WP_CACHE_KEY_SALT', 'pressluft_$env_id:' );
define( 'WP_REDIS_DISABLED', true );
define( 'DISALLOW_FILE_EDIT', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'FS_METHOD', 'direct' );
define( 'WP_DEBUG', false );
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', dirname( __DIR__ ) . '/current/' );
}
require_once ABSPATH . 'wp-settings.php';
EOF
mark wp-config

# WordPress install through the helper, as the user, password on stdin
wait "$db_job" || die "database creation failed"
mark database
out=$(cd / && printf '%s' "$admin_password" | runuser -u "$user" -- "php$php" "$helper" \
    --path="$root/current" install --title="Shell $env_id" --admin-user="pl-admin-${hex: -8}" \
    --admin-email="admin@example.com" --url="http://$host") || die "helper install failed: $out"
[[ "$out" == *'"installed":true'* ]] || die "helper install: $out"
mark install

# the front page is WordPress (the pool's socket comes up with the reload; bounded wait)
for _ in $(seq 200); do
    if body=$(curl -fsS --max-time 5 -H "Host: $host" http://127.0.0.1/ 2>/dev/null) \
        && [[ "$body" == *"/wp-content/"* || "$body" == *"/wp-includes/"* ]]; then
        mark http
        echo "ok $(( ($(date +%s%N) - start) / 1000000 ))"
        exit 0
    fi
    sleep 0.02
done
die "the front page of $host is not WordPress"
