# -*- coding: utf-8 -*-
# Pressluft: promotion (staging -> production) and drift detection - the shared, stdlib-only part.
#
# Used by the pressluft_promote module (baseline, check, plan, promote) and, unchanged, by the
# control plane's dry run: it sends this file plus a one-line call of plan_main() to `python3 -`
# on the node over SSH (no Ansible there), so nothing here may import Ansible.
#
# Vocabulary (docs/decisions.md "Drift = overwritable data"):
#   protected tables  - the preset's tables (posts, orders, users...): never written by a promotion,
#                       never compared by the drift check (they change on production all the time).
#   volatile tables   - self-updating tables (sessions, queues): neither synced nor compared.
#   overwritable      - every other table of the environment's prefix: copied from the source by a
#                       promotion, so a change on production since the baseline would be lost ->
#                       that is drift. In `options`, volatile rows (transients, cron, ...) are
#                       excluded from the checksum and keep production's values on promotion.
#   files             - the release's wp-content minus uploads (protected), Pressluft's object-cache
#                       drop-in and mu-plugin, and cache/upgrade scratch directories.
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess

CONTENT_PROTECT = (
    "posts", "postmeta", "terms", "termmeta", "term_taxonomy", "term_relationships",
    "comments", "commentmeta", "users", "usermeta",
)
COMMERCE_EXTRA = (
    "wc_orders", "wc_orders_meta", "wc_order_addresses", "wc_order_operational_data",
    "woocommerce_order_items", "woocommerce_order_itemmeta", "wc_order_stats",
    "wc_order_product_lookup", "wc_order_tax_lookup", "wc_order_coupon_lookup", "wc_customer_lookup",
)
PRESETS = {
    "content-protect": CONTENT_PROTECT,
    "commerce-protect": CONTENT_PROTECT + COMMERCE_EXTRA,
}
# Tables that update themselves (sessions, job queues, rate limits): production keeps its own rows,
# and their changes are not drift.
VOLATILE_TABLES = (
    "woocommerce_sessions", "wc_rate_limits", "actionscheduler_actions", "actionscheduler_claims",
    "actionscheduler_groups", "actionscheduler_logs",
)
# Rows of `options` that WordPress rewrites by itself (page views, cron, logins): not drift, and on
# promotion production keeps its own values (rewrite_rules is emptied: WordPress regenerates it).
VOLATILE_OPTION_NAMES = (
    "cron", "doing_cron", "rewrite_rules", "theme_switched", "recently_activated", "user_count",
    "https_detection_errors", "recovery_keys", "recovery_mode_email_last_sent", "auto_updater.lock",
    "core_updater.lock", "finished_updating_comment_type", "db_upgraded", "can_compress_scripts",
    "auto_core_update_notified", "wp_force_deactivated_plugins", "admin_email_lifespan",
    "_wp_suggested_policy_text_has_changed", "site_health_scan_results",
)
VOLATILE_OPTION_PREFIXES = ("_transient_", "_site_transient_")
# Relative to wp-content: never synced, never compared.
EXCLUDED_FILES = ("uploads", "object-cache.php", "mu-plugins/pressluft-login.php", "cache", "upgrade")
# Temporary table prefixes in production's database while a promotion runs.
NEW_PREFIX = "plpromo_new_"
OLD_PREFIX = "plpromo_old_"
DB_IDENT_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")


class PromoteError(Exception):
    """A failure with a registered error code."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


def sql_str(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name):
    if not re.match(r"^[A-Za-z0-9_$]{1,64}$", name):
        raise PromoteError("PROMOTION_FAILED", "unexpected table or database name %r" % name)
    return "`%s`" % name


def mariadb(sql, database=None):
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not client:
        raise PromoteError("PROMOTION_FAILED", "the mariadb client is not installed")
    argv = [client, "--protocol=socket", "--user=root", "--batch", "--skip-column-names", "--raw",
            "--default-character-set=utf8mb4"]
    if database:
        argv.append(database)
    proc = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False, cwd="/")
    if proc.returncode != 0:
        raise PromoteError("PROMOTION_FAILED", "MariaDB failed: %s" % proc.stderr.strip()[-600:])
    return proc.stdout


def table_prefix(root):
    """$table_prefix of the environment's shared wp-config.php (default wp_)."""
    try:
        with open(os.path.join(root, "shared", "wp-config.php"), "r", encoding="utf-8", errors="replace") as fh:
            m = re.search(r"^\s*\$table_prefix\s*=\s*['\"]([A-Za-z0-9_]+)['\"]", fh.read(), re.M)
    except OSError:
        m = None
    prefix = m.group(1) if m else "wp_"
    if not PREFIX_RE.match(prefix) or prefix.startswith("plpromo_"):
        raise PromoteError("PROMOTION_FAILED", "unusable table prefix %r" % prefix)
    return prefix


def list_tables(db, prefix):
    """Base tables of db whose name starts with prefix (exact, not LIKE), as {suffix: name}."""
    out = mariadb("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE';\n"
                  % sql_str(db))
    tables = {}
    for name in out.split("\n"):
        name = name.strip()
        if name and name.startswith(prefix) and len(name) > len(prefix):
            tables[name[len(prefix):]] = name
    return tables


def kind_of(suffix, preset):
    """protected | volatile | overwritable for a table suffix (multisite `2_posts` as `posts`)."""
    protected = PRESETS[preset]
    m = re.match(r"^[0-9]+_(.+)$", suffix)
    base = m.group(1) if m else suffix
    if base in protected:
        return "protected"
    if base in VOLATILE_TABLES:
        return "volatile"
    return "overwritable"


def is_options(suffix):
    return suffix == "options" or re.match(r"^[0-9]+_options$", suffix) is not None


def volatile_option_sql(column="option_name"):
    """SQL condition: the row is a volatile option."""
    parts = ["%s IN (%s)" % (column, ", ".join(sql_str(n) for n in VOLATILE_OPTION_NAMES))]
    for p in VOLATILE_OPTION_PREFIXES:
        parts.append("%s LIKE %s" % (column, sql_str(p.replace("_", "\\_") + "%")))
    return "(" + " OR ".join(parts) + ")"


def table_columns(db):
    """{table: [column, ...]} of db, in column order."""
    out = mariadb("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                  "ORDER BY TABLE_NAME, ORDINAL_POSITION;\n" % sql_str(db))
    cols = {}
    for line in out.split("\n"):
        if "\t" in line:
            table, col = line.split("\t", 1)
            cols.setdefault(table, []).append(col)
    return cols


# Checksums of the current format start with this (v1, one QUOTE() per column, was ~3x slower:
# QUOTE escapes every byte). A baseline keeps the format it was taken with: a drift check computes
# the checksums to compare in the baseline's format (checksum_algo).
CHECKSUM_V2 = "v2:"


def checksum_sql(db, table, cols, options, algo=2):
    """The query answering `rows <TAB> order-independent checksum` of a table (volatile option rows
    excluded): the sum of the first 60 bits of each row's SHA-256. v2 encodes each column as
    `<byte length>:<bytes>` (NULL as `-`), unambiguous without escaping; v1 QUOTE()d them."""
    if algo == 1:
        row = "CONCAT_WS(',', %s)" % ", ".join("QUOTE(%s)" % ident(c) for c in cols)
    else:
        row = "CONCAT_WS(',', %s)" % ", ".join("IFNULL(CONCAT(LENGTH(%s), ':', %s), '-')" % (ident(c), ident(c))
                                                for c in cols)
    total = "COALESCE(SUM(CAST(CONV(SUBSTRING(SHA2(%s, 256), 1, 15), 16, 10) AS UNSIGNED)), 0)" % row
    if algo != 1:
        total = "IF(COUNT(*) = 0, '0', CONCAT('%s', %s))" % (CHECKSUM_V2, total)
    where = " WHERE NOT %s" % volatile_option_sql() if options and "option_name" in cols else ""
    return "SELECT COUNT(*), %s FROM %s.%s%s;\n" % (total, ident(db), ident(table), where)


def checksum_algo(db_checksums_of_baseline):
    """The format of a baseline's table checksums: 2 when one is v2 (or none says: empty tables
    are "0" in both), 1 for an older baseline."""
    values = [str(v[1]) for v in (db_checksums_of_baseline or {}).values() if isinstance(v, list) and len(v) == 2]
    if any(v.startswith(CHECKSUM_V2) for v in values):
        return 2
    return 1 if any(v != "0" for v in values) else 2


def table_checksum(db, table, options, algo=2):
    """[row count, order-independent checksum] of a table (volatile option rows excluded)."""
    cols = mariadb("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
                   "ORDER BY ORDINAL_POSITION;\n" % (sql_str(db), sql_str(table))).split()
    if not cols:
        return [0, "0"]
    out = mariadb(checksum_sql(db, table, cols, options, algo)).split()
    return [int(out[0]), out[1]]


def db_checksums(db, prefix, preset, algo=2):
    """{suffix: [rows, checksum]} of the overwritable tables."""
    return {s: table_checksum(db, t, is_options(s), algo)
            for s, t in sorted(list_tables(db, prefix).items()) if kind_of(s, preset) == "overwritable"}


class SnapshotChecksums:
    """db_checksums() of the tables as they are when start() returns, computed while the caller
    goes on changing them: one REPEATABLE READ transaction whose consistent snapshot is taken
    before start() returns (a clone records its drift baseline beside its URL rewrite)."""

    MARK = "pressluft-snapshot-taken"

    def __init__(self, db, prefix, preset):
        self.db, self.prefix, self.preset = db, prefix, preset
        self.proc = None
        self.tables = []

    def start(self):
        client = shutil.which("mariadb") or shutil.which("mysql")
        if not client:
            raise PromoteError("PROMOTION_FAILED", "the mariadb client is not installed")
        cols = table_columns(self.db)
        self.tables = [(s, t) for s, t in sorted(list_tables(self.db, self.prefix).items())
                       if kind_of(s, self.preset) == "overwritable"]
        self.proc = subprocess.Popen(
            [client, "--protocol=socket", "--user=root", "--batch", "--skip-column-names", "--raw",
             "--unbuffered", "--default-character-set=utf8mb4"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        self.proc.stdin.write("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n"
                              "START TRANSACTION WITH CONSISTENT SNAPSHOT;\nSELECT '%s';\n" % self.MARK)
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != self.MARK:
            self.proc.kill()
            raise PromoteError("PROMOTION_FAILED", "MariaDB failed to take a snapshot: %s"
                               % self.proc.communicate()[1].strip()[-600:])
        # the queries run on the snapshot while the caller works
        self.proc.stdin.write("".join(checksum_sql(self.db, t, cols[t], is_options(s)) if cols.get(t)
                                      else "SELECT 0, '0';\n" for s, t in self.tables) + "COMMIT;\n")
        self.proc.stdin.close()

    def result(self):
        out = self.proc.stdout.read()
        err = self.proc.stderr.read()
        if self.proc.wait() != 0:
            raise PromoteError("PROMOTION_FAILED", "MariaDB failed: %s" % err.strip()[-600:])
        lines = [line.split("\t") for line in out.split("\n") if line.strip()]
        if len(lines) != len(self.tables) or any(len(f) != 2 for f in lines):
            raise PromoteError("PROMOTION_FAILED", "unexpected checksum output for %d tables" % len(self.tables))
        return {s: [int(f[0]), f[1]] for (s, _), f in zip(self.tables, lines)}

    def abort(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def excluded(rel):
    return any(rel == e or rel.startswith(e + "/") for e in EXCLUDED_FILES)


def file_manifest(release_dir):
    """{path relative to wp-content: [size, sha256]} of the release's overwritable files."""
    base = os.path.join(release_dir, "wp-content")
    manifest = {}
    for root, dirs, files in os.walk(base):
        rel_root = os.path.relpath(root, base)
        rel_root = "" if rel_root == "." else rel_root + "/"
        dirs[:] = sorted(d for d in dirs if not excluded(rel_root + d)
                         and not os.path.islink(os.path.join(root, d)))
        for d in os.listdir(root):
            full = os.path.join(root, d)
            if os.path.islink(full) and os.path.isdir(full) and not excluded(rel_root + d):
                manifest[rel_root + d] = [0, "link:" + os.readlink(full)]
        for name in sorted(files):
            rel = rel_root + name
            if excluded(rel):
                continue
            full = os.path.join(root, name)
            if os.path.islink(full):
                manifest[rel] = [0, "link:" + os.readlink(full)]
                continue
            h = hashlib.sha256()
            size = 0
            try:
                with open(full, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
                        size += len(chunk)
            except OSError:
                continue
            manifest[rel] = [size, h.hexdigest()]
    return manifest


def current_release(root):
    cur = os.path.join(root, "current")
    target = os.path.realpath(cur)
    if not os.path.islink(cur) or not os.path.isfile(os.path.join(target, "wp-load.php")):
        raise PromoteError("PROMOTION_FAILED", "%s holds no current release" % root)
    return target


def baseline(root, db, preset):
    """Production's overwritable data now: what a later drift check compares against."""
    prefix = table_prefix(root)
    return {
        "preset": preset,
        "prefix": prefix,
        "db": db_checksums(db, prefix, preset),
        "files": file_manifest(current_release(root)),
    }


def diff_files(old, new):
    added = sorted(k for k in new if k not in old)
    removed = sorted(k for k in old if k not in new)
    changed = sorted(k for k in new if k in old and list(new[k]) != list(old[k]))
    return {"added": added, "changed": changed, "removed": removed}


def diff_tables(old, new):
    return sorted(k for k in set(old) | set(new) if list(old.get(k) or []) != list(new.get(k) or []))


def compare(base, now, prefix=""):
    """Drift of `now` against the baseline `base`: status clean | drifted and what moved (tables
    named with `prefix`)."""
    tables = [prefix + t for t in diff_tables(base.get("db") or {}, now["db"])]
    files = diff_files(base.get("files") or {}, now["files"])
    drifted = bool(tables or files["added"] or files["changed"] or files["removed"])
    return {"status": "drifted" if drifted else "clean", "tables": tables, "files": files,
            "reason": drift_reason(tables, files) if drifted else ""}


def drift_reason(tables, files):
    def names(items, limit=5):
        more = len(items) - limit
        return ", ".join(items[:limit]) + (" and %d more" % more if more > 0 else "")
    parts = []
    if tables:
        parts.append("tables changed on production since the baseline: %s" % names(tables))
    for what in ("changed", "added", "removed"):
        if files[what]:
            parts.append("files %s on production: %s" % (what, names(files[what])))
    return "; ".join(parts)


def plan(prod, source, preset, base):
    """What a promotion would do, touching nothing (dry run)."""
    prod_prefix = table_prefix(prod["root"])
    src_prefix = table_prefix(source["root"])
    src_tables = list_tables(source["db"], src_prefix)
    prod_tables = list_tables(prod["db"], prod_prefix)
    synced = sorted(s for s in src_tables if kind_of(s, preset) == "overwritable")
    protected = sorted(s for s in set(src_tables) | set(prod_tables) if kind_of(s, preset) == "protected")
    volatile = sorted(s for s in set(src_tables) | set(prod_tables) if kind_of(s, preset) == "volatile")
    left_alone = sorted(s for s in prod_tables if s not in src_tables and kind_of(s, preset) == "overwritable")
    files = diff_files(file_manifest(current_release(prod["root"])), file_manifest(current_release(source["root"])))
    out = {
        "preset": preset,
        "tables_synced": [prod_prefix + s for s in synced],
        "tables_protected": [prod_prefix + s for s in protected],
        "tables_volatile": [prod_prefix + s for s in volatile],
        "tables_left_alone": [prod_prefix + s for s in left_alone],
        "files_added": files["added"],
        "files_changed": files["changed"],
        "files_removed": files["removed"],
        "drift_status": "unknown",
        "drift_reason": "no baseline: the promotion would be blocked",
    }
    if base:
        now = {"db": db_checksums(prod["db"], prod_prefix, preset, checksum_algo(base.get("db"))),
               "files": file_manifest(current_release(prod["root"]))}
        d = compare(base, now, prod_prefix)
        out["drift_status"] = d["status"]
        out["drift_reason"] = d["reason"]
        out["drift_tables"] = d["tables"]
        out["drift_files"] = d["files"]
    return out


def plan_main(payload_b64):
    """Entry of the dry run over SSH: prints one JSON line, {"ok": true, "plan": {...}} or an error."""
    try:
        payload = json.loads(base64.b64decode(payload_b64).decode("utf-8"))
        for side in ("production", "source"):
            env = payload[side]
            if not DB_IDENT_RE.match(env["db"]) or not os.path.isabs(env["root"]) or ".." in env["root"]:
                raise PromoteError("PROMOTION_FAILED", "bad %s environment" % side)
        if payload["preset"] not in PRESETS:
            raise PromoteError("PROMOTION_FAILED", "unknown preset")
        result = plan(payload["production"], payload["source"], payload["preset"], payload.get("baseline"))
        print(json.dumps({"ok": True, "plan": result}))
    except PromoteError as e:
        print(json.dumps({"ok": False, "error_code": e.code, "error": e.message}))
    except (KeyError, ValueError, TypeError, OSError) as e:
        print(json.dumps({"ok": False, "error_code": "PROMOTION_FAILED", "error": "%s: %s" % (type(e).__name__, e)}))
