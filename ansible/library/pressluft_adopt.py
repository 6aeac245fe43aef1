#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: adopt a WordPress site reached over SSH into one environment (the import's pipeline
# with an SSH source), in one module run on the node.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_adopt
short_description: Adopt a WordPress site reached over SSH into one Pressluft environment
description:
  - "Connects to I(ssh_user)@I(ssh_host):I(ssh_port) with the adoption key I(adopt_private_key)
    (written 0600 into the run's root-only directory, removed after the run), BatchMode, a
    connect timeout and a known_hosts holding only I(source_host_key) (StrictHostKeyChecking=yes:
    another host key - ADOPT_HOST_KEY_MISMATCH; no connection or the key is refused -
    ADOPT_SOURCE_UNREACHABLE, retried)."
  - "Reads I(source_path)/wp-config.php (or the one above it) and wp-includes/version.php (none -
    ADOPT_NOT_WORDPRESS), parses the database settings, C($table_prefix) and the multisite flags
    on the node (multisite - ADOPT_MULTISITE_UNSUPPORTED), logs in to the source's database with
    those credentials (refused - ADOPT_DATABASE_UNREACHABLE), dumps the tables of the prefix ON
    the source (C(mariadb-dump)/C(mysqldump) --single-transaction --quick --no-tablespaces; the
    credentials as a defaults file sent over stdin into a mktemp file of the source user that is
    removed right after) and streams C(tar -cf - wp-content) (without cache, upgrade) back. Nothing
    on the source is changed."
  - "Then exactly pressluft_import's pipeline (pressluft_import.Import with this source): every
    tar member checked, staged beside the live release, tables renamed to the environment's
    prefix, switch, URL rewrite from the source's home/siteurl, Pressluft's administrator, caches,
    health check, rollback to the pre-import backup when unhealthy (IMPORT_UNHEALTHY)."
  - The task always exits normally for these known failures, with C(error_code) and C(error) in
    C(pressluft_facts); the playbook fails the run afterwards. Invalid input fails the task.
options:
  ssh_host: {type: str, required: true}
  ssh_port: {type: int, default: 22}
  ssh_user: {type: str, required: true}
  source_path: {type: str, required: true, description: "the WordPress root on the source"}
  source_host_key: {type: str, required: true, description: "the pinned host key, 'ssh-ed25519 AAAA...'"}
  adopt_private_key: {type: str, required: true, no_log: true}
notes:
  - The other options are pressluft_import's without the archive ones (import_id, release_id,
    import_max_bytes, site_url, wp_admin_*, rollback_storage_path, rollback_manifest, the
    environment's and the storage's).
"""

RETURN = r"""
pressluft_facts:
  type: dict
  description: >-
    pressluft_import's facts (import_url is ssh://user@host:port/path) plus adopt_report (what the
    source holds: WordPress and PHP versions, plugins, themes, sizes, table prefix, home, siteurl),
    adopt_dump_bytes, adopt_content_bytes; failures - error_code, error.
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_adopt import ARGUMENT_SPEC, Adopt
from ansible.module_utils.pressluft_backup_lib import Invalid, Known


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    facts = {}
    job = None
    try:
        job = Adopt(module)
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
