# Clones (env-create with a source environment), end to end. Sourced by run.sh (its helpers: play,
# jv, expect_changed, expect_fact, ok, fail, log; its state: work, host, user, root, db, created)
# while a (production of site 1) is converged. Creates e, a clone of a (same site, own preview
# URL), checks it and deletes it again; a keeps its content (a post, an option, a plugin and an
# upload are added to it).
#
# Covers: files (a plugin, an upload) and the database copied, owned by e's user (the database as
# InnoDB tablespaces); the source URL rewritten everywhere (plain, JSON-escaped in post content,
# inside a PHP-serialized option that still unserializes), e's own wp-config (DB credentials,
# Redis prefix); a second run changes nothing and does not clone again. Then f, cloned while a
# transaction on a holds its options table: the tablespace copy gives up after its lock wait and
# the database is dumped instead (same content, nothing of the attempt left).

log "clones: env-create with source_environment_id (files, database, URL rewrite)"

cl_rand=$(openssl rand -hex 4)
src_home=$(mariadb -N -B -e "SELECT option_value FROM \`${db[a]}\`.wp_options WHERE option_name='home'")
src_host=$(python3 -c 'import sys; from urllib.parse import urlsplit; print(urlsplit(sys.argv[1]).hostname)' "$src_home")
[ -n "$src_host" ] || fail "clones: no home option in a's database"

# content of a: a post with a plain and a JSON-escaped URL, a widget-like serialized option, a plugin, an upload
runuser -u "${user[a]}" -- php -d open_basedir= -r '
    define("WP_USE_THEMES", false);
    require $argv[1] . "/current/wp-load.php";
    $home = $argv[2]; $esc = str_replace("/", "\\/", $home); $rand = $argv[3];
    $id = wp_insert_post(array("post_title" => "Clone marker $rand", "post_content" => "draft",
        "post_status" => "publish", "post_type" => "post"), true);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
    // straight into the table: kses would re-serialize the block comment without escaped slashes
    $GLOBALS["wpdb"]->update($GLOBALS["wpdb"]->posts, array("post_content" =>
        "<p>clone body $rand <a href=\"$home/about/\">about</a></p>\n<!-- wp:pl/link {\"url\":\"$esc\/shop\/\"} /-->"),
        array("ID" => $id));
    clean_post_cache($id);
    update_option("pl_clone_widget", array(2 => array("title" => "Links", "url" => "$home/x/", "nested" => array("img" => "$home/wp-content/uploads/pl-$rand.txt"))), false);
    echo $id;' "${root[a]}" "$src_home" "$cl_rand" > "$work/clone-post-id" || fail "clones: seeding a"
cl_post=$(cat "$work/clone-post-id")
install -d -o "${user[a]}" -g www-data -m 2750 "${root[a]}/current/wp-content/plugins/pl-clone-$cl_rand"
printf '<?php\n/* Plugin Name: pl clone %s */\n' "$cl_rand" > "${root[a]}/current/wp-content/plugins/pl-clone-$cl_rand/pl-clone.php"
echo "upload $cl_rand" > "${root[a]}/shared/uploads/pl-$cl_rand.txt"
chown "${user[a]}:www-data" "${root[a]}/current/wp-content/plugins/pl-clone-$cl_rand/pl-clone.php" "${root[a]}/shared/uploads/pl-$cl_rand.txt"
# an upload in a year/month folder, with the source's own (looser) modes: the clone's are its own
install -d -o "${user[a]}" -g www-data -m 2775 "${root[a]}/shared/uploads/2025" "${root[a]}/shared/uploads/2025/01"
install -o "${user[a]}" -g www-data -m 0664 /dev/null "${root[a]}/shared/uploads/2025/01/pl-$cl_rand.bin"
n=$(mariadb -N -B -e "SELECT COUNT(*) FROM \`${db[a]}\`.wp_posts WHERE ID=$cl_post AND post_content LIKE '%${src_host}\\\\\\\\/shop%'")
[ "$n" = 1 ] || fail "clones: a's post does not hold the JSON-escaped URL ($n)"

# e: a staging environment of a's site cloned from a
python3 - "$work" "$src_home" <<'EOF'
import json, secrets, sys, uuid
work, src_home = sys.argv[1], sys.argv[2]
a = json.load(open(work + "/a.json"))
c = json.load(open(work + "/c.json"))
env_id = str(uuid.uuid4())
hexid = env_id.replace("-", "")
label, name = hexid[-8:], "pl_" + hexid[-16:]
host = "%s.127-0-0-1.sslip.io" % label
e = dict(c, environment_id=env_id, environment_slug="clone", environment_type="staging",
         environment_root="/var/www/sites/%s/%s" % (c["site_id"], env_id),
         preview_url="http://" + host, preview_host=host, db_name=name, db_user=name,
         db_password="db'" + secrets.token_urlsafe(18), redis_prefix="pressluft_%s:" % env_id,
         wp_admin_login="pl-admin-" + label, wp_admin_email="admin-%s@example.com" % label,
         fastcgi_cache_enabled=False, redis_cache_enabled=False,
         source_environment_id=a["environment_id"], source_environment_root=a["environment_root"],
         source_db_name=a["db_name"], source_site_url=src_home)
json.dump(e, open(work + "/e.json", "w"), indent=1)
EOF
created[e]=1
play clone-e env-create e
expect_fact clone-e healthy true
expect_fact clone-e cloned_from "$(jv "$work/a.json" environment_id)"
expect_fact clone-e wordpress_install.skipped true
for k in files database search_replace total; do
    [ -n "$(jv "$work/facts-clone-e.json" "clone_timings_ms.$k")" ] || fail "clones: clone_timings_ms.$k missing"
done
host[e]=$(jv "$work/e.json" preview_host)
user[e]=$(jv "$work/facts-clone-e.json" linux_user)
root[e]=$(jv "$work/facts-clone-e.json" environment_root)
db[e]=$(jv "$work/facts-clone-e.json" db_name)
e_home="http://${host[e]}"
expect_fact clone-e clone_database.method tablespace
[ -n "$(jv "$work/facts-clone-e.json" clone_database.locked_ms)" ] || fail "clones: clone_database.locked_ms missing"
[ "$(mariadb -N -B -e "SELECT COUNT(*) FROM \`${db[e]}\`.wp_posts WHERE ID=$cl_post")" = 1 ] || fail "clones: e's tablespaces lack the post"
mariadb -N -B -e "CHECK TABLE \`${db[e]}\`.wp_posts, \`${db[e]}\`.wp_options" | awk '$4 != "OK" {bad=1} END {exit bad}' \
    || fail "clones: CHECK TABLE of e's imported tablespaces"
ok "env-create e from a: healthy, cloned_from a, no install ($(jv "$work/facts-clone-e.json" clone_timings_ms))"

# the same content at e's own URL
body=$(curl -sSL --max-time 10 --connect-to "::127.0.0.1:80" "http://${host[e]}/?p=$cl_post")
grep -q "clone body $cl_rand" <<<"$body" || fail "clones: e does not serve a's post"
grep -q "href=\"$e_home/about/\"" <<<"$body" || fail "clones: e's post links not rewritten to $e_home"
! grep -q "$src_host" <<<"$body" || fail "clones: e's page still names $src_host"
ok "e serves a's post at its own URL, links rewritten"

# serialized option unserializes with e's URL; no form of a's URL left in e's database
mariadb -N -B --raw -e "SELECT option_value FROM \`${db[e]}\`.wp_options WHERE option_name='pl_clone_widget'" \
    | php -r '$v = @unserialize(stream_get_contents(STDIN)); exit(is_array($v) && $v[2]["url"] === $argv[1] . "/x/"
        && $v[2]["nested"]["img"] === $argv[1] . "/wp-content/uploads/pl-" . $argv[2] . ".txt" ? 0 : 1);' "$e_home" "$cl_rand" \
    || fail "clones: serialized option of e does not unserialize to e's URLs"
n=$(mariadb -N -B -e "SELECT COUNT(*) FROM \`${db[e]}\`.wp_posts WHERE ID=$cl_post AND post_content LIKE '%${host[e]}\\\\\\\\/shop%'")
[ "$n" = 1 ] || fail "clones: JSON-escaped URL in e's post not rewritten ($n)"
mariadb-dump --skip-comments "${db[e]}" > "$work/clone-e.sql"
n=$(grep -c "$src_host" "$work/clone-e.sql" || true)
[ "$n" = 0 ] || fail "clones: $n lines of e's database still name $src_host"
[ "$(mariadb -N -B -e "SELECT option_value FROM \`${db[e]}\`.wp_options WHERE option_name='home'")" = "$e_home" ] \
    || fail "clones: e's home option"
ok "serialized option unserializes with e's URL; JSON-escaped URL rewritten; no trace of $src_host in e's database"

# files: plugin and upload copied, owned by e; e's own wp-config; a untouched
for f in "current/wp-content/plugins/pl-clone-$cl_rand/pl-clone.php" "shared/uploads/pl-$cl_rand.txt"; do
    [ -f "${root[e]}/$f" ] || fail "clones: $f not copied"
    [ "$(stat -c %U "${root[e]}/$f")" = "${user[e]}" ] || fail "clones: $f not owned by ${user[e]}"
done
for f in 2025 2025/01 2025/01/pl-$cl_rand.bin; do
    want="${user[e]}:www-data 2750"
    [ -f "${root[e]}/shared/uploads/$f" ] && want="${user[e]}:www-data 640"
    got="$(stat -c '%U:%G %a' "${root[e]}/shared/uploads/$f" 2>&1)"
    [ "$got" = "$want" ] || fail "clones: uploads/$f is $got, not $want"
done
[ "$(curl -sS --max-time 10 -H "Host: ${host[e]}" "http://127.0.0.1/wp-content/uploads/pl-$cl_rand.txt")" = "upload $cl_rand" ] \
    || fail "clones: e does not serve the copied upload"
grep -q "'DB_NAME', '${db[e]}'" "${root[e]}/shared/wp-config.php" || fail "clones: e's wp-config lost its DB_NAME"
grep -q "'WP_REDIS_PREFIX', 'pressluft_$(jv "$work/e.json" environment_id):'" "${root[e]}/shared/wp-config.php" \
    || fail "clones: e's wp-config lost its Redis prefix"
[ "$(mariadb -N -B -e "SELECT option_value FROM \`${db[a]}\`.wp_options WHERE option_name='home'")" = "$src_home" ] \
    || fail "clones: a's home changed"
ok "plugin and upload copied (owner ${user[e]}), e keeps its own wp-config, a untouched"

# e's WordPress core is its own copy (the node's spare, made ahead, or copied now): owned by e's
# user, one link, no inode shared with a or the source; writing it changes nothing elsewhere
core_from=$(jv "$work/facts-clone-e.json" release_core)
[[ "$core_from" = spare || "$core_from" = copy ]] || fail "clones: release_core is '$core_from'"
for f in wp-load.php wp-includes/version.php wp-admin/index.php; do
    [ "$(stat -c '%U %h' "${root[e]}/current/$f")" = "${user[e]} 1" ] \
        || fail "clones: e's $f is not its own file ($(stat -c '%U %h' "${root[e]}/current/$f"))"
done
printf '\n// pl clone isolation %s\n' "$cl_rand" >> "${root[e]}/current/wp-load.php"
! grep -qs "pl clone isolation $cl_rand" "${root[a]}/current/wp-load.php" /usr/share/wordpress/wp-load.php \
    /var/www/sites/.pressluft-spare/*/wp-load.php || fail "clones: writing e's wp-load.php changed another copy"
if [ -d /var/www/sites/.pressluft-spare ]; then
    [ "$(stat -c '%U %a' /var/www/sites/.pressluft-spare)" = "root 700" ] || fail "clones: the spare directory is not root 0700"
fi
ok "e's WordPress core is its own ($core_from): owner ${user[e]}, one link, writing it changes neither a nor the source"

# rerun: nothing changes, no second clone (a change made in e survives)
mariadb -e "UPDATE \`${db[e]}\`.wp_posts SET post_title='edited in e' WHERE ID=$cl_post"
play clone-e-again env-create e
expect_changed clone-e-again 0
expect_fact clone-e-again clone_skipped "already cloned"
[ "$(mariadb -N -B -e "SELECT post_title FROM \`${db[e]}\`.wp_posts WHERE ID=$cl_post")" = "edited in e" ] \
    || fail "clones: the rerun cloned again"
ok "env-create e again: changed=0, not cloned again"

play delete-e env-delete e
expect_fact delete-e environment_present false
unset "created[e]"
[ ! -e "${root[e]}" ] || fail "clones: ${root[e]} left behind"
wp_post_a=$(mariadb -N -B -e "SELECT COUNT(*) FROM \`${db[a]}\`.wp_posts WHERE ID=$cl_post")
[ "$wp_post_a" = 1 ] || fail "clones: a lost its post when e was deleted"
ok "e deleted, a keeps its content"

# f: cloned while a transaction on a holds wp_options (an UPDATE, not committed for 12 s): the
# export lock is not granted within its wait, the tablespace attempt is undone and the database
# dumped (a consistent snapshot, no lock); a's writes were never blocked for longer than the wait
python3 - "$work" <<'EOF'
import json, sys, uuid
work = sys.argv[1]
e = json.load(open(work + "/e.json"))
env_id = str(uuid.uuid4())
hexid = env_id.replace("-", "")
label, name = hexid[-8:], "pl_" + hexid[-16:]
host = "%s.127-0-0-1.sslip.io" % label
f = dict(e, environment_id=env_id, environment_slug="clone-f",
         environment_root="/var/www/sites/%s/%s" % (e["site_id"], env_id),
         preview_url="http://" + host, preview_host=host, db_name=name, db_user=name,
         redis_prefix="pressluft_%s:" % env_id, wp_admin_login="pl-admin-" + label,
         wp_admin_email="admin-%s@example.com" % label)
json.dump(f, open(work + "/f.json", "w"), indent=1)
EOF
(echo "START TRANSACTION; UPDATE \`${db[a]}\`.wp_options SET option_value=option_value WHERE option_name='blogname'; SELECT SLEEP(12); ROLLBACK;" \
    | mariadb >/dev/null 2>&1) &
holder=$!
sleep 1
created[f]=1
play clone-f env-create f
wait "$holder" || true
expect_fact clone-f healthy true
expect_fact clone-f clone_database.method dump
grep -q "could not be locked" <<<"$(jv "$work/facts-clone-f.json" clone_database.reason)" \
    || fail "clones: f's clone_database.reason: $(jv "$work/facts-clone-f.json" clone_database.reason)"
db[f]=$(jv "$work/facts-clone-f.json" db_name)
[ "$(mariadb -N -B -e "SELECT COUNT(*) FROM \`${db[f]}\`.wp_posts WHERE ID=$cl_post")" = 1 ] || fail "clones: f lacks a's post"
! ls /var/lib/mysql/"${db[a]}"/*.cfg >/dev/null 2>&1 || fail "clones: export files left in a's data directory"
ok "env-create f while a transaction holds a's options: dumped instead ($(jv "$work/facts-clone-f.json" clone_database.reason)), a's post copied"
play delete-f env-delete f
unset "created[f]"
