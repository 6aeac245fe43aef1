#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: create, delete and restore backups of one environment, in one module run on the node.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_backup
short_description: Back up, delete backups of, and restore one Pressluft environment
description:
  - "I(action=create): writes the artifacts of I(backup_scope) to the storage target, streamed
    (producer | zstd -> this module, which hashes the bytes with SHA-256 on the fly and hands them
    to C(rclone rcat) or a file - no artifact is held in memory or, for S3, on the node's disk),
    reads every artifact back from the target and compares size and SHA-256, and writes
    C(manifest.json) last. C(database.sql.zst): C(mariadb-dump --single-transaction --quick
    --routines --triggers --hex-blob --no-tablespaces) of I(db_name) as root over the socket (no
    table locks for InnoDB). C(files.tar.zst): the current release's C(wp-content) without
    C(uploads), C(cache), C(upgrade) and C(upgrade-temp-backup), plus every top-level entry of the
    release that is not WordPress core (C(wp-admin), C(wp-includes), C(index.php), C(wp-*.php),
    C(xmlrpc.php), C(license.txt), C(readme.html)) and not C(wp-config.php) (a link to
    C(shared/wp-config.php), which holds credentials and is never backed up). WordPress core is
    not in the backup: a restore takes it from the target's current release (the manifest records
    C(wordpress_version)). C(uploads.tar.zst): C(shared/uploads). Both archives are made by GNU
    tar running as the environment's Linux user (it reads nothing that user cannot read). Scope
    C(db) = the database, C(files) = files + uploads, C(full) = all three."
  - "A rerun for a backup whose manifest exists and whose artifacts verify changes nothing and
    reports the same facts. A manifest that does not verify is removed and the backup made again.
    A manifest of another backup id at I(storage_path) is never touched (BACKUP_STORAGE_FAILED).
    Any failure removes what this run wrote (never leaving a manifest) and reports C(error_code)
    BACKUP_DUMP_FAILED, BACKUP_STORAGE_FAILED or BACKUP_VERIFY_FAILED."
  - "I(action=delete): removes C(manifest.json) first, then the artifacts (the fixed names, those
    the manifest lists, partial files of an interrupted run) and, for C(local), the directory when
    it is empty. Other files are left and reported as C(backup_leftovers). Nothing there: no change."
  - "I(action=restore): (1) reads C(manifest.json) from the target, which must equal
    I(backup_manifest), and checks the rollback backup's manifest (and lists its artifacts) when
    I(rollback_storage_path) is given, beside (2). (2) Reads every artifact ONCE, side by side, hashing it
    with SHA-256 while it is applied beside the live environment - the files archive into a new
    release C(releases/.tmp-<ts>) (the current release's WordPress core - hard links when its
    files are owned as pressluft_environment sets them, else a copy - + the archive, extracted by
    tar as the environment's user), the uploads into C(shared/.uploads-new-<ts>), the dump into
    the scratch database C(plrs_<env>) by an account of that name that holds privileges on that
    database only (so a dump that does not match its checksum can change nothing else before it
    is refused). Any checksum or size that differs, or storage that cannot be read, discards all
    of it: nothing in the environment was touched (RESTORE_CHECKSUM_MISMATCH,
    RESTORE_STORAGE_UNREADABLE); a preparation that failed although every checksum matched is
    RESTORE_FAILED, also with nothing touched. A dump the scratch account cannot import
    (DEFINERs of triggers, views or routines need root) is downloaded again into a private 0700
    directory under C(/var/lib/pressluft/restore), verified, and imported as root at the switch.
    Owners and modes as pressluft_environment sets them; the login mu-plugin and Pressluft's
    object-cache drop-in follow the environment, not the backup. (3) Switches: the database (the
    live views, triggers and routines dropped, then one RENAME TABLE statement moves the live
    tables out to C(plro_<env>) and the scratch tables in, atomically; the helper databases and
    the account are dropped), the uploads directory (renameat2 RENAME_EXCHANGE) and C(current)
    (atomic rename of a link). (4) When the manifest's C(site_url) differs from I(site_url),
    runs the PHP helper's serialized-safe C(search-replace) as the environment's user (and again
    for the imported C(home) when that is yet another URL). (5) Deletes the environment's Redis
    keys (its prefix only) and page cache files; PHP-FPM is started when down, never reloaded (the
    new release runs under its own real paths). (6) Health check: an HTTP 200 with WordPress
    content at I(site_url) (PHP CLI checks of the database and the install name the cause when
    it fails). Unhealthy (or a step after the first switch failed) and
    I(rollback_storage_path) given: the rollback backup is verified and restored the same way,
    health-checked, and the run reports RESTORE_ROLLED_BACK; without a rollback (or when the
    rollback cannot complete) RESTORE_FAILED. The last 3 releases (and always C(current)) are
    kept; older ones leave C(releases/) at once and are deleted in the background (not waited
    for). A rerun first removes what an interrupted run left (C(.tmp-*), C(.uploads-new-*), the
    scratch databases and account)."
  - The task always exits normally for these known failures, with C(error_code) and C(error) in
    C(pressluft_facts); the playbook fails the run afterwards. Invalid input fails the task.
  - "S3 through C(rclone), configured only through environment variables (remote C(pls3), no config
    file, C(AWS_*) and other C(RCLONE_*) variables removed): credentials are never on a command
    line, in a file or in the output."
options:
  action: {type: str, required: true, choices: [create, delete, restore]}
  backup_id: {type: str, description: "UUID; create, delete"}
  restore_id: {type: str, description: "UUID; restore"}
  site_id: {type: str, description: "create, restore"}
  environment_id: {type: str, description: "create, restore"}
  environment_root: {type: str, description: Must equal C(<sites_root>/<site_id>/<environment_id>) when given.}
  sites_root: {type: str, default: /var/www/sites}
  db_name: {type: str, description: "Default: the Linux user name."}
  php_version: {type: str, description: "X.Y; empty: the version of the environment's pool."}
  table_prefix: {type: str, description: "Default: read from shared/wp-config.php, else wp_"}
  redis_prefix: {type: str, description: "Default: pressluft_<environment_id>:"}
  site_url: {type: str, description: "create: recorded in the manifest; restore: the target's URL (rewrite target, health URL)"}
  preview_url: {type: str, description: Used when I(site_url) is empty.}
  backup_scope: {type: str, choices: [full, db, files], default: full}
  storage_type: {type: str, choices: [local, s3], description: the backup's storage (restore - the backup to restore)}
  storage_path: {type: str, description: "local - the backup's directory (created 0700 root); s3 - its key prefix in s3_bucket"}
  s3_endpoint: {type: str}
  s3_bucket: {type: str}
  s3_region: {type: str, default: us-east-1}
  s3_access_key_id: {type: str, no_log: true}
  s3_secret_access_key: {type: str, no_log: true}
  s3_path_style: {type: bool, default: true}
  backup_manifest: {type: dict, description: "restore - the manifest recorded when the backup completed"}
  rollback_storage_path: {type: str, description: "restore - the pre-restore backup of the target (same storage type and S3 settings)"}
  rollback_manifest: {type: dict, description: "restore - its recorded manifest (required with rollback_storage_path)"}
  wordpress_source_dir: {type: str, default: /usr/share/wordpress, description: "WordPress core when the target has no current release"}
  login_plugin_src: {type: str, default: /usr/local/lib/pressluft/pressluft-login.php}
  object_cache_src:
    type: str
    default: /usr/local/lib/pressluft/pressluft-object-cache.php
    description: "Pressluft's object-cache drop-in: in a restored release when the current one has it"
  helper: {type: str, default: /usr/local/lib/pressluft/pressluft-helper.php}
  health_timeout: {type: float, default: 10}
  health_retries: {type: int, default: 1}
"""

RETURN = r"""
pressluft_facts:
  type: dict
  description: >-
    create - backup_id, backup_scope, backup_storage_type, backup_storage_path, backup_manifest,
    backup_size_bytes, backup_checksum (SHA-256 of manifest.json's bytes), backup_created (false
    for a verified no-op rerun), backup_timings_ms; backup_cleanup after a failure;
    delete - backup_deleted (true), backup_id, backup_storage_path, backup_deleted_objects,
    backup_leftovers;
    restore - restore_id, backup_id, backup_scope, restore_verified, restore_healthy,
    restored_release, rolled_back, rollback_release, rollback_healthy, healthy, health_url,
    health_checks, health_checked_at, url_rewrite, url_rewrite_home, cache_purge, restore_changes,
    restore_timings_ms (check mode: only the verification);
    failures - error_code, error.
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_backup_lib import ARGUMENT_SPEC, Backup, Invalid, Known, Restore


# ------------------------------------------------------------------ main ------------------------
def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    action = module.params["action"]
    facts = {}
    changed = False
    timer = None
    try:
        if action == "restore":
            job = Restore(module)
            facts, timer = job.facts, job.timer
            try:
                job.restore()
            finally:
                changed = bool(job.changes)
                facts["restore_changes"] = job.changes
        else:
            job = Backup(module)
            facts, timer = job.facts, job.timer
            changed, more = job.create() if action == "create" else job.delete()
            facts.update(more)
            if action == "create":
                facts["backup_created"] = changed
    except Known as exc:
        facts.update({"error_code": exc.code, "error": str(exc)})
        changed = changed or action == "restore" and bool(facts.get("restore_changes"))
    except Invalid as exc:
        module.warn("pressluft_backup failed: %s" % exc)
        module.fail_json(msg=str(exc))
    if timer is not None:
        facts["restore_timings_ms" if action == "restore" else "backup_timings_ms"] = timer.done()
    module.exit_json(changed=changed, pressluft_facts=facts, error_code=facts.get("error_code"))


if __name__ == "__main__":
    main()
