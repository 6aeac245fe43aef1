#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: import an existing WordPress site from an archive into one environment, in one module
# run on the node.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_import
short_description: Import a WordPress site from an archive into one Pressluft environment
description:
  - "Downloads I(archive_url) (http(s); C(file://) only under I(import_dir)) into a root-only
    directory under C(/var/lib/pressluft/restore), hashing and counting the bytes as they arrive:
    more than I(import_max_bytes) is IMPORT_TOO_LARGE, a SHA-256 other than I(archive_sha256)
    IMPORT_CHECKSUM_MISMATCH, a download that fails IMPORT_SOURCE_UNAVAILABLE (retried). A
    C(file://) archive is read where it lies and hashed in the same read as the staging (a mismatch
    is refused before the switch, and comes before any other refusal)."
  - "Reads the archive ONCE: every member is checked as it streams, before it is extracted into a
    root-only staging directory C(releases/.tmp-<release_id>.archive) (not a tar or gzip, truncated
    or corrupt - IMPORT_INVALID_ARCHIVE; absolute paths, C(..), symlinks pointing outside, members
    behind an earlier or a later symlink, a symlink or file replacing an earlier member's
    directory, hard links to anything but an earlier regular file, devices, fifos -
    IMPORT_UNSAFE_ARCHIVE; nothing is written through a link). Formats: C(db.sql) / C(db.sql.gz) +
    C(files/) (the wp-content contents) + optional C(meta.json) (C(source_url), C(table_prefix));
    or one C(*.sql[.gz]) + a C(wp-content/) directory; either optionally under one top-level
    directory (decided once the stream ended). No dump - IMPORT_MISSING_DUMP; the dump's WordPress
    tables (C(CREATE TABLE) names, seen while it loads) use another prefix than the declared one
    (I(source_table_prefix), else meta.json's) - IMPORT_PREFIX_MISMATCH. Check mode reads the
    archive for these checks only."
  - "Stages beside the live environment (nothing live is touched, as the restore; a refusal removes
    everything staged): the dump loads into the scratch database by an account limited to it from
    the moment its member is seen (C(CREATE DATABASE) / C(USE) lines left out; a mariadb-dump /
    mysqldump stream over I(import_load_workers) connections - INSERTs spread, the rest in order
    on one; module_utils/pressluft_dumpload), while the rest is extracted; then the staged
    wp-content (without C(cache), C(upgrade)) is renamed into a new release C(releases/.tmp-<release_id>)
    holding the current release's WordPress core, its C(uploads) into C(shared/.uploads-new-*). The
    scratch tables are renamed from the archive's prefix to the environment's (its wp-config.php
    stays as it is) with the C(<prefix>user_roles) option and the C(<prefix>…) user meta keys."
  - "Switches with the restore's code (one RENAME TABLE, uploads exchanged, C(current) repointed to
    C(releases/<release_id>)), makes sure the administrator I(wp_admin_login) exists (PHP helper
    C(ensure-admin); created with I(wp_admin_password) when missing), then rewrites the source URL
    (I(source_url), else meta.json's, plus the dump's C(home) and C(siteurl); both schemes) to
    I(site_url) with the PHP helper's serialized-safe C(search-replace --lean) (the tables, without
    loading WordPress: what the site's code wrote while it loaded for the administrator is rewritten
    too), prunes old releases,
    purges the environment's Redis keys and page cache and runs the health check. Unhealthy (or a
    step after the switch failed) with I(rollback_storage_path): the pre-import backup is restored
    by the restore's code - IMPORT_UNHEALTHY; without one or when the rollback fails IMPORT_FAILED."
  - The task always exits normally for these known failures, with C(error_code) and C(error) in
    C(pressluft_facts); the playbook fails the run afterwards. Invalid input fails the task.
options:
  import_id: {type: str, required: true}
  release_id: {type: str, description: "UUID: the new release directory's name"}
  archive_url: {type: str, no_log: true, description: "one archive; or database_url + content_url"}
  archive_sha256: {type: str}
  database_url: {type: str, no_log: true, description: "a dump alone (.sql / .sql.gz; gzip detected by its bytes)"}
  database_sha256: {type: str}
  content_url: {type: str, no_log: true, description: "a wp-content tarball (the directory or its contents)"}
  content_sha256: {type: str}
  source_url: {type: str}
  source_table_prefix: {type: str}
  import_max_bytes: {type: int, default: 21474836480}
  import_dir: {type: str, default: /var/lib/pressluft/imports}
  download_timeout: {type: float, default: 60}
  import_load_workers: {type: int, default: 2, description: "client connections the dump's INSERTs are spread over (1 = one connection, as mariadb < dump)"}
  wp_admin_login: {type: str}
  wp_admin_email: {type: str}
  wp_admin_password: {type: str, no_log: true}
  site_id: {type: str}
  environment_id: {type: str}
  rollback_storage_path: {type: str, description: "the pre-import backup (storage_type, S3 settings as pressluft_backup)"}
  rollback_manifest: {type: dict}
  pre_backup_id:
    type: str
    description: "a pre-import backup declared and not stored yet (instead of rollback_storage_path and
      rollback_manifest): taken first (pressluft_backup's create, in a thread beside reading and staging the
      archive; module_utils/pressluft_prebackup) and waited for before the switch; it is then the rollback
      point, and its facts are reported as pre_backup (also when the import is refused). Not stored -
      IMPORT_FAILED, nothing changed."
  pre_backup_storage_path: {type: str, description: "with pre_backup_id: its storage path (storage_type and S3 settings as for the rollback)"}
notes:
  - The other options are pressluft_backup's restore options (environment_root, db_name, php_version,
    redis_prefix, site_url, storage_type, s3_*, helper, health_timeout, ...).
"""

RETURN = r"""
pressluft_facts:
  type: dict
  description: >-
    import_id, release_id, import_url (credentials redacted), import_size_bytes, import_sha256
    (or import_database_sha256 + import_content_sha256),
    import_members, import_table_prefix, import_tables_renamed, import_files, import_changed,
    imported_release, import_source_url, url_rewrites, admin_user, cache_purge, import_healthy,
    healthy, health_url, health_checks, health_checked_at, rolled_back, rollback_release,
    rollback_healthy, import_changes, import_timings_ms, pre_backup (backup_id, backup_checksum,
    backup_manifest, backup_size_bytes, ...: the pre-import backup the run took); failures - error_code, error.
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_backup_lib import Invalid, Known
from ansible.module_utils.pressluft_import import ARGUMENT_SPEC, Import


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts = {}
    job = None
    try:
        job = Import(module)
        facts = job.facts
        job.run()
    except Known as exc:
        facts.update({"error_code": exc.code, "error": str(exc)})
    except Invalid as exc:
        module.fail_json(msg=str(exc))
    changed = bool(job is not None and job.changes)
    if job is not None:
        facts["import_changes"] = job.changes
        facts["import_timings_ms"] = job.timer.done()
    module.exit_json(changed=changed, pressluft_facts=facts, error_code=facts.get("error_code"))


if __name__ == "__main__":
    main()
