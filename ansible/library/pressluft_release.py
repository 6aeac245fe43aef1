#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: deploy one release of an environment (build, check, atomic switch, check, keep N).
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_release
short_description: Build, check and switch to one release of a Pressluft environment
description:
  - "Builds C(releases/<release_id>/) of the environment (unless it is complete already: a rerun
    or a rollback reuses it; a partial C(.tmp-<release_id>) build is removed and rebuilt; a
    pruned rollback target is rebuilt from its source) from I(source_type) / I(source_ref): a
    git repository (C(<url>#<branch, tag or commit>)) or an archive (C(file://), C(http(s)://),
    C(.tar.gz) / C(.zip), optional C(#sha256=<hex>)). Content that holds C(wp-load.php) is a whole
    WordPress root; content with only C(wp-content/) is an overlay whose themes, plugins and
    mu-plugins replace those of a (hard-linked) copy of the current release. C(wp-config.php),
    C(wp-content/uploads), C(wp-content/object-cache.php) and Pressluft's mu-plugin of the source
    are ignored; C(shared/wp-config.php) and C(shared/uploads) are linked in, Pressluft's
    mu-plugin and (when the current release has it) its object-cache drop-in placed, owner and
    modes as the converge leaves them."
  - "Pre-switch check: C(GET /) of I(site_url) served by the environment's own PHP-FPM pool
    straight from the new directory (FastCGI over the pool's socket, SCRIPT_FILENAME and
    DOCUMENT_ROOT in it, the site's Host), C(current) untouched; 200 with WordPress content
    required. Then C(current) is switched atomically (new symlink renamed over it; nginx passes
    C($realpath_root) so PHP-FPM needs no reload) and the post-switch check runs through nginx
    (C(<site_url>/?pressluft-release=<id>), bypassing the page cache). When it passes the
    environment's page cache is purged; when it fails C(current) is switched back (visitors of
    cached pages never saw the failing release)."
  - "Updates (I(source_type=update)) that include WordPress core run WordPress' database upgrade
    right after the switch, before the post-switch check (the PHP helper's C(db-upgrade):
    C(wp_upgrade()), plugins not loaded, as the environment's user); its C(from)/C(to) are
    reported as C(db_upgrade). When the upgrade or the post-switch check fails, C(current) is
    switched back and, when the database may have been changed, the DATABASE of the update's
    pre-update backup (I(rollback_storage_path), I(rollback_manifest)) is restored with
    pressluft_backup's own restore code (module_utils/pressluft_backup_lib restore_database: the
    dump streamed once from the storage and hashed while a scratch account imports it, refused
    before anything live changes when size or SHA-256 differ, then renamed in; files, uploads
    and C(current) untouched), and the switched-back release is checked again
    (C(rollback_healthy)). The database may have been changed when the core database upgrade ran
    (or failed half-way), or when the update changed plugins (their code served live requests
    and plugins migrate their own tables on load; WordPress runs no activation hook on an
    update). A theme-only update, and any failure before the switch (one check request, no
    upgrade), restore nothing: the backup may be up to the freshness window old and a restore
    discards what was written since."
  - Release directories beyond the I(releases_keep) newest are removed, never the current or
    the previous one.
  - With I(plan=true) nothing of the environment changes: the release is built in a scratch
    directory under C(tmp/), compared with the current release and removed.
options:
  site_id: {type: str, required: true}
  environment_id: {type: str, required: true}
  sites_root: {type: str, default: /var/www/sites}
  release_id: {type: str, required: true, description: the release's id = its directory name}
  source_type: {type: str, required: true, description: "git or upload (others: the directory must exist)"}
  source_ref: {type: str, required: true}
  site_url: {type: str, required: true, description: the URL WordPress serves (primary domain or preview URL)}
  releases_keep: {type: int, default: 5}
  login_plugin_src: {type: str, default: /usr/local/lib/pressluft/pressluft-login.php}
  health_timeout: {type: float, default: 10}
  plan: {type: bool, default: false}
  update_scope: {type: str, default: all, description: "source_type=update: core, plugins, themes or all"}
  helper: {type: str, default: /usr/local/lib/pressluft/pressluft-helper.php}
  php_version: {type: str, default: "", description: "X.Y; empty: the version of the environment's pool"}
  db_upgrade_timeout: {type: float, default: 600}
  db_name: {type: str, default: "", description: "the environment's database (default: its Linux user name)"}
  redis_prefix: {type: str, default: ""}
  rollback_backup_id: {type: str, default: "", description: the update's pre-update backup (reported)}
  rollback_storage_type: {type: str, default: "", description: "local or s3: the pre-update backup's storage"}
  rollback_storage_path: {type: str, default: ""}
  rollback_manifest: {type: dict, description: the pre-update backup's recorded manifest}
  s3_endpoint: {type: str}
  s3_bucket: {type: str}
  s3_region: {type: str, default: us-east-1}
  s3_access_key_id: {type: str, no_log: true}
  s3_secret_access_key: {type: str, no_log: true}
  s3_path_style: {type: bool, default: true}
  update_source_dir:
    type: str
    description: >-
      source_type=update: the offline update source on the node (C(core/) a WordPress tree,
      C(plugins/<slug>/), C(themes/<slug>/)); every installed component whose source version is
      newer (wp-includes/version.php, plugin and theme headers) replaces its copy in the new
      release (a hard-linked copy of the current one); C(update_components) lists from/to.
"""

RETURN = r"""
failed_reason: {type: str, description: the error when the release could not be deployed}
pressluft_facts: {type: dict, description: "current_release, release_id, release_health (healthy|unhealthy), release_error, release_files {added, changed, removed, *_paths}, release_previous, release_pruned, releases, release_source, release_timings_ms, healthy, db_upgrade {from, to, changed | error} (core updates), restore_needed, release_switched_back; error_code / error on failure; release_plan with plan=true"}
restore_needed: {type: bool, description: an update failed after its switch and may have changed the database (its pre-update backup's database was restored when given)}
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_backup_lib import Invalid, Known, restore_database
from ansible.module_utils.pressluft_checks import run_helper
from ansible.module_utils.pressluft_release import (
    RELEASE_ID_RE, ReleaseError, build, check_live, check_release_direct, classify, current_release,
    build_update, diff, env_root, fetch, fpm_socket, is_complete, linux_user, owner_of, plan, prune,
    purge_page_cache, read_meta, release_dirs, remove, switch, update_changes, write_meta)


def php_cli(version, user):
    if not re.match(r"^[0-9]+\.[0-9]+$", version or ""):
        pools = sorted(glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % user))
        version = pools[-1].split("/")[3] if pools else ""
    return "php" + version if version and shutil.which("php" + version) else "php"


def db_upgrade(p, root):
    """WordPress' database upgrade of the live release (the PHP helper's db-upgrade, as the
    environment's user): (ok, {from, to, changed} or the error)."""
    user = linux_user(p["environment_id"])
    try:
        ok, res = run_helper(user, php_cli(p["php_version"], user), p["helper"], os.path.join(root, "current"),
                             "db-upgrade", p["db_upgrade_timeout"])
    except subprocess.TimeoutExpired:
        return False, "timed out after %ds" % p["db_upgrade_timeout"]
    if not ok:
        return False, res
    return True, {k: res.get(k) for k in ("from", "to", "changed")}


def update_touches_database(components):
    """Whether an update's code may change the database once live: core (its database upgrade)
    or plugins (they migrate their own tables on load; WordPress runs no activation hook on an
    update). Themes only: no."""
    return any(c.get("type") in ("core", "plugin") for c in components or [])


def restore_update_database(p, root, cur, facts, timings):
    """The pre-update backup's database back in place (pressluft_backup's restore code), then the
    switched-back release checked again. Reported: database_restored, restore_error,
    restore_facts, rollback_healthy."""
    facts["rollback_backup_id"] = p["rollback_backup_id"] or None
    if not p["rollback_storage_path"] or not isinstance(p.get("rollback_manifest"), dict):
        facts.update(database_restored=False, restore_error="no pre-update backup was given to restore")
        return
    params = {
        "restore_id": p["release_id"], "site_id": p["site_id"], "environment_id": p["environment_id"],
        "sites_root": p["sites_root"], "db_name": p["db_name"] or None, "php_version": p["php_version"],
        "redis_prefix": p["redis_prefix"] or None, "site_url": p["site_url"],
        "storage_type": p["rollback_storage_type"], "storage_path": p["rollback_storage_path"],
        "backup_manifest": p["rollback_manifest"], "helper": p["helper"],
    }
    for k in ("s3_endpoint", "s3_bucket", "s3_region", "s3_access_key_id", "s3_secret_access_key", "s3_path_style"):
        if p.get(k) is not None:
            params[k] = p[k]
    t = time.monotonic()
    try:
        r = restore_database(params, "update_rollback")
        facts["database_restored"] = True
        facts["restore_facts"] = {k: r.get(k) for k in ("backup_id", "restore_verified", "url_rewrite",
                                                        "cache_purge", "restore_changes", "restore_timings_ms")}
    except (Known, Invalid) as exc:
        facts.update(database_restored=False,
                     restore_error="%s%s" % ("%s: " % exc.code if isinstance(exc, Known) else "", exc))
    except Exception as exc:  # noqa: BLE001 - reported with the release's failure
        facts.update(database_restored=False, restore_error="%s: %s" % (type(exc).__name__, exc))
    timings["database_restore"] = int((time.monotonic() - t) * 1000)
    if cur:
        ok, detail = check_live(p["site_url"], cur, p["health_timeout"])
        facts["rollback_healthy"] = ok
        facts["healthy"] = ok
        if not ok:
            facts["rollback_error"] = detail


def deploy(p, facts, timings):
    root = env_root(p["sites_root"], p["site_id"], p["environment_id"])
    if not os.path.isdir(os.path.join(root, "releases")):
        raise ReleaseError("RELEASE_INVALID", "environment root %s has no releases/ (converge it first)" % root)
    rid = p["release_id"]
    uid, gid = owner_of(root)
    rel_dir = os.path.join(root, "releases")
    target = os.path.join(rel_dir, rid)
    cur = current_release(root)
    facts["release_previous"] = cur
    changed = False
    started = time.monotonic()
    if not is_complete(root, rid) and p["source_type"] == "update":
        if os.path.lexists(target):
            remove(target)
        if not cur or not is_complete(root, cur):
            raise ReleaseError("RELEASE_INVALID", "an update needs a current release")
        changes = update_changes(os.path.join(rel_dir, cur), p["update_source_dir"], p["update_scope"])
        tmp = build_update(root, rid, cur, p["update_source_dir"], changes, uid, gid, p["login_plugin_src"])
        files = diff(os.path.join(rel_dir, cur), tmp)
        write_meta(root, rid, {"built_at": time.time(), "kind": "update", "source_type": "update",
                               "components": changes, "files": files}, uid, gid)
        os.rename(tmp, target)
        changed = True
        facts["update_components"] = changes
        facts["release_files"] = files
        timings["build"] = int((time.monotonic() - started) * 1000)
    elif not is_complete(root, rid):
        if os.path.lexists(target):
            remove(target)  # an incomplete directory of that name: rebuilt
        work = tempfile.mkdtemp(prefix=".release-", dir=os.path.join(root, "tmp"))
        try:
            content, info = fetch(p["source_type"], p["source_ref"], work)
            timings["fetch"] = int((time.monotonic() - started) * 1000)
            kind = classify(content)
            tmp = build(root, rid, content, kind, cur, uid, gid, p["login_plugin_src"], work)
            files = diff(os.path.join(rel_dir, cur) if cur else None, tmp)
            write_meta(root, rid, {"built_at": time.time(), "kind": kind, "source_type": p["source_type"],
                                   "source": info, "files": files}, uid, gid)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        changed = True
        facts["release_source"] = info
        facts["release_files"] = files
        timings["build"] = int((time.monotonic() - started) * 1000)
    else:
        facts["release_source"] = read_meta(root, rid).get("source")
        if cur != rid:
            facts["release_files"] = diff(os.path.join(rel_dir, cur) if cur else None, target)
    if cur == rid:
        ok, detail = check_live(p["site_url"], rid, p["health_timeout"])
        facts.update(current_release=rid, release_health="healthy" if ok else "unhealthy", healthy=ok)
        if not ok:
            facts["release_error"] = "the live release fails its check: %s" % detail
        return changed

    t = time.monotonic()
    ok, detail = check_release_direct(target, p["site_url"], fpm_socket(p["environment_id"]), p["health_timeout"])
    timings["check_before_switch"] = int((time.monotonic() - t) * 1000)
    if not ok:
        facts.update(current_release=cur, release_health="unhealthy",
                     release_error="before the switch: %s" % detail)
        raise ReleaseError("RELEASE_UNHEALTHY", "release %s failed its check before the switch (%s); %s keeps serving"
                           % (rid, detail, cur))
    t = time.monotonic()
    # The page cache is purged only once the new release passed its check through nginx: until
    # then visitors get the cached pages of the release that served them (the check itself
    # bypasses the cache; error answers are never cached).
    switch(root, rid, uid, gid)
    timings["switch"] = int((time.monotonic() - t) * 1000)
    components = read_meta(root, rid).get("components") if p["source_type"] == "update" else None
    ok, detail = True, None
    if any(c.get("type") == "core" for c in components or []):
        t = time.monotonic()
        ok, res = db_upgrade(p, root)
        timings["db_upgrade"] = int((time.monotonic() - t) * 1000)
        facts["db_upgrade"] = res if ok else {"error": res}
        if not ok:
            detail = "the database upgrade failed: %s" % res
    if ok:
        t = time.monotonic()
        ok, detail = check_live(p["site_url"], rid, p["health_timeout"])
        timings["check_after_switch"] = int((time.monotonic() - t) * 1000)
    if ok:
        purge_page_cache(p["environment_id"])
    else:
        if cur:
            switch(root, cur, uid, gid)
        facts.update(current_release=cur, release_health="unhealthy", release_rolled_back=True,
                     release_error="after the switch: %s; switched back to %s" % (detail, cur))
        restored = ""
        if update_touches_database(components):
            facts["restore_needed"] = True
            restore_update_database(p, root, cur, facts, timings)
            restored = ("; the database was restored from the pre-update backup" if facts.get("database_restored")
                        else "; restoring the pre-update backup's database failed: %s" % facts.get("restore_error"))
        raise ReleaseError("RELEASE_UNHEALTHY", "release %s failed its check after the switch (%s); switched back to %s%s"
                           % (rid, detail, cur, restored))
    facts.update(current_release=rid, release_health="healthy", healthy=True)
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            site_id=dict(type="str", required=True),
            environment_id=dict(type="str", required=True),
            sites_root=dict(type="str", default="/var/www/sites"),
            release_id=dict(type="str", required=True),
            source_type=dict(type="str", required=True),
            source_ref=dict(type="str", required=True),
            site_url=dict(type="str", required=True),
            releases_keep=dict(type="int", default=5),
            login_plugin_src=dict(type="str", default="/usr/local/lib/pressluft/pressluft-login.php"),
            health_timeout=dict(type="float", default=10.0),
            plan=dict(type="bool", default=False),
            update_scope=dict(type="str", default="all"),
            update_source_dir=dict(type="str", default=""),
            helper=dict(type="str", default="/usr/local/lib/pressluft/pressluft-helper.php"),
            php_version=dict(type="str", default=""),
            db_upgrade_timeout=dict(type="float", default=600.0),
            db_name=dict(type="str", default=""),
            redis_prefix=dict(type="str", default=""),
            rollback_backup_id=dict(type="str", default=""),
            rollback_storage_type=dict(type="str", default=""),
            rollback_storage_path=dict(type="str", default=""),
            rollback_manifest=dict(type="dict"),
            s3_endpoint=dict(type="str"),
            s3_bucket=dict(type="str"),
            s3_region=dict(type="str", default="us-east-1"),
            s3_access_key_id=dict(type="str", no_log=True),
            s3_secret_access_key=dict(type="str", no_log=True),
            s3_path_style=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not RELEASE_ID_RE.match(p["release_id"] or ""):
        module.fail_json(msg="release_id %r is not a valid directory name" % p["release_id"])
    facts = {"release_id": p["release_id"]}
    timings = {}
    root = env_root(p["sites_root"], p["site_id"], p["environment_id"])
    if p["plan"] or module.check_mode:
        try:
            facts["release_plan"] = plan(root, p["release_id"], p["source_type"], p["source_ref"])
        except ReleaseError as exc:
            facts.update(error_code=exc.code, error=exc.message)
            module.exit_json(changed=False, failed_reason=exc.message, pressluft_facts=facts)
        module.exit_json(changed=False, pressluft_facts=facts)
    changed = False
    failure = None
    started = time.monotonic()
    try:
        changed = deploy(p, facts, timings)
    except ReleaseError as exc:
        failure = exc
        changed = True
        facts.update(error_code=exc.code, error=exc.message)
        if exc.code in ("RELEASE_INVALID", "RELEASE_CHECKSUM_MISMATCH", "RELEASE_UNHEALTHY"):
            facts["release_health"] = "unhealthy"
            facts.setdefault("release_error", exc.message)
        facts.setdefault("current_release", current_release(root))
    except Exception as exc:  # noqa: BLE001 - reported as a play failure with the facts
        failure = exc
        facts.update(error="%s: %s" % (type(exc).__name__, exc))
        facts.setdefault("current_release", current_release(root))
    try:
        protect = {r for r in (facts.get("current_release"), facts.get("release_previous")) if r}
        pruned = prune(root, p["releases_keep"], protect) if os.path.isdir(os.path.join(root, "releases")) else []
    except OSError as exc:
        pruned = []
        facts["release_prune_error"] = str(exc)
    facts["release_pruned"] = pruned
    facts["releases"] = release_dirs(root)
    timings["total"] = int((time.monotonic() - started) * 1000)
    facts["release_timings_ms"] = timings
    restore_needed = bool(facts.get("restore_needed"))
    if failure is not None:
        module.exit_json(changed=changed, failed_reason=str(failure), restore_needed=restore_needed,
                         pressluft_facts=facts)
    module.exit_json(changed=changed or bool(pruned), restore_needed=False, pressluft_facts=facts)


if __name__ == "__main__":
    main()
