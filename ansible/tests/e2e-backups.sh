# Backups and restores, end to end (sourced by run.sh: environments a, b (two sites) and c (staging
# of a's site) are converged; helpers play, jv, expect_fact, expect_changed, ok, fail and the
# arrays host, user, root, db come from there). Leaves a, b and c healthy with their own content.
#
# Covers: local full backup of a (manifest, checksums, modes; a rerun changes nothing), S3 backup
# of a (scripts/s3-test-server.sh), restore from S3 after a post, an option, the uploads and the
# plugins changed (content back, caches purged, healthy), restore of a's backup into c (same site,
# other URL: URLs rewritten to c's), a flipped byte on the target (RESTORE_CHECKSUM_MISMATCH, c
# untouched), the S3 server stopped during an upload (BACKUP_STORAGE_FAILED, no manifest), a
# restore whose result is unhealthy (RESTORE_ROLLED_BACK to the pre-restore backup, healthy
# again), a database-only backup and restore of b (release untouched), backup-cleanup (everything
# gone, idempotent) and no secret in any log or facts file.

log "backups and restores (local directory and S3)"
bk_run="pressluft-e2e-$(basename "$work")"
bk_base="/var/backups/$bk_run"
s3_server="$repo/scripts/s3-test-server.sh"
s3_prefix_base="$bk_run"

# the test server may serve others too: left running when it ran before
s3_was_running=0
"$s3_server" status >/dev/null 2>&1 && s3_was_running=1
backups_cleanup() {
    if [ "$s3_was_running" = 1 ]; then
        "$s3_server" start >/dev/null 2>&1 || true
    else
        "$s3_server" stop >/dev/null 2>&1 || true
    fi
    rm -rf "$bk_base" "${S3_DATA_DIR:-/nonexistent}/${S3_BUCKET:-none}/$s3_prefix_base"
    rm -f "${root[a]}/shared/uploads/pl-backup-big.bin" "${root[a]}/current/wp-content/mu-plugins/pl-fatal.php"
}
# run.sh's cleanup keeps its exit status: ours runs first and hands the status on
trap 'rc=$?; backups_cleanup; (exit $rc); cleanup' EXIT

bk_new_id() { cat /proc/sys/kernel/random/uuid; }
bk_sql() { mariadb -N -B -e "$2" "$1"; }
bk_front() { curl -sS --max-time 10 -H "Host: ${host[$1]}" http://127.0.0.1/; }

# bk_vars NAME BASE [key=JSON | key=@FACTS_FILE:FACT | s3]...: $work/NAME.json = $work/BASE.json + pairs
bk_vars() {
    local name=$1 base=$2
    shift 2
    python3 - "$work/$name.json" "$work/$base.json" "$@" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[2]))
for kv in sys.argv[3:]:
    if kv == "s3":
        d.update(s3_endpoint=os.environ["S3_ENDPOINT"], s3_bucket=os.environ["S3_BUCKET"],
                 s3_region=os.environ["S3_REGION"], s3_access_key_id=os.environ["S3_ACCESS_KEY_ID"],
                 s3_secret_access_key=os.environ["S3_SECRET_ACCESS_KEY"], s3_path_style=True)
        continue
    k, _, v = kv.partition("=")
    if v.startswith("@"):
        f, _, key = v[1:].partition(":")
        d[k] = json.load(open(f))[key]
    else:
        d[k] = json.loads(v)
json.dump(d, open(sys.argv[1], "w"), indent=1)
PY
}

# bk_check_stored FACTS DIR: manifest.json in DIR is the reported manifest, its sha256 the reported
# checksum, every artifact's size and sha256 as listed
bk_check_stored() {
    python3 - "$1" "$2" <<'PY' || fail "stored backup in $2 does not match the facts of $1"
import hashlib, json, os, sys
facts = json.load(open(sys.argv[1]))
d = sys.argv[2]
raw = open(os.path.join(d, "manifest.json"), "rb").read()
m = json.loads(raw)
assert m == facts["backup_manifest"], "manifest differs from the facts"
assert hashlib.sha256(raw).hexdigest() == facts["backup_checksum"], "backup_checksum"
names = []
for a in m["artifacts"]:
    data = open(os.path.join(d, a["name"]), "rb").read()
    assert len(data) == a["size"] and hashlib.sha256(data).hexdigest() == a["sha256"], a["name"]
    names.append(a["name"])
assert facts["backup_size_bytes"] == sum(a["size"] for a in m["artifacts"])
for k in ("format", "backup_id", "site_id", "environment_id", "scope", "created_at", "wordpress_version",
          "php_version", "site_url", "table_prefix"):
    assert k in m, k
assert sorted(f for f in os.listdir(d)) == sorted(names + ["manifest.json"]), os.listdir(d)
PY
}

site_a=$(jv "$work/a.json" site_id)
env_a=$(jv "$work/a.json" environment_id)
env_c=$(jv "$work/c.json" environment_id)
url_a=$(jv "$work/a.json" preview_url)
url_c=$(jv "$work/c.json" preview_url)
title_a=$(jv "$work/a.json" site_title)
title_c=$(jv "$work/c.json" site_title)
uploads_a="${root[a]}/shared/uploads"

# ---- content that must survive: an upload, a plugin directory, an option ------------------------
rm -f "$uploads_a/pl-after-backup.txt"
runuser -u "${user[a]}" -- mkdir -p "$uploads_a/2026/01"
head -c 200000 /dev/urandom > "$uploads_a/2026/01/pl-photo.bin"
chown -R "${user[a]}:www-data" "$uploads_a/2026"; chmod 0640 "$uploads_a/2026/01/pl-photo.bin"
photo_sum=$(sha256sum < "$uploads_a/2026/01/pl-photo.bin")
plugin_dir="${root[a]}/current/wp-content/plugins/pl-backup-marker"
mkdir -p "$plugin_dir"
printf '<?php\n/* Plugin Name: Pressluft backup marker */\n' > "$plugin_dir/pl-backup-marker.php"
chown -R "${user[a]}:www-data" "$plugin_dir"
bk_sql "${db[a]}" "REPLACE INTO wp_options (option_name, option_value, autoload) VALUES ('pl_backup_marker', 'original', 'no')"
[ "$(bk_sql "${db[a]}" "SELECT option_value FROM wp_options WHERE option_name='blogname'")" = "$title_a" ] || fail "a: unexpected title"

# ---- local backup of a ---------------------------------------------------------------------------
bk_local=$(bk_new_id)
bk_local_path="$bk_base/$site_a/$env_a/$bk_local"
bk_vars bk-local a "backup_id=\"$bk_local\"" 'backup_scope="full"' 'storage_type="local"' "storage_path=\"$bk_local_path\""
play bk-local backup-create bk-local
expect_fact bk-local backup_created true
expect_fact bk-local backup_storage_path "$bk_local_path"
bk_check_stored "$work/facts-bk-local.json" "$bk_local_path"
[ "$(stat -c '%U %a' "$bk_local_path")" = "root 700" ] || fail "local backup directory is not root 0700"
[ "$(stat -c '%U %a' "$bk_local_path/database.sql.zst")" = "root 600" ] || fail "local artifacts are not root 0600"
# (no `| grep -q` under pipefail: grep ends early, the producer dies of SIGPIPE)
zstd -dc "$bk_local_path/database.sql.zst" > "$work/bk-dump.sql"
grep -q "'pl_backup_marker','original'" "$work/bk-dump.sql" || fail "the dump lacks the option"
zstd -dc "$bk_local_path/files.tar.zst" | tar -t > "$work/bk-files.txt"
grep -qx 'wp-content/plugins/pl-backup-marker/pl-backup-marker.php' "$work/bk-files.txt" || fail "files archive lacks the plugin"
! grep -q -e '^wp-content/uploads' -e 'wp-config.php' -e '^wp-includes/' "$work/bk-files.txt" || fail "files archive holds uploads, wp-config.php or core"
zstd -dc "$bk_local_path/uploads.tar.zst" | tar -t > "$work/bk-uploads.txt"
grep -qx './2026/01/pl-photo.bin' "$work/bk-uploads.txt" || fail "uploads archive lacks the upload"
ok "local full backup: manifest written last and equal to the facts, sizes and SHA-256 match, root 0700/0600, content as documented"
play bk-local-again backup-create bk-local
expect_changed bk-local-again 0
expect_fact bk-local-again backup_created false
[ "$(jv "$work/facts-bk-local-again.json" backup_checksum)" = "$(jv "$work/facts-bk-local.json" backup_checksum)" ] \
    || fail "the rerun reports another checksum"
[ "$(jv "$work/facts-bk-local-again.json" backup_manifest)" = "$(jv "$work/facts-bk-local.json" backup_manifest)" ] \
    || fail "the rerun reports another manifest"
ok "backup-create again for the same backup id: changed=0, the same manifest and checksum"

# ---- S3 backup of a ------------------------------------------------------------------------------
while IFS= read -r line; do export "${line?}"; done < <("$s3_server" start)
[ -n "${S3_ENDPOINT:-}" ] && [ -d "$S3_DATA_DIR/$S3_BUCKET" ] || fail "s3-test-server.sh start printed no settings"
bk_s3=$(bk_new_id)
bk_s3_path="$s3_prefix_base/$site_a/$env_a/$bk_s3"
bk_vars bk-s3 a "backup_id=\"$bk_s3\"" 'backup_scope="full"' 'storage_type="s3"' "storage_path=\"$bk_s3_path\"" s3
play bk-s3 backup-create bk-s3
bk_check_stored "$work/facts-bk-s3.json" "$S3_DATA_DIR/$S3_BUCKET/$bk_s3_path"
ok "S3 full backup (rclone, credentials from the environment only): objects and manifest match"

# ---- change a, restore it from S3 ----------------------------------------------------------------
bk_sql "${db[a]}" "UPDATE wp_options SET option_value='Changed by the backup test' WHERE option_name='blogname';
                UPDATE wp_options SET option_value='changed' WHERE option_name='pl_backup_marker';
                UPDATE wp_posts SET post_title='Changed post title' WHERE ID=1"
rm -f "$uploads_a/2026/01/pl-photo.bin"
runuser -u "${user[a]}" -- sh -c "echo new > '$uploads_a/pl-after-backup.txt'"
rm -rf "$plugin_dir"
find "/var/cache/nginx/pressluft/$env_a" -type f -delete 2>/dev/null || true
bk_front a >/dev/null  # the changed page in the page cache: the restore must purge it
grep -q '<title>Changed by the backup test' <<<"$(bk_front a)" || fail "a: the change is not visible"
redis-cli SET "pressluft_${env_a}:pl-test" 1 >/dev/null
redis-cli SET "pressluft_$(jv "$work/b.json" environment_id):pl-test" 1 >/dev/null
release_before=$(readlink "${root[a]}/current")
r_s3=$(bk_new_id)
bk_vars r-s3-a a "restore_id=\"$r_s3\"" 'backup_storage_type="s3"' "backup_storage_path=\"$bk_s3_path\"" \
    "backup_manifest=@$work/facts-bk-s3.json:backup_manifest" "site_url=\"$url_a\"" s3
play r-s3-a env-restore r-s3-a
expect_fact r-s3-a restore_verified true
expect_fact r-s3-a restore_healthy true
expect_fact r-s3-a healthy true
expect_fact r-s3-a rolled_back false
rel=$(jv "$work/facts-r-s3-a.json" restored_release)
[ "$(readlink "${root[a]}/current")" = "releases/$rel" ] && [ "releases/$rel" != "$release_before" ] \
    || fail "a: current is $(readlink "${root[a]}/current"), expected the restored release $rel"
grep -q "<title>$title_a" <<<"$(bk_front a)" || fail "a: front page does not show the restored title (stale page cache?)"
grep -q 'Hello world!' <<<"$(bk_front a)" || fail "a: the restored post title is not served"
[ "$(bk_sql "${db[a]}" "SELECT option_value FROM wp_options WHERE option_name='pl_backup_marker'")" = original ] || fail "a: option not restored"
[ "$(sha256sum < "$uploads_a/2026/01/pl-photo.bin")" = "$photo_sum" ] || fail "a: upload not restored"
[ ! -e "$uploads_a/pl-after-backup.txt" ] || fail "a: an upload made after the backup is still there"
[ -f "${root[a]}/current/wp-content/plugins/pl-backup-marker/pl-backup-marker.php" ] || fail "a: plugin not restored"
[ "$(stat -c '%U:%G %a' "$uploads_a/2026/01/pl-photo.bin")" = "${user[a]}:www-data 640" ] || fail "a: upload owner/mode"
[ "$(stat -c '%U:%G %a' "$uploads_a/2026")" = "${user[a]}:www-data 2750" ] || fail "a: uploads directory owner/mode"
[ "$(stat -c '%U:%G %a' "${root[a]}/current/wp-content/plugins/pl-backup-marker")" = "${user[a]}:www-data 2750" ] || fail "a: release directory owner/mode"
[ "$(readlink "${root[a]}/current/wp-config.php")" = ../../shared/wp-config.php ] \
    && [ "$(readlink "${root[a]}/current/wp-content/uploads")" = ../../../shared/uploads ] || fail "a: release links"
[ "$(redis-cli EXISTS "pressluft_${env_a}:pl-test")" = 0 ] || fail "a: its Redis keys were not purged"
[ "$(redis-cli EXISTS "pressluft_$(jv "$work/b.json" environment_id):pl-test")" = 1 ] || fail "b: its Redis key was purged by a's restore"
redis-cli DEL "pressluft_$(jv "$work/b.json" environment_id):pl-test" >/dev/null
ok "restore from S3: title, post, option, uploads and plugin back, new upload gone, owners/modes, links; a's Redis prefix purged (b's kept); healthy"

# ---- a's backup into c (same site, other URL) ---------------------------------------------------
bk_c=$(bk_new_id)
bk_c_path="$bk_base/$site_a/$env_c/$bk_c"
bk_vars bk-c c "backup_id=\"$bk_c\"" 'backup_scope="full"' 'storage_type="local"' "storage_path=\"$bk_c_path\""
play bk-c backup-create bk-c
r_c=$(bk_new_id)
bk_vars r-local-c c "restore_id=\"$r_c\"" 'backup_storage_type="local"' "backup_storage_path=\"$bk_local_path\"" \
    "backup_manifest=@$work/facts-bk-local.json:backup_manifest" "site_url=\"$url_c\""
play r-local-c env-restore r-local-c
expect_fact r-local-c healthy true
[ "$(jv "$work/facts-r-local-c.json" url_rewrite.old)" = "$url_a" ] || fail "c: no URL rewrite from a's URL"
[ "$(bk_sql "${db[c]}" "SELECT option_value FROM wp_options WHERE option_name='home'")" = "$url_c" ] || fail "c: home is not c's URL"
[ "$(bk_sql "${db[c]}" "SELECT option_value FROM wp_options WHERE option_name='siteurl'")" = "$url_c" ] || fail "c: siteurl is not c's URL"
[ "$(bk_sql "${db[c]}" "SELECT COUNT(*) FROM wp_posts WHERE guid LIKE '%${host[a]}%'")" = 0 ] || fail "c: posts still link to a's host"
body=$(bk_front c)
grep -q "<title>$title_a" <<<"$body" || fail "c: front page does not show a's content"
! grep -q "${host[a]}" <<<"$body" || fail "c: front page links to a's host"
[ -f "${root[c]}/shared/uploads/2026/01/pl-photo.bin" ] || fail "c: a's upload missing"
ok "a's backup restored into c: a's content, URLs rewritten to c's (home, siteurl, guids, page), healthy"

# ---- a flipped byte on the target: nothing touched -----------------------------------------------
obj="$S3_DATA_DIR/$S3_BUCKET/$bk_s3_path/files.tar.zst"
bk_flip() { python3 -c 'import sys; f=open(sys.argv[1], "r+b"); f.seek(1000); b=f.read(1); f.seek(1000); f.write(bytes([b[0] ^ 1]))' "$1"; }
bk_flip "$obj"
current_c=$(readlink "${root[c]}/current")
db_c_before=$(mariadb-dump --skip-dump-date "${db[c]}" | sha256sum)
# every entry of uploads (itself included) with its type, size, mtime (ns), mode and owner; not its
# parent's mtime (`ls -la` shows `..`: a restore stages beside uploads, in shared/)
tree_sum() { find "$1" -printf '%P %y %s %T@ %m %u:%g\n' | LC_ALL=C sort | sha256sum; }
uploads_c_before=$(tree_sum "${root[c]}/shared/uploads")
r_bad=$(bk_new_id)
bk_vars r-bad-c c "restore_id=\"$r_bad\"" 'backup_storage_type="s3"' "backup_storage_path=\"$bk_s3_path\"" \
    "backup_manifest=@$work/facts-bk-s3.json:backup_manifest" "site_url=\"$url_c\"" s3
play r-bad-c env-restore r-bad-c 2
expect_fact r-bad-c error_code RESTORE_CHECKSUM_MISMATCH
expect_fact r-bad-c restore_verified false
[ "$(readlink "${root[c]}/current")" = "$current_c" ] || fail "c: current changed by a restore that failed verification"
[ "$(mariadb-dump --skip-dump-date "${db[c]}" | sha256sum)" = "$db_c_before" ] || fail "c: database changed by a restore that failed verification"
[ "$(tree_sum "${root[c]}/shared/uploads")" = "$uploads_c_before" ] || fail "c: uploads changed"
! ls -d /var/lib/pressluft/restore/restore-"$r_bad"-* >/dev/null 2>&1 || fail "restore temp files left in /var/lib/pressluft/restore"
bk_flip "$obj"
ok "a flipped byte in an S3 object: RESTORE_CHECKSUM_MISMATCH, c's current, database and uploads untouched"

# ---- the S3 server stops during an upload --------------------------------------------------------
head -c 100000000 /dev/urandom > "$uploads_a/pl-backup-big.bin"
chown "${user[a]}:www-data" "$uploads_a/pl-backup-big.bin"
bk_cut=$(bk_new_id)
bk_cut_path="$s3_prefix_base/$site_a/$env_a/$bk_cut"
bk_vars bk-cut a "backup_id=\"$bk_cut\"" 'backup_scope="full"' 'storage_type="s3"' "storage_path=\"$bk_cut_path\"" s3
play bk-cut backup-create bk-cut 2 &
cut_pid=$!
for _ in $(seq 1 600); do
    pgrep -f "rcat pls3:$S3_BUCKET/$bk_cut_path/uploads.tar.zst" >/dev/null && break
    sleep 0.05
done
pgrep -f "rcat pls3:$S3_BUCKET/$bk_cut_path/uploads.tar.zst" >/dev/null || fail "the upload of uploads.tar.zst never started"
sleep 0.3
"$s3_server" stop
wait "$cut_pid" || fail "backup-create with the S3 server stopped mid-upload did not fail as expected"
expect_fact bk-cut error_code BACKUP_STORAGE_FAILED
"$s3_server" start >/dev/null
[ ! -e "$S3_DATA_DIR/$S3_BUCKET/$bk_cut_path/manifest.json" ] || fail "a manifest was written by a failed backup"
[ ! -e "$S3_DATA_DIR/$S3_BUCKET/$bk_cut_path/uploads.tar.zst" ] || fail "a cut upload left an object"
rm -f "$uploads_a/pl-backup-big.bin"
ok "S3 server stopped during the upload of 100 MB: BACKUP_STORAGE_FAILED, no manifest, no partial object"

# ---- an unhealthy restore is rolled back ---------------------------------------------------------
fatal="${root[a]}/current/wp-content/mu-plugins/pl-fatal.php"
printf '<?php\npl_backup_test_undefined_function();\n' > "$fatal"
chown "${user[a]}:www-data" "$fatal"
bk_bad=$(bk_new_id)
bk_vars bk-bad a "backup_id=\"$bk_bad\"" 'backup_scope="full"' 'storage_type="local"' \
    "storage_path=\"$bk_base/$site_a/$env_a/$bk_bad\""
play bk-bad backup-create bk-bad
rm -f "$fatal"
bk_sql "${db[a]}" "UPDATE wp_posts SET post_title='Hello from the rollback point' WHERE ID=1"
bk_rb=$(bk_new_id)
bk_vars bk-rb a "backup_id=\"$bk_rb\"" 'backup_scope="full"' 'storage_type="local"' \
    "storage_path=\"$bk_base/$site_a/$env_a/$bk_rb\""
play bk-rb backup-create bk-rb
r_rb=$(bk_new_id)
bk_vars r-rb-a a "restore_id=\"$r_rb\"" 'backup_storage_type="local"' "backup_storage_path=\"$bk_base/$site_a/$env_a/$bk_bad\"" \
    "backup_manifest=@$work/facts-bk-bad.json:backup_manifest" "site_url=\"$url_a\"" \
    "rollback_storage_path=\"$bk_base/$site_a/$env_a/$bk_rb\"" "rollback_manifest=@$work/facts-bk-rb.json:backup_manifest"
play r-rb-a env-restore r-rb-a 2
expect_fact r-rb-a error_code RESTORE_ROLLED_BACK
expect_fact r-rb-a restore_healthy false
expect_fact r-rb-a rolled_back true
expect_fact r-rb-a rollback_healthy true
expect_fact r-rb-a healthy true
[ "$(readlink "${root[a]}/current")" = "releases/$(jv "$work/facts-r-rb-a.json" rollback_release)" ] || fail "a: current is not the rollback's release"
[ ! -e "$fatal" ] || fail "a: the failing mu-plugin is still in the current release"
grep -q 'Hello from the rollback point' <<<"$(bk_front a)" || fail "a: not serving the content of the rollback point"
n=$(find "${root[a]}/releases" -mindepth 1 -maxdepth 1 | wc -l)
[ "$n" -le 3 ] || fail "a: $n release directories, at most 3 are kept"
bk_sql "${db[a]}" "UPDATE wp_posts SET post_title='Hello world!' WHERE ID=1"
find "/var/cache/nginx/pressluft/$env_a" -type f -delete 2>/dev/null || true
ok "restore of a backup with a fatal mu-plugin: unhealthy, rolled back to the pre-restore backup (RESTORE_ROLLED_BACK), healthy, previous content; at most 3 releases"

# ---- c gets its own content back -----------------------------------------------------------------
r_c2=$(bk_new_id)
bk_vars r-c-back c "restore_id=\"$r_c2\"" 'backup_storage_type="local"' "backup_storage_path=\"$bk_c_path\"" \
    "backup_manifest=@$work/facts-bk-c.json:backup_manifest" "site_url=\"$url_c\""
play r-c-back env-restore r-c-back
expect_fact r-c-back healthy true
grep -q "<title>$title_c" <<<"$(bk_front c)" || fail "c: its own content is not back"
[ "$(jv "$work/facts-r-c-back.json" url_rewrite)" = "" ] || fail "c: a URL rewrite for a backup of c itself"
ok "c's own backup restored into c (no URL rewrite needed): healthy, its own title again"

# ---- a database-only backup and restore (b) -----------------------------------------------------
bk_db=$(bk_new_id)
bk_vars bk-db-b b "backup_id=\"$bk_db\"" 'backup_scope="db"' 'storage_type="local"' \
    "storage_path=\"$bk_base/$(jv "$work/b.json" site_id)/$(jv "$work/b.json" environment_id)/$bk_db\""
play bk-db-b backup-create bk-db-b
python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["backup_manifest"]
assert m["scope"] == "db" and [a["name"] for a in m["artifacts"]] == ["database.sql.zst"], m' "$work/facts-bk-db-b.json" \
    || fail "b: a db backup with more than the database"
bk_sql "${db[b]}" "UPDATE wp_options SET option_value='Changed by the backup test' WHERE option_name='blogname'"
current_b=$(readlink "${root[b]}/current")
r_db=$(bk_new_id)
bk_vars r-db-b b "restore_id=\"$r_db\"" 'backup_storage_type="local"' \
    "backup_storage_path=\"$bk_base/$(jv "$work/b.json" site_id)/$(jv "$work/b.json" environment_id)/$bk_db\"" \
    "backup_manifest=@$work/facts-bk-db-b.json:backup_manifest" "site_url=\"$(jv "$work/b.json" preview_url)\""
play r-db-b env-restore r-db-b
expect_fact r-db-b healthy true
expect_fact r-db-b restored_release ""
[ "$(readlink "${root[b]}/current")" = "$current_b" ] || fail "b: a database-only restore switched the release"
[ "$(bk_sql "${db[b]}" "SELECT option_value FROM wp_options WHERE option_name='blogname'")" = "$(jv "$work/b.json" site_title)" ] \
    || fail "b: title not restored from the database backup"
ok "database-only backup and restore (b): one artifact, the database back, the release untouched"

# ---- a dump with a trigger: the scratch account may not create it (DEFINER) -> root import --------
# (the usual path imports the stream into the scratch database plrs_<env> as an account limited to
# it and renames the tables in; a DEFINER needs root: the dump is then verified as a file first)
b_site=$(jv "$work/b.json" site_id)
b_env=$(jv "$work/b.json" environment_id)
bk_sql "${db[b]}" "CREATE TRIGGER pl_bk_trigger BEFORE UPDATE ON wp_options FOR EACH ROW SET NEW.autoload = NEW.autoload"
bk_trg=$(bk_new_id)
bk_vars bk-trg-b b "backup_id=\"$bk_trg\"" 'backup_scope="db"' 'storage_type="local"' \
    "storage_path=\"$bk_base/$b_site/$b_env/$bk_trg\""
play bk-trg-b backup-create bk-trg-b
bk_sql "${db[b]}" "DROP TRIGGER pl_bk_trigger; UPDATE wp_options SET option_value='Changed again' WHERE option_name='blogname'"
r_trg=$(bk_new_id)
bk_vars r-trg-b b "restore_id=\"$r_trg\"" 'backup_storage_type="local"' "backup_storage_path=\"$bk_base/$b_site/$b_env/$bk_trg\"" \
    "backup_manifest=@$work/facts-bk-trg-b.json:backup_manifest" "site_url=\"$(jv "$work/b.json" preview_url)\""
play r-trg-b env-restore r-trg-b
expect_fact r-trg-b healthy true
[ "$(bk_sql "${db[b]}" "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='${db[b]}' AND TRIGGER_NAME='pl_bk_trigger'")" = 1 ] \
    || fail "b: the trigger was not restored"
[ "$(bk_sql "${db[b]}" "SELECT option_value FROM wp_options WHERE option_name='blogname'")" = "$(jv "$work/b.json" site_title)" ] \
    || fail "b: title not restored by the root import"
grep -q 'verified, then imported as root' "$work/facts-r-trg-b.json" || fail "b: the dump with a trigger did not take the root path"
grep -q 'imported into a scratch database while verified' "$work/facts-r-db-b.json" || fail "b: the plain dump did not take the scratch path"
bk_sql "${db[b]}" "DROP TRIGGER pl_bk_trigger"
[ -z "$(bk_sql mysql "SELECT User FROM mysql.user WHERE User LIKE 'plrs\\_%'")" ] || fail "a scratch account is left"
# the old tables and the emptied scratch database are dropped by a detached process after the run
for _ in $(seq 1 100); do
    [ -z "$(bk_sql mysql "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'plr%'")" ] && break
    sleep 0.1
done
[ -z "$(bk_sql mysql "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'plr%'")" ] \
    || fail "a scratch database or the old tables are left 10 s after the restore"
ok "a dump with a trigger (DEFINER): verified as a file, imported as root, trigger and data back; plain dumps go through the scratch database; no scratch database or account left"

# ---- a tampered dump: streamed into the scratch database by the limited account, then refused ----
tampered="$bk_base/$b_site/$b_env/tampered-$bk_db"
rm -rf "$tampered"
cp -a "$bk_base/$b_site/$b_env/$bk_db" "$tampered"
printf 'CREATE TABLE `%s`.wp_tamper (x INT);\nCREATE DATABASE pl_tamper_test;\n' "${db[b]}" \
    | zstd -q -c > "$tampered/database.sql.zst"
r_tamper=$(bk_new_id)
bk_vars r-tamper-b b "restore_id=\"$r_tamper\"" 'backup_storage_type="local"' "backup_storage_path=\"$tampered\"" \
    "backup_manifest=@$work/facts-bk-db-b.json:backup_manifest" "site_url=\"$(jv "$work/b.json" preview_url)\""
play r-tamper-b env-restore r-tamper-b 2
expect_fact r-tamper-b error_code RESTORE_CHECKSUM_MISMATCH
expect_fact r-tamper-b restore_verified false
[ -z "$(bk_sql mysql "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='pl_tamper_test' OR SCHEMA_NAME LIKE 'plr%'")" ] \
    || fail "b: the tampered dump created a database, or a scratch database is left"
[ "$(bk_sql mysql "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME='wp_tamper'")" = 0 ] \
    || fail "b: the tampered dump created a table outside the (dropped) scratch database"
[ -z "$(bk_sql mysql "SELECT User FROM mysql.user WHERE User LIKE 'plrs\\_%'")" ] || fail "a scratch account is left"
rm -rf "$tampered"
ok "a tampered dump: its SQL ran only as the account limited to the scratch database (no other database or table touched), RESTORE_CHECKSUM_MISMATCH, nothing left"

# ---- backup-cleanup ------------------------------------------------------------------------------
play rm-local backup-cleanup bk-local
expect_fact rm-local backup_deleted true
[ ! -e "$bk_local_path" ] || fail "local backup directory still there after backup-cleanup"
play rm-local-again backup-cleanup bk-local
expect_changed rm-local-again 0
play rm-s3 backup-cleanup bk-s3
[ "$(jv "$work/facts-rm-s3.json" backup_deleted_objects)" != "[]" ] || fail "rm-s3 deleted nothing"
[ -z "$(find "$S3_DATA_DIR/$S3_BUCKET/$bk_s3_path" -type f 2>/dev/null)" ] || fail "S3 objects left after backup-cleanup"
play rm-s3-again backup-cleanup bk-s3
expect_changed rm-s3-again 0
play rm-cut backup-cleanup bk-cut
# (the server keeps the parts of the cut multipart upload as .rclone_temp_multipart_*: not objects)
[ -z "$(find "$S3_DATA_DIR/$S3_BUCKET/$bk_cut_path" -type f ! -name '.rclone_temp_multipart_*' 2>/dev/null)" ] \
    || fail "objects of the failed backup left"
ok "backup-cleanup removes manifest and artifacts (local and S3, also a failed backup's leftovers); again: changed=0"

# ---- no secret in any log or facts file ----------------------------------------------------------
for secret in "$S3_SECRET_ACCESS_KEY" "$S3_ACCESS_KEY_ID" "$(jv "$work/a.json" db_password)" \
    "$(jv "$work/b.json" db_password)" "$(jv "$work/c.json" db_password)"; do
    ! grep -rqF -- "$secret" "$work"/*.log "$work"/facts-*.json || fail "a secret leaked into a log or facts file"
done
ok "no S3 key, S3 secret or database password in any log or facts file"

backups_cleanup
trap cleanup EXIT
for e in a b c; do
    play "health-after-backups-$e" health-check "$e"
    expect_fact "health-after-backups-$e" healthy true
done
ok "a, b and c healthy after the backup tests"
