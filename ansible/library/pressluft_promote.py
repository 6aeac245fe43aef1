#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: drift baselines, drift checks, promotion plans and promotions (staging -> production).
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_promote
short_description: Drift check / plan / promotion of a Pressluft environment
description:
  - "Shared code and the definitions (presets, volatile rows and tables, excluded files) are in
    module_utils/pressluft_promote.py. Drift = production's OVERWRITABLE data (every table of its
    prefix that is neither protected by the preset nor volatile; wp-content minus uploads,
    Pressluft's drop-in and mu-plugin, cache/ and upgrade/) differs from the baseline."
  - "The drift baseline (row count + checksum per overwritable table, file manifest with size and
    SHA-256) is recorded by pressluft_environment while it clones production, from the clone's
    own copy (the same snapshot)."
  - "I(mode=check): compares production now with I(baseline): C(drift_status) clean | drifted,
    C(drift_tables), C(drift_files), C(drift_reason), plus the current checksums."
  - "I(mode=plan): what a promotion would do (tables synced / protected, files added / changed /
    removed, drift), touching nothing."
  - "I(mode=promote): a new release of production (a hard-linked copy of its current release with
    the source's wp-content synced in with deletes, except the excluded paths) and every
    overwritable table of the source copied into production's database under temporary names,
    volatile option rows kept from production, the source URL rewritten to I(site_url) by the PHP
    helper's serialized-safe search-replace restricted to those temporary tables, then swapped in
    with one RENAME TABLE (the replaced tables kept aside); protected and volatile tables are never
    written, tables only production has are left alone. The new release is checked through
    production's PHP-FPM pool (pre-switch check) before C(current) is switched atomically,
    the page cache and the environment's Redis keys (its prefix only) are emptied, PHP-FPM is
    reloaded and the health checks run. Unhealthy: the tables are swapped back and C(current)
    switched back (error_code PROMOTION_ROLLED_BACK); when production is still unhealthy after
    that, C(restore_needed) asks the playbook to restore the pre-promotion backup. Healthy: the
    new baseline (production now equals what was promoted) is reported as C(drift_baseline).
    A rerun for a promotion that completed reports the same facts and changes nothing; a run that
    died after the swap is undone first and then made again."
options:
  mode: {type: str, required: true, choices: [check, plan, promote]}
  site_id: {type: str, required: true}
  environment_id: {type: str, required: true, description: the production environment}
  environment_root: {type: str, required: true}
  db_name: {type: str, required: true}
  preset: {type: str, required: true, choices: [content-protect, commerce-protect]}
  baseline: {type: dict, description: "mode=check / plan: the stored baseline"}
  promotion_id: {type: str, description: "mode=promote"}
  release_id: {type: str, description: "mode=promote: the new release's directory name (releases/<release_id>); default a timestamp"}
  source_environment_root: {type: str}
  source_db_name: {type: str}
  source_site_url: {type: str}
  site_url: {type: str, description: "production's URL (rewrite target, health URL)"}
  redis_prefix: {type: str}
  php_version: {type: str}
  helper: {type: str, default: /usr/local/lib/pressluft/pressluft-helper.php}
  health_timeout: {type: float, default: 10}
  health_retries: {type: int, default: 1}
"""

RETURN = r"""
pressluft_facts: {type: dict, description: facts for the control plane (no secrets)}
"""

import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_checks import last_json_line, run_helper, wordpress_checks
from ansible.module_utils.pressluft_release import check_release_direct, prune
from ansible.module_utils.pressluft_promote import (
    EXCLUDED_FILES, NEW_PREFIX, OLD_PREFIX, PRESETS, PromoteError, baseline, compare, current_release,
    checksum_algo, db_checksums, diff_files, file_manifest, ident, kind_of, list_tables, mariadb, plan, table_prefix,
    volatile_option_sql)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DB_IDENT_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
FASTCGI_CACHE_DIR = "/var/cache/nginx/pressluft"
PENDING = ".pressluft-promotion-pending.json"
RELEASE_RE = re.compile(r"^[0-9a-z][0-9a-z._-]{0,63}$")


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def url_ok(url):
    u = urlsplit(url or "")
    return u.scheme in ("http", "https") and bool(u.hostname) and not re.search(r"[\s\"'<>\\]", url)


class Promotion:
    def __init__(self, p):
        self.p = p
        self.env_id = p["environment_id"].lower()
        self.user = "pl_" + self.env_id.replace("-", "")[-16:]
        self.root = os.path.normpath(p["environment_root"])
        self.db = p["db_name"]
        self.preset = p["preset"]
        self.redis_prefix = p.get("redis_prefix") or "pressluft_%s:" % self.env_id
        self.cache_dir = os.path.join(FASTCGI_CACHE_DIR, self.env_id)
        self.timings = {}

    # --- helpers ---------------------------------------------------------------------------
    def php_version(self):
        v = self.p.get("php_version") or ""
        if re.match(r"^[0-9]+\.[0-9]+$", v):
            return v
        pools = glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % self.user)
        return pools[0].split("/")[3] if pools else None

    def php(self):
        v = self.php_version()
        return "php" + v if v and shutil.which("php" + v) else "php"

    def purge_and_reload(self):
        out = {"redis_keys": 0, "page_cache_files": 0}
        cli = shutil.which("redis-cli")
        if cli:
            base = [cli, "-h", "127.0.0.1", "-p", "6379", "-n", "0"]
            proc = subprocess.run(base + ["--scan", "--pattern", self.redis_prefix + "*"], capture_output=True,
                                  text=True, check=False, stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                keys = [k for k in proc.stdout.splitlines() if k.startswith(self.redis_prefix)]
                for i in range(0, len(keys), 500):
                    subprocess.run(base + ["UNLINK"] + keys[i:i + 500], capture_output=True, check=False,
                                   stdin=subprocess.DEVNULL)
                out["redis_keys"] = len(keys)
        if os.path.isdir(self.cache_dir) and not os.path.islink(self.cache_dir):
            for root, _, files in os.walk(self.cache_dir):
                for name in files:
                    try:
                        os.unlink(os.path.join(root, name))
                        out["page_cache_files"] += 1
                    except OSError:
                        pass
        ver = self.php_version()
        if ver:
            pid = None
            try:
                with open("/run/php/php%s-fpm.pid" % ver, "r", encoding="ascii") as fh:
                    pid = int(fh.read().strip())
            except (OSError, ValueError):
                pid = None
            if pid:
                os.kill(pid, signal.SIGUSR2)  # = `service phpX.Y-fpm reload`: OPcache emptied
                out["php_fpm"] = "reloaded"
                sock = "/run/php/pressluft-%s.sock" % self.user
                time.sleep(0.2)
                deadline = time.monotonic() + 5
                while not os.path.exists(sock) and time.monotonic() < deadline:
                    time.sleep(0.05)
        return out

    def health(self):
        url = self.p["site_url"]
        current = os.path.join(self.root, "current")
        timeout = self.p["health_timeout"]
        php = self.php()

        checks = wordpress_checks(url, "127.0.0.1", timeout, False, self.p["health_retries"],
                                  lambda command: run_helper(self.user, php, self.p["helper"], current, command,
                                                             timeout))
        return all(c["ok"] for c in checks.values()), checks

    def switch_current(self, release_dir):
        link = os.path.join(self.root, "current")
        tmp = link + ".promote-tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink("releases/" + os.path.basename(release_dir), tmp)
        os.replace(tmp, link)

    def search_replace(self, old, new):
        argv = ["runuser", "-u", self.user, "--", self.php(), self.p["helper"],
                "--path=%s/current" % self.root, "search-replace", "--old", old, "--new", new,
                "--table-prefix", NEW_PREFIX]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, cwd="/", timeout=1800,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PromoteError("PROMOTION_FAILED", "search-replace %s -> %s timed out" % (old, new))
        res = last_json_line(proc.stdout)
        if not isinstance(res, dict) or res.get("ok") is not True:
            detail = (res or {}).get("error") if isinstance(res, dict) else (proc.stderr or proc.stdout).strip()[-400:]
            raise PromoteError("PROMOTION_FAILED", "search-replace %s -> %s failed: %s" % (old, new, detail))
        return {"old": old, "new": new, "rows_changed": res.get("rows_changed"),
                "replacements": res.get("replacements"), "tables": res.get("tables")}

    # --- state of an interrupted run -------------------------------------------------------
    def pending_path(self):
        return os.path.join(self.root, PENDING)

    def write_pending(self, state):
        path = self.pending_path()
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(path + ".tmp", path)

    def swap_back(self, state):
        """Undoes the RENAME of state (and the current switch): production as before the promotion."""
        prefix = state["prefix"]
        parts = []
        for s in state["swapped"]:
            parts.append("%s.%s TO %s.%s" % (ident(self.db), ident(prefix + s), ident(self.db), ident(NEW_PREFIX + s)))
            if s in state["had"]:
                parts.append("%s.%s TO %s.%s" % (ident(self.db), ident(OLD_PREFIX + s), ident(self.db), ident(prefix + s)))
        present = set(list_tables(self.db, prefix)) if parts else set()
        if parts and all(s in present for s in state["swapped"]):
            old_present = set(list_tables(self.db, OLD_PREFIX))
            if all(s in old_present for s in state["swapped"] if s in state["had"]):
                mariadb("RENAME TABLE %s;\n" % ", ".join(parts))
        old_release = os.path.join(self.root, "releases", state["old_release"])
        if os.path.isfile(os.path.join(old_release, "wp-load.php")):
            self.switch_current(old_release)
        self.drop_prefixed(NEW_PREFIX)

    def drop_prefixed(self, prefix):
        tables = list_tables(self.db, prefix)
        if tables:
            mariadb("SET FOREIGN_KEY_CHECKS=0;\n" + "".join(
                "DROP TABLE IF EXISTS %s.%s;\n" % (ident(self.db), ident(t)) for t in tables.values()))

    def cleanup_leftovers(self):
        """A run that died: undo a swap it made, drop its temporary tables and release."""
        notes = []
        path = self.pending_path()
        if os.path.isfile(path):
            with open(path, "r", encoding="utf-8") as fh:
                state = json.load(fh)
            if state.get("swapped_at"):
                self.swap_back(state)
                notes.append("undid the table swap of an interrupted promotion %s" % state.get("promotion_id"))
            os.unlink(path)
        self.drop_prefixed(NEW_PREFIX)
        self.drop_prefixed(OLD_PREFIX)
        for d in glob.glob(os.path.join(self.root, "releases", ".tmp-promote-*")):
            shutil.rmtree(d, ignore_errors=True)
            notes.append("removed partial release %s" % os.path.basename(d))
        return notes

    # --- the promotion ---------------------------------------------------------------------
    def promote(self):
        p = self.p
        pid = (p.get("promotion_id") or "").lower()
        if not UUID_RE.match(pid):
            raise PromoteError("PROMOTION_FAILED", "promotion_id must be a UUID")
        src_root = os.path.normpath(p.get("source_environment_root") or "")
        src_db = p.get("source_db_name") or ""
        if not src_root.startswith("/var/www/sites/") and not src_root.startswith(os.path.dirname(self.root) + "/"):
            raise PromoteError("PROMOTION_FAILED", "source_environment_root %r is not an environment root" % src_root)
        if not DB_IDENT_RE.match(src_db) or src_db == self.db:
            raise PromoteError("PROMOTION_FAILED", "source_db_name must be another database")
        src_url = (p.get("source_site_url") or "").rstrip("/")
        url = (p.get("site_url") or "").rstrip("/")
        if not url_ok(src_url) or not url_ok(url):
            raise PromoteError("PROMOTION_FAILED", "source_site_url and site_url must be http(s) URLs")
        done = os.path.join(self.root, ".pressluft-promotion-%s.json" % pid)
        if os.path.isfile(done):
            with open(done, "r", encoding="utf-8") as fh:
                facts = json.load(fh)
            facts["promotion_rerun"] = True
            return facts, False
        t0 = time.monotonic()
        notes = self.cleanup_leftovers()
        prefix = table_prefix(self.root)
        src_prefix = table_prefix(src_root)
        old_release = current_release(self.root)
        src_release = current_release(src_root)
        files = diff_files(file_manifest(old_release), file_manifest(src_release))
        src_tables = list_tables(src_db, src_prefix)
        prod_tables = list_tables(self.db, prefix)
        synced = sorted(s for s in src_tables if kind_of(s, self.preset) == "overwritable")
        protected = sorted(s for s in set(src_tables) | set(prod_tables) if kind_of(s, self.preset) == "protected")
        left_alone = sorted(s for s in prod_tables if s not in src_tables and kind_of(s, self.preset) == "overwritable")
        if not synced:
            raise PromoteError("PROMOTION_FAILED", "the source has no tables to promote (prefix %s)" % src_prefix)

        # 1. the new release: hard-linked copy of production's release, the source's wp-content in
        name = (p.get("release_id") or "").lower()
        if name:
            if not RELEASE_RE.match(name):
                raise PromoteError("PROMOTION_FAILED", "release_id has unexpected characters")
            if os.path.realpath(os.path.join(self.root, "releases", name)) == old_release:
                raise PromoteError("PROMOTION_FAILED", "release %s is already current" % name)
            shutil.rmtree(os.path.join(self.root, "releases", name), ignore_errors=True)
        else:
            name = time.strftime("%Y%m%d%H%M%S", time.gmtime())
            while os.path.exists(os.path.join(self.root, "releases", name)):
                time.sleep(1)
                name = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        tmp = os.path.join(self.root, "releases", ".tmp-promote-" + name)
        t = time.monotonic()
        proc = subprocess.run(["cp", "-al", old_release, tmp], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PromoteError("PROMOTION_FAILED", "copying the release failed: %s" % proc.stderr.strip()[-400:])
        rsync = shutil.which("rsync")
        if not rsync:
            raise PromoteError("PROMOTION_FAILED", "rsync is not installed")
        argv = [rsync, "-rlt", "--checksum", "--delete", "--chown=%s:www-data" % self.user, "--chmod=D2750,F640"]
        argv += ["--exclude=/%s" % e for e in EXCLUDED_FILES]
        argv += [os.path.join(src_release, "wp-content") + "/", os.path.join(tmp, "wp-content") + "/"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise PromoteError("PROMOTION_FAILED", "syncing wp-content failed (rsync rc=%d): %s"
                               % (proc.returncode, proc.stderr.strip()[-400:]))
        self.timings["files"] = int((time.monotonic() - t) * 1000)

        # 2. the source's overwritable tables under temporary names in production's database
        t = time.monotonic()
        sql = ["SET FOREIGN_KEY_CHECKS=0;"]
        for s in synced:
            new = "%s.%s" % (ident(self.db), ident(NEW_PREFIX + s))
            src = "%s.%s" % (ident(src_db), ident(src_tables[s]))
            sql.append("DROP TABLE IF EXISTS %s;" % new)
            sql.append("CREATE TABLE %s LIKE %s;" % (new, src))
            sql.append("INSERT INTO %s SELECT * FROM %s;" % (new, src))
        if "options" in synced and "options" in prod_tables:
            new = "%s.%s" % (ident(self.db), ident(NEW_PREFIX + "options"))
            live = "%s.%s" % (ident(self.db), ident(prefix + "options"))
            sql.append("DELETE FROM %s WHERE %s;" % (new, volatile_option_sql()))
            sql.append("INSERT INTO %s (option_name, option_value, autoload) SELECT option_name, option_value, "
                       "autoload FROM %s WHERE %s AND option_name <> 'rewrite_rules';" % (new, live, volatile_option_sql()))
        mariadb("\n".join(sql) + "\n")
        self.timings["tables_copy"] = int((time.monotonic() - t) * 1000)
        t = time.monotonic()
        rewrite = None
        if src_url != url:
            rewrite = self.search_replace(src_url, url)
        self.timings["search_replace"] = int((time.monotonic() - t) * 1000)

        # 3. swap: one RENAME TABLE for every table, then the release
        state = {"promotion_id": pid, "prefix": prefix, "old_release": os.path.basename(old_release),
                 "new_release": name, "swapped": synced, "had": [s for s in synced if s in prod_tables]}
        self.write_pending(state)
        parts = []
        for s in synced:
            if s in prod_tables:
                parts.append("%s.%s TO %s.%s" % (ident(self.db), ident(prefix + s), ident(self.db), ident(OLD_PREFIX + s)))
            parts.append("%s.%s TO %s.%s" % (ident(self.db), ident(NEW_PREFIX + s), ident(self.db), ident(prefix + s)))
        state["swapped_at"] = now_iso()
        self.write_pending(state)
        mariadb("RENAME TABLE %s;\n" % ", ".join(parts))
        release = os.path.join(self.root, "releases", name)
        os.rename(tmp, release)
        # The new release with the swapped tables is checked through production's own PHP-FPM
        # pool before `current` moves, so a broken promotion never reaches nginx's visitors.
        t = time.monotonic()
        pre_ok, pre_detail = check_release_direct(
            release, url, "/run/php/pressluft-%s.sock" % self.user, self.p["health_timeout"])
        self.timings["pre_switch_check"] = int((time.monotonic() - t) * 1000)
        if pre_ok:
            self.switch_current(release)
            caches = self.purge_and_reload()
            t = time.monotonic()
            healthy, checks = self.health()
            self.timings["health"] = int((time.monotonic() - t) * 1000)
        else:
            caches = None
            healthy, checks = False, {"pre_switch": {"ok": False, "detail": pre_detail}}
        facts = {
            "promotion_id": pid,
            "preset": self.preset,
            "tables_synced": [prefix + s for s in synced],
            "tables_protected": [prefix + s for s in protected],
            "tables_left_alone": [prefix + s for s in left_alone],
            "files_added": files["added"],
            "files_changed": files["changed"],
            "files_removed": files["removed"],
            "release": name,
            "release_id": name,
            "current_release": name,
            "release_health": "healthy" if healthy else "unhealthy",
            "previous_release": os.path.basename(old_release),
            "url_rewrite": rewrite,
            "cache_purge": caches,
            "healthy": healthy,
            "health_url": url,
            "health_checks": checks,
            "health_checked_at": now_iso(),
            "rolled_back": False,
            "notes": notes,
        }
        if not healthy:
            failed = ", ".join("%s: %s" % (k, v["detail"]) for k, v in checks.items() if not v["ok"])
            self.swap_back(state)
            os.unlink(self.pending_path())
            self.purge_and_reload()
            back_healthy, back_checks = self.health()
            facts.update(rolled_back=True, rollback_release=os.path.basename(old_release),
                         current_release=os.path.basename(old_release),
                         rollback_healthy=back_healthy, rollback_checks=back_checks, healthy=back_healthy,
                         restore_needed=not back_healthy, release=None,
                         error_code="PROMOTION_ROLLED_BACK",
                         error="production was unhealthy after the promotion (%s): tables and release switched "
                               "back%s" % (failed, "" if back_healthy else "; still unhealthy, restoring the "
                                                                           "pre-promotion backup"))
            self.timings["total"] = int((time.monotonic() - t0) * 1000)
            facts["promotion_timings_ms"] = self.timings
            return facts, True
        self.drop_prefixed(OLD_PREFIX)
        # like a deploy: release directories beyond the newest releases_keep go, never the new
        # one or the one it replaced (the rollback target)
        facts["release_pruned"] = prune(self.root, self.p.get("releases_keep") or 5,
                                        {name, os.path.basename(old_release)})
        facts["drift_baseline"] = dict(baseline(self.root, self.db, self.preset), captured_at=now_iso())
        self.timings["total"] = int((time.monotonic() - t0) * 1000)
        facts["promotion_timings_ms"] = self.timings
        with open(done + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(facts, fh)
        os.replace(done + ".tmp", done)
        os.unlink(self.pending_path())
        return facts, True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mode=dict(type="str", required=True, choices=["check", "plan", "promote"]),
            site_id=dict(type="str", required=True),
            environment_id=dict(type="str", required=True),
            environment_root=dict(type="str", required=True),
            db_name=dict(type="str", required=True),
            preset=dict(type="str", required=True, choices=sorted(PRESETS)),
            baseline=dict(type="dict"),
            promotion_id=dict(type="str"),
            release_id=dict(type="str"),
            source_environment_root=dict(type="str"),
            source_db_name=dict(type="str"),
            source_site_url=dict(type="str"),
            site_url=dict(type="str"),
            redis_prefix=dict(type="str"),
            php_version=dict(type="str", default=""),
            helper=dict(type="str", default="/usr/local/lib/pressluft/pressluft-helper.php"),
            health_timeout=dict(type="float", default=10.0),
            health_retries=dict(type="int", default=1),
            releases_keep=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for key in ("site_id", "environment_id"):
        if not UUID_RE.match((p[key] or "").lower()):
            module.fail_json(msg="%s must be a UUID" % key)
    root = os.path.normpath(p["environment_root"])
    if root != os.path.join("/var/www/sites", p["site_id"].lower(), p["environment_id"].lower()):
        module.fail_json(msg="environment_root must be /var/www/sites/<site_id>/<environment_id>")
    if not DB_IDENT_RE.match(p["db_name"]):
        module.fail_json(msg="db_name has unexpected characters")
    mode = p["mode"]
    try:
        if mode == "check":
            base = p.get("baseline") or {}
            prefix = table_prefix(root)
            now = {"db": db_checksums(p["db_name"], prefix, p["preset"], checksum_algo(base.get("db"))),
                   "files": file_manifest(current_release(root))}
            d = compare(base, now, prefix)
            module.exit_json(changed=False, pressluft_facts={
                "drift_status": d["status"], "drift_reason": d["reason"],
                "drift_tables": d["tables"], "drift_files": d["files"],
                "drift_db_checksums": now["db"], "drift_file_checksums": now["files"],
                "drift_checked_at": now_iso()})
        if mode == "plan":
            src = {"root": os.path.normpath(p.get("source_environment_root") or ""),
                   "db": p.get("source_db_name") or ""}
            if not DB_IDENT_RE.match(src["db"]):
                module.fail_json(msg="source_db_name has unexpected characters")
            module.exit_json(changed=False, pressluft_facts={"plan": plan(
                {"root": root, "db": p["db_name"]}, src, p["preset"], p.get("baseline"))})
        if module.check_mode:
            module.exit_json(changed=False, pressluft_facts={})
        lock_path = "/run/lock/pressluft-promote-%s.lock" % p["environment_id"].lower()
        with open(lock_path, "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            facts, changed = Promotion(p).promote()
        module.exit_json(changed=changed, restore_needed=bool(facts.get("restore_needed")), pressluft_facts=facts)
    except PromoteError as e:
        module.exit_json(changed=mode == "promote", pressluft_facts={"error_code": e.code, "error": e.message})


if __name__ == "__main__":
    main()
