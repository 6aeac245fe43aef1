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
pressluft_facts: {type: dict, description: "current_release, release_id, release_health (healthy|unhealthy), release_error, release_files {added, changed, removed, *_paths}, release_previous, release_pruned, releases, release_source, release_timings_ms, healthy; error_code / error on failure; release_plan with plan=true"}
"""

import os
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_release import (
    RELEASE_ID_RE, ReleaseError, build, check_live, check_release_direct, classify, current_release,
    build_update, diff, env_root, fetch, fpm_socket, is_complete, owner_of, plan, prune,
    purge_page_cache, read_meta, release_dirs, remove, switch, update_changes, write_meta)


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
        raise ReleaseError("RELEASE_UNHEALTHY", "release %s failed its check after the switch (%s); switched back to %s"
                           % (rid, detail, cur))
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
    if failure is not None:
        module.exit_json(changed=changed, failed_reason=str(failure), pressluft_facts=facts)
    module.exit_json(changed=changed or bool(pruned), pressluft_facts=facts)


if __name__ == "__main__":
    main()
