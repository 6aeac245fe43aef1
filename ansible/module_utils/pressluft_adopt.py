"""Adoption of a WordPress site reached over SSH (issue 12, item 2): the import's pipeline
(pressluft_import.Import: pre-import backup as the rollback point, staging beside the live
release, table prefix rename, serialized-safe URL rewrite, Pressluft's administrator, health gate,
rollback) with another SOURCE: `ssh_user@ssh_host:ssh_port`, WordPress root `source_path`.

On the source nothing is written in the WordPress root and nothing is changed: its wp-config.php
is read (and parsed here, on the node), the database is dumped ON the source with the credentials
of that wp-config.php (sent as a client defaults file over the SSH session's stdin into a mktemp
file of the source user that is removed right after; never on a command line), wp-content is
streamed back as a tar (caches and upgrade leftovers left out).

SSH: the adoption key (its private part given by Pressluft for this run only, written 0600 into
the run's private directory) with BatchMode, a connect timeout and a known_hosts of its own: the
dry run pins the source's host key (trust on first use, `accept-new`) and returns it; a job
connects with `StrictHostKeyChecking=yes` against that pinned key only.

Also a script: `python3 -c "$(cat pressluft_adopt.py)" report` reads {"host", "port", "user",
"path", "private_key", "host_key"?} as JSON on stdin and prints one JSON line: {"ok": true,
"report": {...}, "host_key": "ssh-ed25519 AAAA…"} or {"ok": false, "error_code", "error"} (the
dry run of `POST /api/adoptions`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

try:  # the module; the script (dry run) needs none of it
    from ansible.module_utils.pressluft_backup_lib import Invalid
    from ansible.module_utils.pressluft_import import (
        ARGUMENT_SPEC as IMPORT_ARGUMENT_SPEC, CONTENT_SKIP, PREFIX_RE, ArchiveError, Import, parts)
except ImportError:  # pragma: no cover - script mode
    Import = None
    CONTENT_SKIP = ("cache", "upgrade", "upgrade-temp-backup")
    PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")

    class ArchiveError(Exception):  # type: ignore[no-redef]
        def __init__(self, code, message):
            super().__init__(message)
            self.code = code

    class Invalid(Exception):  # type: ignore[no-redef]
        pass

CHUNK = 1024 * 1024
CONNECT_TIMEOUT = 10
HOST_ALIAS = "pressluft-adopt-source"
HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                     r"|[0-9a-fA-F:.]+)$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
HOST_KEY_RE = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) [A-Za-z0-9+/=]+$")
SQL_IDENT_RE = re.compile(r"^[A-Za-z0-9_$-]{1,64}$")
DUMP_TIMEOUT = 3600


def fingerprint(host_key):
    """`SHA256:…` of an OpenSSH public key line (what `ssh-keygen -lf` shows)."""
    try:
        blob = base64.b64decode(host_key.split()[1])
    except (IndexError, ValueError):
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_location(host, port, user, path):
    """The SSH location, checked again on the node (Invalid)."""
    if not isinstance(host, str) or not HOST_RE.match(host) or host.startswith("-") or len(host) > 253:
        raise Invalid("ssh_host must be a host name or an IP address")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise Invalid("ssh_port must be 1 to 65535")
    if not isinstance(user, str) or not USER_RE.match(user):
        raise Invalid("ssh_user must be a POSIX user name")
    if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/") \
            or any(c in path for c in "\n\r\0") or len(path) > 1024:
        raise Invalid("source_path must be an absolute path without ..")


# ------------------------------------------------------------------ SSH ------------------------
class Source:
    """SSH to the source: the adoption key and a known_hosts of our own in `tmp` (root-only)."""

    def __init__(self, host, port, user, path, private_key, host_key, tmp):
        check_location(host, port, user, path)
        self.host, self.port, self.user = host, port, user
        self.root = path.rstrip("/") or "/"
        self.key = os.path.join(tmp, "adopt_key")
        self.known_hosts = os.path.join(tmp, "adopt_known_hosts")
        key = (private_key or "").strip() + "\n"
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        self.pinned = host_key
        fd = os.open(self.known_hosts, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            if host_key:
                fh.write("%s %s\n" % (HOST_ALIAS, host_key))

    def argv(self, command):
        return ["ssh", "-F", "/dev/null", "-i", self.key, "-p", str(self.port), "-l", self.user,
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=%d" % CONNECT_TIMEOUT, "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=4", "-o", "HostKeyAlias=" + HOST_ALIAS,
                "-o", "UserKnownHostsFile=" + self.known_hosts, "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "HashKnownHosts=no", "-o", "UpdateHostKeys=no", "-o", "LogLevel=ERROR",
                "-o", "StrictHostKeyChecking=" + ("yes" if self.pinned else "accept-new"),
                "-o", "ControlMaster=no", "-o", "ControlPath=none",
                # the user's login shell runs `sh -c '<command>'`: the commands are POSIX sh
                "--", self.host, "sh -c " + shlex.quote(command)]

    def host_key(self):
        """The host key ssh accepted (the pinned one, or the one written by accept-new)."""
        if self.pinned:
            return self.pinned
        try:
            with open(self.known_hosts) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) >= 3 and parts[0] == HOST_ALIAS:
                        return "%s %s" % (parts[1], parts[2])
        except OSError:
            pass
        return None

    def failure(self, rc, stderr):
        """ArchiveError for an SSH-level failure (ssh exits 255), else None."""
        if rc != 255:
            return None
        err = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
        low = err.lower()
        where = "%s@%s:%d" % (self.user, self.host, self.port)
        if "host key verification failed" in low or "remote host identification has changed" in low:
            return ArchiveError("ADOPT_HOST_KEY_MISMATCH",
                                "%s presented another SSH host key than the pinned %s (%s)"
                                % (self.host, fingerprint(self.pinned or "") or "key", last_line(err)))
        if "permission denied" in low or "too many authentication failures" in low:
            return ArchiveError("ADOPT_SOURCE_UNREACHABLE",
                                "SSH authentication as %s was refused: authorize Pressluft's adoption public key "
                                "(GET /api/adoptions/public-key) in ~%s/.ssh/authorized_keys on the source"
                                % (where, self.user))
        return ArchiveError("ADOPT_SOURCE_UNREACHABLE", "SSH connection to %s failed: %s" % (where, last_line(err)))

    def run(self, command, stdin=b"", timeout=60):
        """(rc, stdout, stderr) of one remote command; SSH failures raise ArchiveError."""
        try:
            proc = subprocess.run(self.argv(command), input=stdin, capture_output=True, timeout=timeout,
                                  check=False, cwd="/")
        except subprocess.TimeoutExpired:
            raise ArchiveError("ADOPT_SOURCE_UNREACHABLE", "the source did not answer over SSH within %ds" % timeout)
        except OSError as exc:
            raise ArchiveError("ADOPT_SOURCE_UNREACHABLE", "ssh cannot be started on the node: %s" % exc)
        err = self.failure(proc.returncode, proc.stderr)
        if err is not None:
            raise err
        return proc.returncode, proc.stdout, proc.stderr

    def stream(self, command, dest, stdin, limit, what, ok_codes=(0,)):
        """The remote command's stdout into `dest` (0600), at most `limit` bytes. Returns the size."""
        errf = tempfile.TemporaryFile()
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        size = 0
        with os.fdopen(fd, "wb") as out:
            try:
                proc = subprocess.Popen(self.argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=errf, cwd="/")
            except OSError as exc:
                raise ArchiveError("ADOPT_SOURCE_UNREACHABLE", "ssh cannot be started on the node: %s" % exc)
            try:
                try:
                    proc.stdin.write(stdin)
                    proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
                while True:
                    chunk = proc.stdout.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise ArchiveError("IMPORT_TOO_LARGE", "%s is larger than the limit of %d bytes" % (what, limit))
                    out.write(chunk)
                rc = proc.wait(timeout=DUMP_TIMEOUT)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        errf.seek(0)
        stderr = errf.read()
        err = self.failure(rc, stderr)
        if err is not None:
            raise err
        if rc not in ok_codes:
            raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "%s failed on the source (exit %d): %s"
                               % (what, rc, last_line(stderr.decode("utf-8", "replace"))))
        return size


def last_line(text):
    lines = [x.strip() for x in (text or "").strip().splitlines() if x.strip()]
    return lines[-1][:300] if lines else "no detail"


# ------------------------------------------------------------------ wp-config.php --------------
PHP_STR = r"""(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""


def php_unquote(m, first):
    single, double = m.group(first), m.group(first + 1)
    if single is not None:
        return re.sub(r"\\([\\'])", r"\1", single)
    return re.sub(r"\\(.)", r"\1", double)


def strip_comments(php):
    """PHP without /* */ blocks and without lines that are // or # comments (enough to ignore a
    commented-out define; strings in live code are left alone)."""
    php = re.sub(r"/\*.*?\*/", "", php, flags=re.S)
    return "\n".join(line for line in php.splitlines() if not line.lstrip().startswith(("//", "#")))


def parse_wp_config(text):
    """The database settings, table prefix and multisite flags of a wp-config.php."""
    php = strip_comments(text)
    cfg = {}
    for name in ("DB_NAME", "DB_USER", "DB_PASSWORD", "DB_HOST", "DB_CHARSET"):
        m = re.search(r"define\s*\(\s*['\"]%s['\"]\s*,\s*%s\s*\)" % (name, PHP_STR), php)
        if m:
            cfg[name] = php_unquote(m, 1)
    m = re.search(r"\$table_prefix\s*=\s*%s\s*;" % PHP_STR, php)
    cfg["table_prefix"] = php_unquote(m, 1) if m else None
    for flag in ("MULTISITE", "WP_ALLOW_MULTISITE"):
        m = re.search(r"define\s*\(\s*['\"]%s['\"]\s*,\s*(true|1|'1'|\"1\")\s*\)" % flag, php, flags=re.I)
        cfg[flag] = bool(m)
    return cfg


def client_options(cfg):
    """A [client] defaults file for the source's database (the password never leaves stdin)."""
    host = cfg.get("DB_HOST") or "localhost"
    lines = ["[client]", "user=%s" % opt_value(cfg.get("DB_USER") or ""),
             "password=%s" % opt_value(cfg.get("DB_PASSWORD") or "")]
    port = socket = None
    if host.startswith("["):  # [::1]:3306
        h, _, rest = host[1:].partition("]")
        host, port = h, rest.lstrip(":") or None
    elif host.count(":") == 1:
        h, rest = host.split(":")
        host = h or "localhost"
        if rest.startswith("/"):
            socket = rest
        else:
            port = rest or None
    lines.append("host=%s" % opt_value(host))
    if port:
        if not port.isdigit():
            raise ArchiveError("ADOPT_DATABASE_UNREACHABLE", "DB_HOST has an invalid port")
        lines.append("port=%s" % port)
    if socket:
        lines.append("socket=%s" % opt_value(socket))
    lines.append("default-character-set=%s" % ("utf8mb4" if not re.match(r"^[a-z0-9_]{1,32}$", cfg.get("DB_CHARSET") or "")
                                               else cfg["DB_CHARSET"]))
    return ("\n".join(lines) + "\n").encode("utf-8")


def opt_value(v):
    """An option file value: quoted, with the escapes the MySQL/MariaDB option parser knows."""
    if "\n" in v or "\r" in v:
        raise ArchiveError("ADOPT_DATABASE_UNREACHABLE", "a database setting in wp-config.php holds a line break")
    return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')


def with_defaults(body, size):
    """A remote shell command: the defaults file (`size` bytes on stdin) into a mktemp file of the
    source user, `body` run with "$f", the file removed whatever happens."""
    return ("umask 077; f=$(mktemp) || exit 97; trap 'rm -f \"$f\"' EXIT HUP INT TERM; "
            "head -c %d > \"$f\"; %s" % (size, body))


CLIENT = "c=$(command -v mariadb || command -v mysql) || { echo 'no mariadb/mysql client on the source' >&2; exit 98; }; "
DUMPER = ("d=$(command -v mariadb-dump || command -v mysqldump) || "
          "{ echo 'no mariadb-dump/mysqldump on the source' >&2; exit 98; }; ")


# ------------------------------------------------------------------ the probe ------------------
PROBE = r"""
cd -- %(root)s 2>/dev/null || { echo 'nodir'; exit 0; }
b() { base64 -w0 2>/dev/null || base64 | tr -d '\n'; }
if [ -f wp-config.php ]; then printf 'wpconfig\t'; b < wp-config.php; echo
elif [ -f ../wp-config.php ] && [ ! -f ../wp-settings.php ]; then printf 'wpconfig\t'; b < ../wp-config.php; echo
fi
[ -f wp-includes/version.php ] && { printf 'version\t'; b < wp-includes/version.php; echo; }
printf 'php\t'; { php -r 'echo PHP_VERSION;' 2>/dev/null || printf unknown; } | b; echo
for f in wp-content/plugins/*.php wp-content/plugins/*/*.php wp-content/mu-plugins/*.php wp-content/themes/*/style.css; do
  [ -f "$f" ] || continue
  h=$(head -c 8192 -- "$f" | grep -aiE '^[[:space:]/*#@]*(Plugin Name|Theme Name|Version):' | head -n 4)
  case "$f" in wp-content/mu-plugins/*) ;; *) [ -n "$h" ] || continue ;; esac
  printf 'hdr\t%%s\t%%s\n' "$(printf %%s "$f" | b)" "$(printf %%s "$h" | b)"
done
printf 'files_bytes\t%%s\n' "$(du -sb wp-content 2>/dev/null | cut -f1)"
printf 'files_count\t%%s\n' "$(find wp-content -type f 2>/dev/null | wc -l)"
"""


def b64(v):
    try:
        return base64.b64decode(v).decode("utf-8", "replace")
    except ValueError:
        return ""


def headers(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^[\s/*#@]*(Plugin Name|Theme Name|Version):\s*(.*?)\s*(\*/)?\s*$", line, flags=re.I)
        if m:
            key = m.group(1).lower().split()[0]
            key = "version" if key == "version" else "name"
            out.setdefault(key, m.group(2)[:200])
    return out


def probe(src, check_db=True):
    """What is at the source: (report, cfg, tables). Raises ArchiveError with ADOPT_* codes."""
    rc, out, err = src.run(PROBE % {"root": shlex.quote(src.root)}, timeout=60)
    rows = [line.split("\t") for line in out.decode("utf-8", "replace").splitlines()]
    if not rows:
        # no output at all: the login shell ran nothing (nologin, a forced command, a broken rc file)
        raise ArchiveError("ADOPT_SOURCE_UNREACHABLE", "SSH as %s@%s works, but the source user cannot run commands "
                           "(exit %d: %s); it needs a login shell" % (src.user, src.host, rc,
                                                                      last_line(err.decode("utf-8", "replace"))))
    if rows and rows[0] == ["nodir"]:
        raise ArchiveError("ADOPT_NOT_WORDPRESS", "%s is not a directory the source user can enter" % src.root)
    data = {}
    plugins, mu_plugins, themes = {}, [], []
    for r in rows:
        if r[0] == "hdr" and len(r) == 3:
            path, h = b64(r[1]), headers(b64(r[2]))
            parts = path.split("/")
            if parts[1] == "themes":
                if "name" in h:
                    themes.append(dict(slug=parts[2], **h))
            elif parts[1] == "mu-plugins":
                mu_plugins.append(dict(slug=parts[2], **h))
            elif "name" in h:
                slug = parts[2] if len(parts) > 3 else parts[2][:-len(".php")]
                plugins.setdefault(slug, dict(slug=slug, **h))
        elif len(r) == 2:
            data[r[0]] = r[1]
    if "wpconfig" not in data or "version" not in data:
        raise ArchiveError("ADOPT_NOT_WORDPRESS", "no WordPress at %s (%s is missing)" % (
            src.root, "wp-config.php" if "wpconfig" not in data else "wp-includes/version.php"))
    cfg = parse_wp_config(b64(data["wpconfig"]))
    m = re.search(r"\$wp_version\s*=\s*'([^']{1,40})'", b64(data["version"]))
    report = {
        "wordpress_version": m.group(1) if m else "unknown",
        "php_version": (b64(data.get("php", "")).strip() or "unknown")[:40],
        "table_prefix": cfg.get("table_prefix"),
        "multisite": bool(cfg["MULTISITE"] or cfg["WP_ALLOW_MULTISITE"]),
        "plugins": sorted(plugins.values(), key=lambda x: x["slug"]),
        "mu_plugins": sorted(mu_plugins, key=lambda x: x["slug"]),
        "themes": sorted(themes, key=lambda x: x["slug"]),
        "files_bytes": int(data.get("files_bytes") or 0) if (data.get("files_bytes") or "").isdigit() else None,
        "files_count": int(data.get("files_count") or 0) if (data.get("files_count") or "").strip().isdigit() else None,
        "database_name": cfg.get("DB_NAME"),
        "database_host": cfg.get("DB_HOST") or "localhost",
    }
    if report["multisite"]:
        raise MultisiteError(report, "%s is a WordPress multisite network (%s in wp-config.php); adopting one is "
                             "not supported yet" % (src.root, "MULTISITE" if cfg["MULTISITE"] else "WP_ALLOW_MULTISITE"))
    prefix = cfg.get("table_prefix")
    if not prefix or not PREFIX_RE.match(prefix):
        raise ArchiveError("ADOPT_NOT_WORDPRESS", "wp-config.php's $table_prefix is missing or not 1 to 32 letters, "
                           "digits or underscores")
    if not cfg.get("DB_NAME") or not SQL_IDENT_RE.match(cfg["DB_NAME"]):
        raise ArchiveError("ADOPT_NOT_WORDPRESS", "wp-config.php's DB_NAME is missing or unusual")
    tables = []
    if check_db:
        tables = database_facts(src, cfg, report)
    return report, cfg, tables


class MultisiteError(ArchiveError):
    def __init__(self, report, message):
        super().__init__("ADOPT_MULTISITE_UNSUPPORTED", message)
        self.report = report


def database_facts(src, cfg, report):
    """Logs in with wp-config.php's credentials on the source: the tables of the prefix, the
    database size, home and siteurl. The table names."""
    prefix = cfg["table_prefix"]
    like = prefix.replace("_", "\\_")
    opts = client_options(cfg)
    sql = ("SELECT 't', TABLE_NAME, COALESCE(DATA_LENGTH + INDEX_LENGTH, 0) FROM information_schema.TABLES "
           "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE '%s%%' AND TABLE_TYPE = 'BASE TABLE';" % like)
    body = CLIENT + '"$c" --defaults-extra-file="$f" -N -B -e %s -- %s' % (shlex.quote(sql), shlex.quote(cfg["DB_NAME"]))
    rc, out, err = src.run(with_defaults(body, len(opts)), stdin=opts, timeout=60)
    if rc != 0:
        raise ArchiveError("ADOPT_DATABASE_UNREACHABLE", "the database %s cannot be read with the credentials of "
                           "wp-config.php on the source: %s" % (cfg["DB_NAME"], last_line(err.decode("utf-8", "replace"))))
    tables, size = [], 0
    for line in out.decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "t":
            tables.append(parts[1])
            size += int(parts[2]) if parts[2].isdigit() else 0
    missing = [prefix + t for t in ("options", "posts", "users") if prefix + t not in tables]
    if missing:
        raise ArchiveError("ADOPT_NOT_WORDPRESS", "the database %s has no %s" % (cfg["DB_NAME"], ", ".join(missing)))
    if prefix + "blogs" in tables and prefix + "site" in tables:
        raise MultisiteError(report, "the database holds the multisite tables %sblogs and %ssite; adopting a "
                             "multisite network is not supported yet" % (prefix, prefix))
    sql = ("SELECT option_name, option_value FROM `%soptions` WHERE option_name IN ('home', 'siteurl');" % prefix)
    body = CLIENT + '"$c" --defaults-extra-file="$f" -N -B -e %s -- %s' % (shlex.quote(sql), shlex.quote(cfg["DB_NAME"]))
    rc, out, err = src.run(with_defaults(body, len(opts)), stdin=opts, timeout=60)
    if rc == 0:
        for line in out.decode("utf-8", "replace").splitlines():
            k, _, v = line.partition("\t")
            if k in ("home", "siteurl"):
                report[k] = v.strip()[:2048]
    report["database_bytes"] = size
    report["database_tables"] = len(tables)
    return tables


def dump_database(src, cfg, tables, dest, limit):
    """mariadb-dump (mysqldump) ON the source, streamed into dest; only the tables of the prefix."""
    opts = client_options(cfg)
    names = " ".join(shlex.quote(t) for t in tables)
    body = (DUMPER + '"$d" --defaults-extra-file="$f" --single-transaction --quick --no-tablespaces '
            "--skip-lock-tables --skip-dump-date --default-character-set=utf8mb4 -- %s %s"
            % (shlex.quote(cfg["DB_NAME"]), names))
    return src.stream(with_defaults(body, len(opts)), dest, opts, limit, "the database dump")


def pull_content(src, dest, limit):
    """wp-content as a tar (member names wp-content/...), caches and upgrade leftovers left out.
    GNU tar's exit 1 (a file changed while it was read) is accepted."""
    excludes = " ".join("--exclude=%s" % shlex.quote("wp-content/" + d) for d in CONTENT_SKIP)
    cmd = "cd -- %s && tar -cf - %s wp-content" % (shlex.quote(src.root), excludes)
    return src.stream(cmd, dest, b"", limit, "the wp-content archive", ok_codes=(0, 1))


# ------------------------------------------------------------------ the module ------------------
if Import is not None:
    class Adopt(Import):
        """The import with a WordPress site over SSH as its source."""

        def validate_source(self):
            p = self.p
            for key in ("ssh_host", "ssh_user", "source_path", "adopt_private_key", "source_host_key"):
                if not p.get(key):
                    raise Invalid("%s is required" % key)
            check_location(p["ssh_host"], p["ssh_port"], p["ssh_user"], p["source_path"])
            if not HOST_KEY_RE.match(p["source_host_key"].strip()):
                raise Invalid("source_host_key must be an OpenSSH public key line (type and base64)")
            self.facts_source = "ssh://%s@%s:%d%s" % (p["ssh_user"], p["ssh_host"], p["ssh_port"], p["source_path"])

        def fetch(self, tmp):
            p = self.p
            self.facts["import_url"] = self.facts_source
            src = Source(p["ssh_host"], p["ssh_port"], p["ssh_user"], p["source_path"], p["adopt_private_key"],
                         p["source_host_key"].strip(), tmp)
            report, cfg, tables = self.timer.run("probe", probe, src)
            self.facts["adopt_report"] = report
            p["source_table_prefix"] = cfg["table_prefix"]
            limit = p["import_max_bytes"]
            dump, content = os.path.join(tmp, "dump.sql"), os.path.join(tmp, "content.tar")
            dsize = self.timer.run("dump", dump_database, src, cfg, tables, dump, limit)
            csize = self.timer.run("content", pull_content, src, content, limit - dsize)
            self.facts.update({"import_size_bytes": dsize + csize, "adopt_dump_bytes": dsize,
                               "adopt_content_bytes": csize})
            lay = parts(dump, content)  # checked as it is extracted (Import.stage_import)
            lay.downloads += [dump, content]
            return lay

    ARGUMENT_SPEC = dict(
        {k: v for k, v in IMPORT_ARGUMENT_SPEC.items()
         if k not in ("archive_url", "archive_sha256", "database_url", "database_sha256", "content_url",
                      "content_sha256")},
        ssh_host=dict(type="str", required=True),
        ssh_port=dict(type="int", default=22),
        ssh_user=dict(type="str", required=True),
        source_path=dict(type="str", required=True),
        source_host_key=dict(type="str", required=True),
        adopt_private_key=dict(type="str", required=True, no_log=True),
    )


# ------------------------------------------------------------------ the dry run (script) --------
def report_main(stdin):
    """The dry run: JSON in, one JSON line out (never the private key)."""
    tmp = tempfile.mkdtemp(prefix="adopt-dry-run-")
    try:
        req = json.loads(stdin)
        port = req.get("port") or 22
        host_key = (req.get("host_key") or "").strip() or None
        if host_key and not HOST_KEY_RE.match(host_key):
            return {"ok": False, "error_code": "bad_request", "error": "host_key is not an OpenSSH public key line"}
        try:
            src = Source(req.get("host"), port, req.get("user"), req.get("path"), req.get("private_key"), host_key, tmp)
        except Invalid as exc:
            return {"ok": False, "error_code": "bad_request", "error": str(exc)}
        try:
            report, _, _ = probe(src)
        except MultisiteError as exc:
            key = src.host_key()
            exc.report.update({"host_key": key, "host_key_fingerprint": fingerprint(key) if key else None})
            return {"ok": False, "error_code": exc.code, "error": str(exc), "report": exc.report}
        except ArchiveError as exc:
            return {"ok": False, "error_code": exc.code, "error": str(exc)}
        key = src.host_key()
        report.update({"host_key": key, "host_key_fingerprint": fingerprint(key) if key else None})
        return {"ok": True, "report": report, "host_key": key}
    except (ValueError, TypeError) as exc:
        return {"ok": False, "error_code": "bad_request", "error": "bad request: %s" % exc}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "report":
    os.umask(0o077)
    print(json.dumps(report_main(sys.stdin.read())))
