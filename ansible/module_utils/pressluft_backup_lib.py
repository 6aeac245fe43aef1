"""Backups and restores of one Pressluft environment on its node: storage targets (a local
directory or S3 through rclone, streamed and hashed), the backup (class Backup) and the restore
(class Restore) that the pressluft_backup module runs, and restore_database(): only the database of
a backup, restored with the same machinery (an update's rollback, pressluft_release).

Moved here unchanged from library/pressluft_backup.py (which keeps its documentation, argument spec
use and main()) so other modules can restore with the same, verified code.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import fcntl
import errno
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from ansible.module_utils.pressluft_checks import (
    helper_user_argv, last_json_line, run_helper, run_lean_helper, wordpress_checks)

FORMAT = 1
MANIFEST = "manifest.json"
DB_ARTIFACT = "database.sql.zst"
FILES_ARTIFACT = "files.tar.zst"
UPLOADS_ARTIFACT = "uploads.tar.zst"
ARTIFACTS = (DB_ARTIFACT, FILES_ARTIFACT, UPLOADS_ARTIFACT)
SCOPES = {"db": (DB_ARTIFACT,), "files": (FILES_ARTIFACT, UPLOADS_ARTIFACT), "full": ARTIFACTS}
PARTIAL = ".%s.partial"  # a local artifact while it is written
CHUNK = 1024 * 1024
MANIFEST_LIMIT = 1024 * 1024
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
DB_IDENT_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
RELEASE_RE = re.compile(r"^[0-9]{14}$")
PHP_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+$")
WEB_GROUP = "www-data"
FASTCGI_CACHE_DIR = "/var/cache/nginx/pressluft"
RESTORE_TMP = "/var/lib/pressluft/restore"
KEEP_RELEASES = 3
CORE_TOP = ("wp-admin", "wp-includes", "index.php", "xmlrpc.php", "license.txt", "readme.html")
CONTENT_EXCLUDE = ("wp-content/uploads", "wp-content/cache", "wp-content/upgrade",
                   "wp-content/upgrade-temp-backup")
# tar options extracting the files archive into a new release (never over wp-config.php or uploads)
RELEASE_EXCLUDE = ("--anchored", "--exclude=wp-config.php", "--exclude=./wp-config.php",
                   "--exclude=wp-content/uploads", "--exclude=./wp-content/uploads")
# local storage never goes below these (nor is it / or a top-level directory)
FORBIDDEN_LOCAL = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run",
                   "/sbin", "/sys", "/usr", "/var/www", "/var/lib/mysql", "/var/cache/nginx")
# pressluft_environment's object-cache drop-in carries this marker (wp-content/object-cache.php)
DROPIN_MARKER = b"Pressluft object-cache drop-in (pressluft-object-cache)"
RCLONE_REMOTE = "pls3"
RCLONE_FLAGS = ["-q", "--low-level-retries", "3", "--retries", "1", "--contimeout", "10s", "--timeout", "2m"]


class Invalid(Exception):
    """Bad input or a node that is not set up: the task fails."""


class StorageError(Exception):
    """The storage target could not be written or read."""


class DumpError(Exception):
    """The database dump or a file archive could not be produced."""


class VerifyError(Exception):
    """What was read back (or found) differs from what was expected."""


class ApplyError(Exception):
    """A restore step on the environment failed."""


class Aborted(Exception):
    """Another artifact of the same run failed."""


class Known(Exception):
    """A failure with an error code: reported in the facts, the playbook fails the run."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tail(fh, limit=600):
    if fh is None:
        return ""
    try:
        fh.seek(0)
        data = fh.read()
    except (OSError, ValueError):
        return ""
    text = data.decode("utf-8", "replace").strip()
    if len(text) > limit:
        text = text[-limit:]
        text = text.split("\n", 1)[1] if "\n" in text[:-1] else text  # from a line's start
    return text


class Timer:
    def __init__(self):
        self.ms = {}
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def run(self, name, fn, *args):
        started = time.monotonic()
        try:
            return fn(*args)
        finally:
            with self.lock:
                self.ms[name] = self.ms.get(name, 0) + int((time.monotonic() - started) * 1000)

    def done(self):
        self.ms["total"] = int((time.monotonic() - self.started) * 1000)
        return self.ms


def as_user(uid, gid):
    """Popen keyword arguments running a command as uid:gid (no supplementary groups, no PAM)."""
    return {"user": uid, "group": gid, "extra_groups": [],
            "env": {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LC_ALL": "C", "HOME": "/nonexistent"}}


class Pipeline:
    """Commands chained stdout -> stdin. Each step: dict(argv, ok={0}, user=(uid, gid) or None).
    `stdin` feeds the first command (a file object, default /dev/null); the last one's stdout is
    `self.stdout` (a pipe) unless `stdout` is given. stderr of every step goes to a temporary file."""

    def __init__(self, steps, stdin=None, stdout=subprocess.PIPE):
        self.procs = []
        src = stdin
        try:
            for i, step in enumerate(steps):
                last = i == len(steps) - 1
                err = tempfile.TemporaryFile()
                kwargs = as_user(*step["user"]) if step.get("user") else {}
                proc = subprocess.Popen(step["argv"], stdin=src if src is not None else subprocess.DEVNULL,
                                        stdout=stdout if last else subprocess.PIPE, stderr=err,
                                        cwd="/", **kwargs)
                if i > 0:
                    src.close()  # our copy of the pipe between two steps
                src = proc.stdout
                self.procs.append((step, proc, err))
        except OSError as exc:
            self.kill()
            raise DumpError("cannot start %s: %s" % (steps[len(self.procs)]["argv"][0], exc))
        self.stdout = self.procs[-1][1].stdout

    def finish(self):
        """Waits for all steps; the first one that failed, as a message (None when all went well)."""
        if self.stdout is not None:
            self.stdout.close()
        failed = None
        for step, proc, err in self.procs:
            rc = proc.wait()
            if failed is None and rc not in step.get("ok", (0,)):
                failed = "%s failed (rc=%d): %s" % (os.path.basename(step["argv"][0]), rc, tail(err))
            err.close()
        return failed

    def kill(self):
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    proc.terminate()  # runuser and friends forward SIGTERM to their child
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        for _, proc, _ in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for _, proc, err in self.procs:
            if proc.stdout is not None:
                try:
                    proc.stdout.close()
                except OSError:
                    pass
            err.close()


# ------------------------------------------------------------------ storage ---------------------
class LocalStorage:
    kind = "local"

    def __init__(self, path):
        if not path or not path.startswith("/"):
            raise Invalid("storage_path must be an absolute directory for local storage")
        norm = os.path.normpath(path)
        if norm.count("/") < 2:
            raise Invalid("storage_path %s is too close to / for a backup directory" % norm)
        for bad in FORBIDDEN_LOCAL:
            if norm == bad or norm.startswith(bad + "/"):
                raise Invalid("storage_path %s is below %s" % (norm, bad))
        self.path = norm

    def describe(self, name=None):
        return os.path.join(self.path, name) if name else self.path

    def list(self):
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StorageError("cannot list %s: %s" % (self.path, exc.strerror))
        out = {}
        for name in names:
            try:
                st = os.lstat(os.path.join(self.path, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                out[name] = st.st_size
        return out

    def exists(self):
        return os.path.isdir(self.path)

    def prepare(self):
        """The directory (and missing parents) root-owned 0700."""
        try:
            missing = []
            cur = self.path
            while not os.path.lexists(cur):
                missing.append(cur)
                cur = os.path.dirname(cur)
            for d in reversed(missing):
                os.mkdir(d, 0o700)
            st = os.lstat(self.path)
            if not stat.S_ISDIR(st.st_mode):
                raise StorageError("%s is not a directory" % self.path)
            if (st.st_uid, st.st_gid) != (0, 0):
                os.chown(self.path, 0, 0)
            if stat.S_IMODE(st.st_mode) != 0o700:
                os.chmod(self.path, 0o700)
        except OSError as exc:
            raise StorageError("cannot create %s: %s" % (self.path, exc.strerror))

    def writer(self, name):
        return LocalWriter(self.path, name)

    def read_chunks(self, name, fn):
        try:
            with open(os.path.join(self.path, name), "rb") as fh:
                while True:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        return
                    fn(chunk)
        except OSError as exc:
            raise StorageError("cannot read %s: %s" % (self.describe(name), exc.strerror))

    def put(self, name, data):
        w = self.writer(name)
        try:
            w.write(data)
            w.commit()
        except BaseException:
            w.abort()
            raise

    def get(self, name):
        try:
            with open(os.path.join(self.path, name), "rb") as fh:
                return fh.read(MANIFEST_LIMIT)
        except OSError as exc:
            raise StorageError("cannot read %s: %s" % (self.describe(name), exc.strerror))

    def delete(self, names):
        for name in names:
            for n in (name, PARTIAL % name):
                try:
                    os.unlink(os.path.join(self.path, n))
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StorageError("cannot delete %s: %s" % (self.describe(n), exc.strerror))

    def remove_dir(self):
        """Removes the directory when empty; the names left in it otherwise."""
        try:
            os.rmdir(self.path)
            return []
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return sorted(os.listdir(self.path))
            raise StorageError("cannot remove %s: %s" % (self.path, exc.strerror))

    def local_path(self, name):
        return os.path.join(self.path, name)


class LocalWriter:
    def __init__(self, directory, name):
        self.final = os.path.join(directory, name)
        self.tmp = os.path.join(directory, PARTIAL % name)
        try:
            if os.path.lexists(self.tmp):
                os.unlink(self.tmp)
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            self.fh = os.fdopen(fd, "wb")
        except OSError as exc:
            raise StorageError("cannot create %s: %s" % (self.tmp, exc.strerror))

    def write(self, data):
        try:
            self.fh.write(data)
        except OSError as exc:
            raise StorageError("cannot write %s: %s" % (self.final, exc.strerror))

    def commit(self):
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.final)
            dfd = os.open(os.path.dirname(self.final), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StorageError("cannot write %s: %s" % (self.final, exc.strerror))

    def abort(self):
        try:
            self.fh.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class S3Storage:
    kind = "s3"

    def __init__(self, p, prefix):
        for key in ("s3_endpoint", "s3_bucket", "s3_access_key_id", "s3_secret_access_key"):
            if not p.get(key):
                raise Invalid("%s is required for s3 storage" % key)
        endpoint = urlsplit(p["s3_endpoint"])
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise Invalid("s3_endpoint must be an http(s) URL")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$", p["s3_bucket"]):
            raise Invalid("s3_bucket has unexpected characters")
        prefix = (prefix or "").strip("/")
        parts = prefix.split("/")
        if not prefix or any(part in ("", ".", "..") for part in parts):
            raise Invalid("storage_path must be a key prefix like a/b/c (no empty, . or .. parts)")
        if re.search(r"[\x00-\x1f\x7f]", prefix):
            raise Invalid("storage_path has control characters")
        self.bucket = p["s3_bucket"]
        self.prefix = prefix
        self.secrets = [v for v in (p["s3_secret_access_key"], p["s3_access_key_id"]) if v]
        self.rclone = shutil.which("rclone")
        if not self.rclone:
            raise StorageError("rclone is not installed on the node (run node-provision)")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        cfg = "RCLONE_CONFIG_%s_" % RCLONE_REMOTE.upper()
        env.update({
            "RCLONE_CONFIG": "/dev/null",
            cfg + "TYPE": "s3",
            cfg + "PROVIDER": "Other",
            cfg + "ENDPOINT": p["s3_endpoint"],
            cfg + "REGION": p.get("s3_region") or "us-east-1",
            cfg + "ACCESS_KEY_ID": p["s3_access_key_id"],
            cfg + "SECRET_ACCESS_KEY": p["s3_secret_access_key"],
            cfg + "FORCE_PATH_STYLE": "true" if p.get("s3_path_style", True) is not False else "false",
            # the bucket exists; creating it needs rights a backup key should not have
            cfg + "NO_CHECK_BUCKET": "true",
            # streamed uploads: 16 MiB parts (at most 10,000: 156 GiB per artifact)
            cfg + "CHUNK_SIZE": "16Mi",
        })
        self.env = env

    def redact(self, text):
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def describe(self, name=None):
        return "s3://%s/%s%s" % (self.bucket, self.prefix, "/" + name if name else "")

    def remote(self, name=None):
        return "%s:%s/%s%s" % (RCLONE_REMOTE, self.bucket, self.prefix, "/" + name if name else "")

    def argv(self, *args):
        return [self.rclone] + RCLONE_FLAGS + list(args)

    def run(self, what, args, data=None, timeout=600):
        try:
            proc = subprocess.run(self.argv(*args), input=data, capture_output=True, env=self.env,
                                  cwd="/", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StorageError("%s: rclone timed out" % what)
        except OSError as exc:
            raise StorageError("%s: cannot run rclone: %s" % (what, exc))
        if proc.returncode != 0:
            raise StorageError("%s failed: %s" % (what, self.redact(
                proc.stderr.decode("utf-8", "replace").strip()[-600:] or "rclone rc=%d" % proc.returncode)))
        return proc.stdout

    def list(self):
        out = self.run("listing %s" % self.describe(),
                       ["lsjson", "--files-only", "--no-mimetype", "--no-modtime", self.remote()], timeout=120)
        try:
            items = json.loads(out.decode("utf-8") or "[]")
        except ValueError:
            raise StorageError("listing %s: unexpected rclone output" % self.describe())
        return {i["Name"]: int(i.get("Size", -1)) for i in items if not i.get("IsDir")}

    def exists(self):
        return bool(self.list())

    def prepare(self):
        pass

    def writer(self, name):
        return S3Writer(self, name)

    def read_chunks(self, name, fn):
        err = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(self.argv("cat", self.remote(name)), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err, env=self.env, cwd="/")
        except OSError as exc:
            err.close()
            raise StorageError("cannot run rclone: %s" % exc)
        try:
            while True:
                chunk = proc.stdout.read(CHUNK)
                if not chunk:
                    break
                fn(chunk)
        except BaseException:
            proc.kill()
            proc.wait()
            err.close()
            raise
        proc.stdout.close()
        rc = proc.wait()
        message = self.redact(tail(err))
        err.close()
        if rc != 0:
            raise StorageError("reading %s failed: %s" % (self.describe(name), message or "rclone rc=%d" % rc))

    def put(self, name, data):
        self.run("writing %s" % self.describe(name), ["rcat", self.remote(name)], data=data, timeout=300)

    def get(self, name):
        data = self.run("reading %s" % self.describe(name), ["cat", "--count", str(MANIFEST_LIMIT),
                                                            self.remote(name)], timeout=120)
        return data

    def delete(self, names):
        if names:
            self.run("deleting from %s" % self.describe(), ["delete", self.remote(), "--files-from-raw", "-"],
                     data=("\n".join(names) + "\n").encode("utf-8"), timeout=300)

    def remove_dir(self):
        return []

    def local_path(self, name):
        return None


class S3Writer:
    """`rclone rcat` fed through its stdin. Committed by closing stdin; aborted by killing rclone
    (a streamed multipart upload is then never completed: no object appears)."""

    def __init__(self, storage, name):
        self.s = storage
        self.name = name
        self.err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(storage.argv("rcat", storage.remote(name)), stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=self.err, env=storage.env, cwd="/")
        except OSError as exc:
            self.err.close()
            raise StorageError("cannot run rclone: %s" % exc)

    def _failed(self, what):
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        message = self.s.redact(tail(self.err))
        return StorageError("%s %s failed: %s" % (what, self.s.describe(self.name), message or "rclone rc=%d" % rc))

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            raise self._failed("uploading")

    def commit(self):
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self.proc.wait()
        if rc != 0:
            raise self._failed("uploading")
        self.err.close()

    def abort(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        self.err.close()


def make_storage(kind, path, p):
    if kind == "local":
        return LocalStorage(path)
    if kind == "s3":
        return S3Storage(p, path)
    raise Invalid("storage_type must be local or s3")


def checksum(storage, name):
    h = hashlib.sha256()
    size = [0]

    def take(chunk):
        h.update(chunk)
        size[0] += len(chunk)

    storage.read_chunks(name, take)
    return size[0], h.hexdigest()


# ------------------------------------------------------------------ the environment --------------
class Target:
    """Names and paths of one environment, derived like pressluft_environment does."""

    def __init__(self, p):
        for key in ("site_id", "environment_id"):
            if not UUID_RE.match(p.get(key) or ""):
                raise Invalid("%s must be a UUID" % key)
        self.p = p
        self.site_id = p["site_id"].lower()
        self.env_id = p["environment_id"].lower()
        self.user = "pl_" + self.env_id.replace("-", "")[-16:]
        sites_root = os.path.normpath(p["sites_root"])
        self.root = os.path.join(sites_root, self.site_id, self.env_id)
        if p.get("environment_root") and os.path.normpath(p["environment_root"]) != self.root:
            raise Invalid("environment_root %r differs from the derived %r" % (p["environment_root"], self.root))
        self.db_name = p.get("db_name") or self.user
        if not DB_IDENT_RE.match(self.db_name):
            raise Invalid("db_name must match %s" % DB_IDENT_RE.pattern)
        self.redis_prefix = p.get("redis_prefix") or "pressluft_%s:" % self.env_id
        if not re.match(r"^[A-Za-z0-9_:.-]{1,128}$", self.redis_prefix):
            raise Invalid("redis_prefix has unexpected characters")
        self.releases_dir = os.path.join(self.root, "releases")
        self.shared = os.path.join(self.root, "shared")
        self.uploads = os.path.join(self.shared, "uploads")
        self.cache_dir = os.path.join(FASTCGI_CACHE_DIR, self.env_id)
        self.fpm_socket = "/run/php/pressluft-%s.sock" % self.user

    def require_present(self):
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            raise Invalid("environment %s is not present on this node (no user %s)" % (self.env_id, self.user))
        if not os.path.isdir(self.root):
            raise Invalid("environment %s is not present on this node (%s missing)" % (self.env_id, self.root))
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.web_gid = grp.getgrnam(WEB_GROUP).gr_gid

    def php_version(self):
        wanted = (self.p.get("php_version") or "").strip()
        if wanted:
            if not PHP_VERSION_RE.match(wanted):
                raise Invalid("php_version must look like 8.2")
            return wanted
        pools = sorted(glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % self.user))
        if pools:
            return pools[-1].split("/")[3]
        proc = subprocess.run(["php", "-r", "echo PHP_MAJOR_VERSION.'.'.PHP_MINOR_VERSION;"],
                              capture_output=True, text=True, check=False)
        return proc.stdout.strip() or None

    def php_cli(self):
        ver = self.php_version()
        if ver and shutil.which("php" + ver):
            return "php" + ver
        return "php"

    def current_release(self):
        """Absolute path of the release `current` points to (None when there is none)."""
        cur = os.path.join(self.root, "current")
        if not os.path.islink(cur):
            return None
        name = os.path.basename(os.readlink(cur).rstrip("/"))
        path = os.path.join(self.releases_dir, name)
        if os.readlink(cur) != "releases/" + name or not os.path.isfile(os.path.join(path, "wp-load.php")):
            return None
        return path

    def releases(self):
        try:
            return sorted(d for d in os.listdir(self.releases_dir)
                          if not d.startswith(".") and os.path.isdir(os.path.join(self.releases_dir, d)))
        except FileNotFoundError:
            return []

    def table_prefix(self):
        if self.p.get("table_prefix"):
            return self.p["table_prefix"]
        try:
            with open(os.path.join(self.shared, "wp-config.php"), "r", encoding="utf-8", errors="replace") as fh:
                m = re.search(r"\$table_prefix\s*=\s*'([A-Za-z0-9_]*)'", fh.read())
                if m:
                    return m.group(1)
        except OSError:
            pass
        return "wp_"


def is_core(name):
    return name in CORE_TOP or (name.startswith("wp-") and name.endswith(".php") and name != "wp-config.php")


def wordpress_version(release_dir):
    try:
        with open(os.path.join(release_dir, "wp-includes", "version.php"), "r", encoding="utf-8") as fh:
            m = re.search(r"\$wp_version\s*=\s*'([^']+)'", fh.read())
            return m.group(1) if m else None
    except OSError:
        return None


def mariadb(sql, database=None, raw=False):
    client = shutil.which("mariadb") or shutil.which("mysql")
    if not client:
        raise ApplyError("the mariadb client is not installed")
    argv = [client, "--protocol=socket", "--user=root", "--batch", "--skip-column-names"] + (["--raw"] if raw else [])
    if database:
        argv.append(database)
    proc = subprocess.run(argv, input=sql, capture_output=True, text=True, cwd="/", check=False)
    if proc.returncode != 0:
        raise ApplyError("MariaDB (as root over the unix socket) failed: %s" % proc.stderr.strip()[-600:])
    return proc.stdout


def sql_str(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name):
    return "`" + name.replace("`", "``") + "`"


def own_tree(top, uid, gid):
    """Owner uid:gid, directories 2750, files 0640 (as pressluft_environment sets them); links are
    re-owned, never followed (every change goes through a descriptor opened with O_NOFOLLOW);
    anything else (fifos, sockets, devices) is removed."""
    def paths():
        yield top
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                yield os.path.join(root, n)

    for name in paths():
        st = os.lstat(name)
        if stat.S_ISLNK(st.st_mode):
            os.lchown(name, uid, gid)
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            os.unlink(name)
            continue
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        fd = os.open(name, flags | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0))
        try:
            fst = os.fstat(fd)
            mode = 0o2750 if stat.S_ISDIR(fst.st_mode) else 0o640
            if (fst.st_uid, fst.st_gid) != (uid, gid):
                os.fchown(fd, uid, gid)
            if stat.S_IMODE(fst.st_mode) != mode or (fst.st_uid, fst.st_gid) != (uid, gid):
                os.fchmod(fd, mode)  # after fchown, which clears setgid
        finally:
            os.close(fd)


def exchange(a, b):
    """Atomically swaps two paths (renameat2 RENAME_EXCHANGE); False when the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(ctypes.c_int(at_fdcwd), os.fsencode(a), ctypes.c_int(at_fdcwd), os.fsencode(b),
            ctypes.c_uint(rename_exchange))
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def master_pid(pidfile, title):
    try:
        with open(pidfile, "r", encoding="ascii") as fh:
            pid = int(fh.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return pid if fh.read().startswith(title) else None
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ create ----------------------
class Backup:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        if not UUID_RE.match(self.p.get("backup_id") or ""):
            raise Invalid("backup_id must be a UUID")
        self.backup_id = self.p["backup_id"].lower()
        if not self.p.get("storage_type") or not self.p.get("storage_path"):
            raise Invalid("storage_type and storage_path are required")
        self.storage = make_storage(self.p["storage_type"], self.p["storage_path"], self.p)
        self.timer = Timer()
        self.facts = {
            "backup_id": self.backup_id,
            "backup_storage_type": self.storage.kind,
            "backup_storage_path": self.p["storage_path"].rstrip("/") or self.p["storage_path"],
        }

    def storage_failure(self, exc):
        return Known("BACKUP_STORAGE_FAILED", str(exc))

    # ------------------------------------------------------------------------------------ create
    def create(self):
        p = self.p
        t = Target(p)
        t.require_present()
        scope = p["backup_scope"]
        self.facts["backup_scope"] = scope
        try:
            listing = self.timer.run("list", self.storage.list)
            if MANIFEST in listing:
                existing = self.timer.run("verify_existing", self.existing, listing)
                if existing is not None:
                    return False, existing
                if not self.m.check_mode:
                    self.storage.delete([MANIFEST])
        except StorageError as exc:
            raise self.storage_failure(exc)
        if self.m.check_mode:
            return True, {}

        release = t.current_release()
        if release is None:
            raise Known("BACKUP_DUMP_FAILED", "environment %s has no current release" % t.env_id)
        site_url = (p.get("site_url") or p.get("preview_url") or "").rstrip("/")
        if not site_url:
            raise Invalid("site_url (or preview_url) is required")
        created_at = now_iso()
        written = []
        try:
            self.storage.prepare()
            results = self.produce_all(t, release, SCOPES[scope], written)
            manifest = {
                "format": FORMAT,
                "backup_id": self.backup_id,
                "site_id": t.site_id,
                "environment_id": t.env_id,
                "scope": scope,
                "created_at": created_at,
                "wordpress_version": wordpress_version(release),
                "php_version": t.php_version(),
                "site_url": site_url,
                "table_prefix": t.table_prefix(),
                "artifacts": [results[name] for name in SCOPES[scope]],
            }
            data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
            written.append(MANIFEST)
            self.timer.run("manifest", self.storage.put, MANIFEST, data)
            back = self.timer.run("manifest_verify", self.storage.get, MANIFEST)
            if back != data:
                raise VerifyError("manifest.json read back from %s differs from what was written"
                                  % self.storage.describe())
        except (StorageError, DumpError, VerifyError, Aborted, OSError) as exc:
            code = {DumpError: "BACKUP_DUMP_FAILED", VerifyError: "BACKUP_VERIFY_FAILED"}.get(
                type(exc), "BACKUP_STORAGE_FAILED")
            message = str(exc) if not isinstance(exc, OSError) else "%s: %s" % (exc.filename, exc.strerror)
            self.facts["backup_cleanup"] = self.clean_up(written)
            raise Known(code, message)
        except BaseException:
            self.clean_up(written)
            raise
        return True, self.result_facts(manifest, data)

    def result_facts(self, manifest, data):
        return {
            "backup_manifest": manifest,
            "backup_size_bytes": sum(a["size"] for a in manifest["artifacts"]),
            "backup_checksum": hashlib.sha256(data).hexdigest(),
            "backup_scope": manifest.get("scope"),
        }

    def existing(self, listing):
        """The facts of the completed backup at storage_path when it verifies; None when it does
        not (it is then made again)."""
        data = self.storage.get(MANIFEST)
        try:
            manifest = json.loads(data.decode("utf-8"))
        except ValueError:
            return None
        if not isinstance(manifest, dict):
            return None
        if manifest.get("backup_id") != self.backup_id:
            raise StorageError("%s holds the manifest of another backup (%s); not touched"
                               % (self.storage.describe(), manifest.get("backup_id")))
        if manifest.get("scope") != self.p["backup_scope"] or not valid_artifacts(manifest):
            return None
        for art in manifest["artifacts"]:
            if listing.get(art["name"]) != art["size"]:
                return None
            if checksum(self.storage, art["name"]) != (art["size"], art["sha256"]):
                return None
        return self.result_facts(manifest, data)

    def clean_up(self, written):
        """Removes what this run wrote; 'removed' or why not."""
        try:
            names = list(written)
            if MANIFEST in names:  # never leave a manifest: first
                self.storage.delete([MANIFEST])
                names.remove(MANIFEST)
            self.storage.delete(names)
            self.storage.remove_dir()
            return "removed"
        except (StorageError, OSError) as exc:
            return "not removed: %s" % exc

    def producer(self, t, release, name):
        zstd = {"argv": ["zstd", "-q", "-c", "-3", "-T0"]}
        user = (t.uid, t.gid)
        if name == DB_ARTIFACT:
            dump = shutil.which("mariadb-dump") or shutil.which("mysqldump") or "mariadb-dump"
            return [{"argv": [dump, "--protocol=socket", "--user=root", "--single-transaction", "--quick",
                              "--routines", "--triggers", "--hex-blob", "--no-tablespaces",
                              "--skip-lock-tables", "--skip-dump-date", "--default-character-set=utf8mb4",
                              t.db_name]}, zstd]
        tar = ["tar", "--create", "--file=-", "--sort=name", "--warning=no-file-changed",
               "--warning=no-file-removed", "--warning=no-file-shrank"]
        if name == FILES_ARTIFACT:
            extras = sorted(e for e in os.listdir(release)
                            if e not in ("wp-content", "wp-config.php") and not is_core(e))
            argv = tar + ["--directory=" + release, "--anchored"]
            argv += ["--exclude=" + x for x in CONTENT_EXCLUDE]
            argv += ["--", "wp-content"] + extras
        else:
            if not os.path.isdir(t.uploads):
                raise DumpError("%s is missing" % t.uploads)
            argv = tar + ["--directory=" + t.uploads, "--", "."]
        # tar exits 1 when a file changed while it was read (a live site): not an error
        return [{"argv": argv, "ok": (0, 1), "user": user}, zstd]

    def produce(self, t, release, name, stop, written):
        """Produce one artifact into the storage, then read it back; its manifest entry."""
        started = time.monotonic()
        steps = self.producer(t, release, name)
        h = hashlib.sha256()
        size = 0
        with self.lock:
            written.append(name)
        writer = self.storage.writer(name)
        pipe = None
        try:
            pipe = Pipeline(steps)
            while True:
                if stop.is_set():
                    raise Aborted("aborted")
                chunk = pipe.stdout.read(CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
                writer.write(chunk)
            failed = pipe.finish()
            pipe = None
            if failed:
                raise DumpError("%s: %s" % (name, failed))
            writer.commit()
        except BaseException:
            if pipe is not None:
                pipe.kill()
            writer.abort()
            raise
        key = name.split(".")[0]
        with self.timer.lock:
            self.timer.ms[key] = int((time.monotonic() - started) * 1000)
        digest = h.hexdigest()
        got = self.timer.run(key + "_verify", checksum, self.storage, name)
        if got != (size, digest):
            raise VerifyError("%s read back from %s: %d bytes, sha256 %s; written: %d bytes, sha256 %s"
                              % (name, self.storage.describe(), got[0], got[1], size, digest))
        return {"name": name, "size": size, "sha256": digest}

    def produce_all(self, t, release, names, written):
        """All artifacts side by side; the first real failure stops the others."""
        stop = threading.Event()
        self.lock = threading.Lock()
        results, errors = {}, []

        def work(name):
            try:
                results[name] = self.produce(t, release, name, stop, written)
            except BaseException as exc:  # pylint: disable=broad-except
                errors.append(exc)
                stop.set()

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(work, names))
        real = [e for e in errors if not isinstance(e, Aborted)]
        if real or errors:
            raise (real or errors)[0]
        return results

    # ------------------------------------------------------------------------------------ delete
    def delete(self):
        try:
            listing = self.timer.run("list", self.storage.list)
            exists = self.storage.exists() if self.storage.kind == "local" else bool(listing)
            if not exists:
                return False, {"backup_deleted": True, "backup_deleted_objects": []}
            names = [n for n in ARTIFACTS if n in listing or (PARTIAL % n) in listing]
            deleted = []
            if MANIFEST in listing or (PARTIAL % MANIFEST) in listing:
                try:
                    manifest = json.loads(self.storage.get(MANIFEST).decode("utf-8")) if MANIFEST in listing else {}
                except ValueError:
                    manifest = {}
                if isinstance(manifest, dict) and manifest.get("backup_id") not in (None, self.backup_id):
                    raise StorageError("%s holds the manifest of another backup (%s); not deleted"
                                       % (self.storage.describe(), manifest.get("backup_id")))
                if isinstance(manifest, dict) and valid_artifacts(manifest):
                    names += [a["name"] for a in manifest["artifacts"] if a["name"] not in names]
                if not self.m.check_mode:
                    self.timer.run("delete_manifest", self.storage.delete, [MANIFEST])
                deleted.append(MANIFEST)
            names = [n for n in names if n in listing or (PARTIAL % n) in listing]
            if not self.m.check_mode:
                self.timer.run("delete", self.storage.delete, names)
            deleted += names
            leftovers = [] if self.m.check_mode else self.storage.remove_dir()
        except StorageError as exc:
            raise self.storage_failure(exc)
        facts = {"backup_deleted": True, "backup_deleted_objects": deleted}
        if leftovers:
            facts["backup_leftovers"] = leftovers
        # local: the (empty) directory removed is a change too; a directory holding only
        # unknown files stays and is no change on reruns
        return bool(deleted) or (self.storage.kind == "local" and not leftovers), facts


def valid_artifacts(manifest):
    arts = manifest.get("artifacts")
    if not isinstance(arts, list) or not arts:
        return False
    for a in arts:
        if (not isinstance(a, dict) or a.get("name") not in ARTIFACTS or not isinstance(a.get("size"), int)
                or isinstance(a.get("size"), bool) or a["size"] < 0 or not SHA_RE.match(str(a.get("sha256")))):
            return False
    return len({a["name"] for a in arts}) == len(arts)


# ------------------------------------------------------------------ restore ---------------------
class Restore:
    def __init__(self, module):
        self.m = module
        p = self.p = module.params
        if not UUID_RE.match(p.get("restore_id") or ""):
            raise Invalid("restore_id must be a UUID")
        self.restore_id = p["restore_id"].lower()
        self.t = Target(p)
        self.site_url = (p.get("site_url") or p.get("preview_url") or "").rstrip("/")
        u = urlsplit(self.site_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise Invalid("site_url must be an http(s) URL")
        if not isinstance(p.get("backup_manifest"), dict):
            raise Invalid("backup_manifest (the recorded manifest) is required")
        if not p.get("storage_type") or not p.get("storage_path"):
            raise Invalid("backup_storage_type and backup_storage_path are required")
        self.storage = make_storage(p["storage_type"], p["storage_path"], p)
        self.rollback = None
        if p.get("rollback_storage_path"):
            if not isinstance(p.get("rollback_manifest"), dict):
                raise Invalid("rollback_manifest is required with rollback_storage_path")
            self.rollback = make_storage(p["storage_type"], p["rollback_storage_path"], p)
        self.timer = Timer()
        self.changes = []
        self.touched = False
        self.garbage = {"sql": [], "paths": []}  # see dispose_garbage()
        self.facts = {
            "restore_id": self.restore_id,
            "backup_id": p["backup_manifest"].get("backup_id"),
            "restore_verified": False,
            "restore_healthy": False,
            "restored_release": None,
            "rolled_back": False,
            "healthy": False,
        }

    # --------------------------------------------------------------------------------- verify
    @staticmethod
    def check_recorded(recorded, label):
        """The recorded manifest is a valid one (no storage access)."""
        if recorded.get("format") != FORMAT or not valid_artifacts(recorded):
            raise VerifyError("the recorded %s manifest is not a format-%d manifest with valid artifacts" % (label, FORMAT))
        if recorded.get("scope") not in SCOPES or sorted(a["name"] for a in recorded["artifacts"]) != sorted(SCOPES[recorded["scope"]]):
            raise VerifyError("the recorded %s manifest's artifacts do not match its scope" % label)

    def check_manifest(self, storage, recorded, label):
        """The manifest at the target equals the recorded one and fits this environment."""
        self.check_recorded(recorded, label)
        listing = storage.list()
        if MANIFEST not in listing:
            raise StorageError("%s: manifest.json not found" % storage.describe())
        try:
            stored = json.loads(storage.get(MANIFEST).decode("utf-8"))
        except ValueError:
            raise VerifyError("%s: manifest.json is not valid JSON" % storage.describe())
        if stored != recorded:
            raise VerifyError("%s: manifest.json differs from the recorded %s manifest" % (storage.describe(), label))
        for art in recorded["artifacts"]:
            if art["name"] not in listing:
                raise StorageError("%s: %s not found" % (storage.describe(), art["name"]))
        return listing

    def check_stored_manifest(self, storage, recorded, label):
        """manifest.json at the target equals the recorded manifest (one read, no listing: a
        missing artifact fails its read - RESTORE_STORAGE_UNREADABLE - and a wrong size its
        checksum comparison)."""
        self.check_recorded(recorded, label)
        try:
            stored = json.loads(storage.get(MANIFEST).decode("utf-8"))
        except ValueError:
            raise VerifyError("%s: manifest.json is not valid JSON" % storage.describe())
        if stored != recorded:
            raise VerifyError("%s: manifest.json differs from the recorded %s manifest" % (storage.describe(), label))

    def check_sizes(self, storage, recorded, label):
        """check_manifest + every listed artifact has the recorded size."""
        listing = self.check_manifest(storage, recorded, label)
        for art in recorded["artifacts"]:
            if listing[art["name"]] != art["size"]:
                raise VerifyError("%s: %s has %d bytes, the manifest says %d"
                                  % (storage.describe(), art["name"], listing[art["name"]], art["size"]))

    @staticmethod
    def mismatch(storage, art, got):
        return VerifyError("%s: %s does not match its checksum (%d bytes, sha256 %s; expected %d bytes, sha256 %s)"
                           % (storage.describe(), art["name"], got[0], got[1], art["size"], art["sha256"]))

    def fetch_one(self, storage, art, dest):
        """One artifact verified (size + SHA-256) as a local file: S3 artifacts are streamed into
        dest (0700), local ones are verified in place (root-only directory). Its path."""
        name = art["name"]
        local = storage.local_path(name)
        if local is not None:
            got = checksum(storage, name)
            path = local
        else:
            os.makedirs(dest, mode=0o700, exist_ok=True)
            path = os.path.join(dest, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                got, error = self.stream(storage, name, [fh])
            if error is not None:
                raise error if isinstance(error, OSError) else OSError(errno.EIO, str(error), path)
        if got != (art["size"], art["sha256"]):
            raise self.mismatch(storage, art, got)
        return path

    def verify_only(self, storage, recorded, label):
        """Check mode: every artifact read and hashed side by side, nothing written."""
        self.check_sizes(storage, recorded, label)
        arts = recorded["artifacts"]

        def one(art):
            got = self.stream(storage, art["name"], [])[0]
            if got != (art["size"], art["sha256"]):
                raise self.mismatch(storage, art, got)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(arts)) as pool:
            futures = [pool.submit(one, a) for a in arts]
            concurrent.futures.wait(futures)
        for f in futures:
            f.result()

    @staticmethod
    def stream(storage, name, sinks):
        """Reads one artifact from the storage once, hashing every chunk and handing it to each
        sink (a binary file object). A sink that fails (a consumer that exited: broken pipe) is
        dropped and the read goes on, so the checksum is always known. ((size, sha256), the first
        sink error or None); StorageError when the storage cannot be read."""
        h = hashlib.sha256()
        state = {"size": 0, "error": None}
        live = list(sinks)

        def take(chunk):
            h.update(chunk)
            state["size"] += len(chunk)
            for sink in list(live):
                try:
                    sink.write(chunk)
                except (OSError, ValueError) as exc:
                    live.remove(sink)
                    state["error"] = state["error"] or exc

        storage.read_chunks(name, take)
        for sink in live:
            try:
                sink.flush()
            except (OSError, ValueError) as exc:
                state["error"] = state["error"] or exc
        return (state["size"], h.hexdigest()), state["error"]

    # --------------------------------------------------------------------------------- stage
    def scratch_names(self):
        """The scratch database (also the name of the account importing into it) and the database
        the live tables are moved into while the scratch tables take their place."""
        h = self.t.env_id.replace("-", "")[-16:]
        return "plrs_" + h, "plro_" + h

    def drop_scratch(self):
        scratch, trash = self.scratch_names()
        mariadb("DROP DATABASE IF EXISTS %s;\nDROP DATABASE IF EXISTS %s;\nDROP USER IF EXISTS %s@'localhost';\n"
                % (ident(scratch), ident(trash), sql_str(scratch)))

    def open_scratch(self, tmp):
        """A new, empty scratch database (the live database's default character set and collation)
        and an account of the same name that holds privileges on it and nothing else, its random
        password in a 0600 option file under tmp (root-only). The database stream is imported as
        that account: a dump that turns out not to match its checksum can have changed nothing but
        the scratch database by the time it is refused. (user, option file)."""
        t = self.t
        scratch, _ = self.scratch_names()
        out = mariadb("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                      "WHERE SCHEMA_NAME=%s;\nSELECT @@socket;\n" % sql_str(t.db_name), raw=True).split()
        if len(out) != 3 or not all(re.match(r"^[A-Za-z0-9_]+$", v) for v in out[:2]):
            raise ApplyError("database %s does not exist" % t.db_name)
        password = secrets.token_hex(24)
        self.drop_scratch()
        try:
            mariadb("CREATE DATABASE %s CHARACTER SET %s COLLATE %s;\n"
                    "CREATE USER %s@'localhost' IDENTIFIED BY %s;\n"
                    "GRANT ALL PRIVILEGES ON %s.* TO %s@'localhost';\n"
                    % (ident(scratch), out[0], out[1], sql_str(scratch), sql_str(password),
                       ident(scratch.replace("_", "\\_")), sql_str(scratch)))
        except ApplyError as exc:
            raise ApplyError(str(exc).replace(password, "***"))
        cnf = os.path.join(tmp, "scratch.cnf")
        fd = os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("[client]\nuser=%s\npassword=%s\nsocket=%s\n" % (scratch, password, out[2]))
        return scratch, cnf

    def clear_leftovers(self):
        """What an interrupted run left beside the live environment (pressluft_environment removes
        .tmp-* releases too), and the scratch database and account (after the detached cleanup of
        an earlier run, dispose_garbage, finished)."""
        t = self.t
        self.wait_cleanup()
        for leftover in (glob.glob(os.path.join(t.shared, ".uploads-new-*"))
                         + glob.glob(os.path.join(t.shared, ".uploads-old-*"))
                         + glob.glob(os.path.join(t.releases_dir, ".tmp-*"))):
            shutil.rmtree(leftover, ignore_errors=True)
        self.drop_scratch()

    def discard(self, staged):
        for key in ("release", "uploads"):
            if staged.get(key):
                shutil.rmtree(staged[key], ignore_errors=True)
                staged[key] = None
        staged["database"] = None
        try:
            self.drop_scratch()  # also a scratch database or account a failed set-up left
        except ApplyError:
            pass

    def stage_one(self, storage, art, staged, tmp):
        """Reads one artifact once and, while hashing it, applies it beside the live environment:
        files -> releases/.tmp-<name> (current core + the archive, tar as the environment's user),
        uploads -> shared/.uploads-new-<name>, database -> the scratch database (as the scratch
        account). Returns (verification error, apply error); nothing live is touched here."""
        t = self.t
        name = art["name"]
        pipe = None
        apply_error = None
        try:
            if name == FILES_ARTIFACT:
                staged["release"] = os.path.join(t.releases_dir, ".tmp-" + staged["name"])
                self.prepare_release(staged["release"])
                pipe = self.extractor(staged["release"], RELEASE_EXCLUDE)
            elif name == UPLOADS_ARTIFACT:
                staged["uploads"] = os.path.join(t.shared, ".uploads-new-" + staged["name"])
                self.make_dir(staged["uploads"])
                pipe = self.extractor(staged["uploads"])
            else:
                staged["database"], cnf = self.open_scratch(tmp)
                client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
                pipe = Pipeline([
                    {"argv": ["zstd", "-q", "-d", "-c"]},
                    {"argv": [client, "--defaults-file=" + cnf, "--protocol=socket", "--batch",
                              "--default-character-set=utf8mb4", "--max-allowed-packet=1G",
                              staged["database"]]},
                ], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        except (ApplyError, DumpError, OSError) as exc:
            apply_error = exc
        sink = pipe.procs[0][1].stdin if pipe is not None else None
        try:
            got, sink_error = self.stream(storage, name, [sink] if sink is not None else [])
        except StorageError as exc:
            if pipe is not None:
                pipe.kill()
            return exc, None
        except BaseException:
            if pipe is not None:
                pipe.kill()
            raise
        if pipe is not None:
            try:
                sink.close()
            except (OSError, ValueError):
                pass
            failed = pipe.finish()
            if failed or sink_error:
                apply_error = apply_error or ApplyError("%s: %s" % (name, failed or sink_error))
        if got != (art["size"], art["sha256"]):
            return self.mismatch(storage, art, got), None
        if apply_error is None:
            try:
                if name == FILES_ARTIFACT:
                    self.finish_release(staged["release"])
                elif name == UPLOADS_ARTIFACT:
                    own_tree(staged["uploads"], t.uid, t.web_gid)
            except (ApplyError, OSError) as exc:
                apply_error = exc
        return None, apply_error

    def stage(self, storage, recorded, label, tmp, checks=(), only=None):
        """Verifies the backup and prepares all of it beside the live environment, one read per
        artifact, the artifacts side by side. Any verification failure (first in manifest order)
        discards everything prepared and is raised: nothing live was touched. A database that
        verified but could not be imported by the scratch account (a dump with DEFINERs of
        triggers, views or routines needs root) is fetched and verified again as a file and
        imported as root at the switch, as before streaming. The stored manifest (and `checks`:
        (function, args...) tuples, the rollback backup's manifest) are checked beside
        the reads; their failures come first. `only`: the artifact names to stage (default all; the
        stored manifest is checked whole either way). The staged parts (a dict)."""
        self.check_recorded(recorded, label)
        self.clear_leftovers()
        staged = {"name": self.next_release_name(), "release": None, "uploads": None, "database": None,
                  "dump": None}
        arts = [a for a in recorded["artifacts"] if only is None or a["name"] in only]
        short = {DB_ARTIFACT: "database", FILES_ARTIFACT: "release", UPLOADS_ARTIFACT: "uploads"}
        try:
            checks = [(self.check_stored_manifest, storage, recorded, label)] + list(checks)
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(arts) + len(checks)) as pool:
                checked = [pool.submit(self.timer.run, "%s_check_%d" % (label, i), *c) for i, c in enumerate(checks)]
                futures = [(a, pool.submit(self.timer.run, "%s_%s" % (label, short[a["name"]]),
                                           self.stage_one, storage, a, staged, tmp)) for a in arts]
                concurrent.futures.wait(checked + [f for _, f in futures])
            for f in checked:
                f.result()  # the stored manifest (then the rollback's) first
            results = [(a, f.result()) for a, f in futures]
            for _, (verify_error, _) in results:
                if verify_error is not None:
                    raise verify_error
            for art, (_, apply_error) in results:
                if apply_error is None:
                    continue
                if art["name"] != DB_ARTIFACT:
                    raise ApplyError("%s: %s" % (art["name"], apply_error))
                self.drop_scratch()
                staged["database"] = None
                staged["dump"] = self.timer.run(label + "_database_fetch", self.fetch_one, storage, art,
                                                os.path.join(tmp, label))
            return staged
        except BaseException:
            self.discard(staged)
            raise

    def check_fits(self, manifest, label):
        t = self.t
        if manifest.get("site_id") != t.site_id:
            raise Known("RESTORE_FAILED", "the %s backup belongs to site %s, not to %s: restores never cross sites"
                        % (label, manifest.get("site_id"), t.site_id))
        names = [a["name"] for a in manifest["artifacts"]]
        if DB_ARTIFACT in names and manifest.get("table_prefix") and manifest["table_prefix"] != t.table_prefix():
            raise Known("RESTORE_FAILED", "the %s backup's table prefix %s differs from the environment's %s"
                        % (label, manifest["table_prefix"], t.table_prefix()))

    # --------------------------------------------------------------------------------- apply
    def next_release_name(self):
        name = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        existing = [r for r in self.t.releases() if RELEASE_RE.match(r)]
        if existing and name <= existing[-1]:
            last = datetime.strptime(existing[-1], "%Y%m%d%H%M%S")
            name = (last + timedelta(seconds=1)).strftime("%Y%m%d%H%M%S")
        return name

    def run_as_user(self, argv, what):
        t = self.t
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, cwd="/",
                              check=False, **as_user(t.uid, t.gid))
        if proc.returncode != 0:
            raise ApplyError("%s failed: %s" % (what, proc.stderr.decode("utf-8", "replace").strip()[-600:]))

    def extractor(self, dest, extra=()):
        """zstd -d (root) | tar -x as the environment's user into dest, fed through the first
        step's stdin (a Pipeline)."""
        t = self.t
        return Pipeline([
            {"argv": ["zstd", "-q", "-d", "-c"]},
            {"argv": ["tar", "--extract", "--file=-", "--directory=" + dest, "--no-same-owner",
                      "--no-same-permissions", "--no-overwrite-dir"] + list(extra),
             "user": (t.uid, t.gid)},
        ], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def make_dir(self, path):
        os.mkdir(path, 0o700)
        os.chown(path, self.t.uid, self.t.web_gid)
        os.chmod(path, 0o2750)

    def core_source(self):
        """(release to take WordPress core from, dereference links): the current release, else
        wordpress_source_dir."""
        src = self.t.current_release()
        if src is not None:
            return src, False
        src = self.p["wordpress_source_dir"]
        if not os.path.isfile(os.path.join(src, "wp-load.php")):
            raise ApplyError("no current release and no WordPress in %s" % src)
        return src, True

    def prepare_release(self, tmp):
        """releases/.tmp-<name> with the WordPress core of the current release (the files archive
        is extracted into it next)."""
        src, deref = self.core_source()
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)
        self.make_dir(tmp)
        core = sorted(os.path.join(src, e) for e in os.listdir(src) if is_core(e))
        if core:
            self.place_core(src, core, tmp, deref)

    def finish_release(self, tmp):
        """After the files archive: shared wp-config.php and uploads linked in, Pressluft's
        mu-plugin and drop-in, owners and modes."""
        t = self.t
        src, deref = self.core_source()
        content = os.path.join(tmp, "wp-content")
        if not os.path.isdir(content) or os.path.islink(content):
            raise ApplyError("the files archive holds no wp-content directory")
        for path, target in ((os.path.join(tmp, "wp-config.php"), "../../shared/wp-config.php"),
                             (os.path.join(content, "uploads"), "../../../shared/uploads")):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
            os.symlink(target, path)
        mu = os.path.join(content, "mu-plugins")
        if os.path.lexists(mu) and not os.path.isdir(mu):
            os.unlink(mu)
        if not os.path.exists(mu):
            os.mkdir(mu, 0o750)
        plugin = self.p["login_plugin_src"]
        if os.path.isfile(plugin):
            dst = os.path.join(mu, "pressluft-login.php")
            if os.path.lexists(dst):
                os.unlink(dst)
            shutil.copyfile(plugin, dst, follow_symlinks=True)
        self.converge_dropin(src if not deref else None, content)
        self.timer.run("release_own", own_tree, tmp, t.uid, t.web_gid)

    def core_linkable(self, src, core):
        """True when the current release's core (the paths in `core`) holds only directories and
        regular files owned uid:web_gid with mode 0640 on the releases' filesystem - exactly what
        own_tree gives a release, so own_tree leaves linked files alone (it would otherwise chown or
        chmod the shared inode, i.e. the old release's file too). A link anywhere: not linkable."""
        t = self.t
        dev = os.lstat(t.releases_dir).st_dev
        stack = list(core)
        while stack:
            path = stack.pop()
            st = os.lstat(path)
            if st.st_dev != dev:
                return False
            if stat.S_ISDIR(st.st_mode):
                stack.extend(os.path.join(path, e) for e in os.listdir(path))
            elif not (stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid) == (t.uid, t.web_gid)
                      and stat.S_IMODE(st.st_mode) == 0o640):
                return False
        return True

    def place_core(self, src, core, tmp, deref):
        """WordPress core into the new release. From the current release: hard links (`cp -R -P
        --link` as the environment's user, so the kernel's protected_hardlinks and the user's own
        rights bound what can be linked; new directories, shared file inodes) when core_linkable,
        else (and from wordpress_source_dir, or when linking fails) a copy as before.
        Why sharing inodes with the old release is safe here:
        - nothing this restore does writes into a linked file: the files archive holds no core
          (the producer leaves it out) and GNU tar replaces an existing file by unlinking it
          before extracting (its default without --overwrite), wp-config.php and uploads are
          replaced by links, the mu-plugin and the drop-in live in wp-content (never linked and
          written by unlink + copy), own_tree changes no linked inode (checked above);
        - old releases are inert: never served, pruned (the newest 3 kept); restores take core
          from `current` and roll back from the pre-restore backup, not from an old release;
          Pressluft's updates work on a copied release (spec: "Updates as a release").
        The one writer in place is WordPress itself run in `current` (a core update started by
        hand in wp-admin: WP_Filesystem_Direct::copy is PHP copy(), which truncates and rewrites
        the existing file): a file rewritten that way changes in the previous release too (which
        then holds a mix of both versions). That release is never served or reactivated by the
        restore path and is pruned; the live release is never affected by an old one, since old
        releases are not written. Timings: release_core_check + release_core_link when linked,
        release_core_copy when copied."""
        if not deref:
            try:
                if self.timer.run("release_core_check", self.core_linkable, src, core):
                    self.timer.run("release_core_link", self.run_as_user,
                                   ["cp", "-R", "-P", "--link", "-t", tmp, "--"] + core,
                                   "linking WordPress core from %s" % src)
                    return
            except (OSError, ApplyError):
                pass
            for path in core:  # a partial link tree: removed, then copied
                dst = os.path.join(tmp, os.path.basename(path))
                if os.path.isdir(dst) and not os.path.islink(dst):
                    shutil.rmtree(dst)
                elif os.path.lexists(dst):
                    os.unlink(dst)
        self.timer.run("release_core_copy", self.run_as_user,
                       ["cp", "-R", "-L" if deref else "-P", "--preserve=timestamps", "-t", tmp, "--"] + core,
                       "copying WordPress core from %s" % src)

    def converge_dropin(self, current, content):
        """Pressluft's object-cache drop-in follows the environment, not the backup (like
        pressluft_environment's redis_cache_enabled): placed when the current release has it,
        removed when only the backup brought it. A foreign object-cache.php comes from the backup."""
        def ours(path):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                return False
            with os.fdopen(fd, "rb") as fh:
                return stat.S_ISREG(os.fstat(fh.fileno()).st_mode) and DROPIN_MARKER in fh.read(65536)

        new = os.path.join(content, "object-cache.php")
        src = self.p["object_cache_src"]
        if current and ours(os.path.join(current, "wp-content", "object-cache.php")) and os.path.isfile(src):
            if os.path.lexists(new):
                os.unlink(new)
            shutil.copyfile(src, new, follow_symlinks=True)
        elif ours(new):
            os.unlink(new)

    def import_database(self, dump):
        t = self.t
        db = sql_str(t.db_name)
        out = mariadb("SELECT 'SCHEMA', SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s;\n"
                      "SELECT TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s;\n"
                      "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s;\n"
                      % (db, db, db), raw=True)
        lines = out.splitlines()
        if not lines or lines[0] != "SCHEMA\t" + t.db_name:
            raise ApplyError("database %s does not exist" % t.db_name)
        stmts = ["SET FOREIGN_KEY_CHECKS=0;"]
        for line in lines[1:]:
            kind, _, name = line.partition("\t")
            if not name:
                continue
            obj = "%s.%s" % (ident(t.db_name), ident(name))
            if kind == "VIEW":
                stmts.insert(1, "DROP VIEW IF EXISTS %s;" % obj)
            elif kind in ("PROCEDURE", "FUNCTION"):
                stmts.append("DROP %s IF EXISTS %s;" % (kind, obj))
            elif kind:
                stmts.append("DROP TABLE IF EXISTS %s;" % obj)
        mariadb("\n".join(stmts) + "\n")
        client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        pipe = Pipeline([
            {"argv": ["zstd", "-q", "-d", "-c", "--", dump]},
            {"argv": [client, "--protocol=socket", "--user=root", "--batch", "--default-character-set=utf8mb4",
                      t.db_name]},
        ], stdout=subprocess.DEVNULL)
        failed = pipe.finish()
        if failed:
            raise ApplyError("database import: %s" % failed)

    def swap_database(self, scratch):
        """The scratch database's tables take the live ones' places in one RENAME TABLE statement
        (atomic: the site sees the old or the new tables, never a mix); the live tables move into
        plro_<env> (dropped afterwards) - before that, the live views, triggers and routines are
        dropped (RENAME TABLE cannot move them; the old import dropped them too). The scratch
        database holds only tables (an import with views, triggers or routines takes the root path)."""
        t = self.t
        _, trash = self.scratch_names()
        live, sdb = sql_str(t.db_name), sql_str(scratch)
        out = mariadb("SELECT 'L', TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s;\n"
                      "SELECT 'L', 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s;\n"
                      "SELECT 'L', ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s;\n"
                      "SELECT 'S', TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s;\n"
                      "SELECT 'S', 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s;\n"
                      "SELECT 'S', ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s;\n"
                      % (live, live, live, sdb, sdb, sdb), raw=True)
        drops, renames = ["SET FOREIGN_KEY_CHECKS=0;"], []
        for line in out.splitlines():
            side, kind, name = (line.split("\t", 2) + ["", ""])[:3]
            if not name:
                continue
            if side == "S":
                if kind != "BASE TABLE":
                    raise ApplyError("the scratch database holds a %s (%s)" % (kind.lower(), name))
                renames.append("%s.%s TO %s.%s" % (ident(scratch), ident(name), ident(t.db_name), ident(name)))
                continue
            obj = "%s.%s" % (ident(t.db_name), ident(name))
            if kind == "VIEW":
                drops.append("DROP VIEW IF EXISTS %s;" % obj)
            elif kind == "TRIGGER":
                drops.append("DROP TRIGGER IF EXISTS %s;" % obj)
            elif kind in ("PROCEDURE", "FUNCTION"):
                drops.append("DROP %s IF EXISTS %s;" % (kind, obj))
            elif kind:
                renames.insert(0, "%s TO %s.%s" % (obj, ident(trash), ident(name)))
        stmts = drops + ["DROP DATABASE IF EXISTS %s;" % ident(trash), "CREATE DATABASE %s;" % ident(trash)]
        if renames:
            stmts.append("RENAME TABLE %s;" % ", ".join(renames))
        stmts.append("DROP USER IF EXISTS %s@'localhost';" % sdb)
        mariadb("\n".join(stmts) + "\n")
        # the old tables and the emptied scratch database: dropped after the run (dispose_garbage)
        self.garbage["sql"].append("DROP DATABASE IF EXISTS %s; DROP DATABASE IF EXISTS %s;"
                                   % (ident(trash), ident(scratch)))

    def cleanup_lock(self):
        os.makedirs(RESTORE_TMP, mode=0o700, exist_ok=True)
        return os.open(os.path.join(RESTORE_TMP, "cleanup-%s.lock" % self.t.env_id),
                       os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)

    def dispose_garbage(self):
        """What a switch replaced (the old tables in plro_<env>, the emptied scratch database, the
        old uploads directory) is deleted by a detached process after the run: the restore is
        complete once the site serves the restored data, and dropping ~the site's size again
        would compete with its health check. The process holds the environment's cleanup lock
        until it is done; the next restore's clear_leftovers() waits for it, and removes what it
        did not get to (a crash, a reboot)."""
        sql, paths = " ".join(self.garbage["sql"]), list(self.garbage["paths"])
        self.garbage = {"sql": [], "paths": []}
        if not sql and not paths:
            return
        client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        fd = self.cleanup_lock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            subprocess.Popen(["sh", "-c", '[ -z "$2" ] || "$1" --protocol=socket --user=root --batch -e "$2"; '
                              'shift 2; [ "$#" -eq 0 ] || rm -rf -- "$@"', "pressluft-restore-cleanup",
                              client, sql] + paths,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             cwd="/", start_new_session=True, pass_fds=(fd,))
        finally:
            os.close(fd)  # the child's copy keeps the lock until it exits

    def wait_cleanup(self):
        """Waits for the detached cleanup of an earlier run of this environment (dispose_garbage)."""
        fd = self.cleanup_lock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)

    def swap_uploads(self, new):
        t = self.t
        if os.path.lexists(t.uploads):
            if exchange(new, t.uploads):
                old = new
            else:
                old = os.path.join(t.shared, ".uploads-old-" + os.path.basename(new).split("-")[-1])
                os.rename(t.uploads, old)
                os.rename(new, t.uploads)
            # the old uploads (now at `old`, beside the live ones): removed after the run
            self.garbage["paths"].append(old)
        else:
            os.rename(new, t.uploads)

    def activate(self, tmp, name):
        t = self.t
        final = os.path.join(t.releases_dir, name)
        os.rename(tmp, final)
        link = os.path.join(t.root, "current")
        tmp_link = link + ".pressluft-tmp"
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink("releases/" + name, tmp_link)
        os.replace(tmp_link, link)

    def prune_releases(self, label):
        """Old releases (all but the newest KEEP_RELEASES and `current`'s target) are moved into a
        root-only directory under RESTORE_TMP (a rename: they leave releases/ at once, so the
        listing never shows a half-deleted release) and deleted there by a detached `rm`, which
        the run does not wait for: its result does not depend on it. `current`'s target is never
        moved. Another filesystem (rename impossible): deleted here, synchronously. Leftovers of
        an interrupted deletion are removed by a later restore (RESTORE_TMP entries > 6 h)."""
        t = self.t
        current = t.current_release()
        current = os.path.basename(current) if current else None
        names = t.releases()
        keep = set(names[-KEEP_RELEASES:]) | ({current} if current else set())
        removed, doomed = [], []
        for name in names:
            if name in keep:
                continue
            path = os.path.join(t.releases_dir, name)
            trash = os.path.join(RESTORE_TMP, "prune-%s-%s-%s" % (self.restore_id, t.env_id, name))
            try:
                os.rename(path, trash)
                os.utime(trash)  # the > 6 h sweep counts from now
                doomed.append(trash)
            except OSError:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
        if doomed:
            argv = ["rm", "-rf", "--one-file-system", "--"] + doomed
            if shutil.which("ionice"):
                argv = ["ionice", "-c", "3"] + argv
            try:
                subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, cwd="/", close_fds=True, start_new_session=True)
            except OSError:
                for trash in doomed:
                    shutil.rmtree(trash, ignore_errors=True)
        if removed:
            self.changes.append("%s: removed old releases %s" % (label, ", ".join(removed)))
        return removed

    def imported_home(self):
        t = self.t
        table = "%s.%s" % (ident(t.db_name), ident(t.table_prefix() + "options"))
        try:
            out = mariadb("SELECT option_value FROM %s WHERE option_name='home';\n" % table, raw=True)
        except ApplyError:
            return None
        return out.strip().rstrip("/") or None

    def rewrite_urls(self, old, lean=False):
        """The helper's serialized-safe search-replace old -> site_url; `lean`: the tables only,
        without loading WordPress (the caller empties the caches afterwards)."""
        t = self.t
        args = ["search-replace", "--old=" + old, "--new=" + self.site_url]
        try:
            if lean:
                proc = run_lean_helper(t.user, t.php_cli(), self.p["helper"], "%s/current" % t.root,
                                       args + ["--lean"], 1800)
            else:
                proc = subprocess.run(helper_user_argv(t.user)
                                      + [t.php_cli(), self.p["helper"], "--path=%s/current" % t.root] + args,
                                      stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/",
                                      timeout=1800, check=False)
        except subprocess.TimeoutExpired:
            raise ApplyError("URL rewrite timed out")
        result = last_json_line(proc.stdout)
        if not isinstance(result, dict) or result.get("ok") is not True or proc.returncode != 0:
            detail = (result or {}).get("error") if isinstance(result, dict) else None
            raise ApplyError("URL rewrite %s -> %s failed: %s" % (
                old, self.site_url, detail or (proc.stderr or proc.stdout).strip()[-400:] or "rc=%d" % proc.returncode))
        return {"old": old, "new": self.site_url, "rows_changed": result.get("rows_changed"),
                "replacements": result.get("replacements")}

    def purge_caches(self):
        t = self.t
        out = {"redis_keys": 0, "page_cache_files": 0, "php_fpm": None}
        cli = shutil.which("redis-cli")
        if cli:
            base = [cli, "-h", "127.0.0.1", "-p", "6379", "-n", "0"]
            proc = subprocess.run(base + ["--scan", "--pattern", t.redis_prefix + "*"], capture_output=True,
                                  text=True, check=False, stdin=subprocess.DEVNULL)
            if proc.returncode == 0:
                keys = [k for k in proc.stdout.splitlines() if k.startswith(t.redis_prefix)]
                for i in range(0, len(keys), 500):
                    subprocess.run(base + ["UNLINK"] + keys[i:i + 500], capture_output=True, check=False,
                                   stdin=subprocess.DEVNULL)
                out["redis_keys"] = len(keys)
        if os.path.isdir(t.cache_dir) and not os.path.islink(t.cache_dir):
            for root, _, files in os.walk(t.cache_dir):
                for name in files:
                    try:
                        os.unlink(os.path.join(root, name))
                        out["page_cache_files"] += 1
                    except OSError:
                        pass
        ver = t.php_version()
        if ver:
            pid = master_pid("/run/php/php%s-fpm.pid" % ver, b"php-fpm: master process")
            if pid:
                # No reload: nginx passes $realpath_root, so requests after the switch run the new
                # release's files under their own paths (fresh OPcache and realpath entries), and
                # the shared wp-config.php is not restored. A reload would restart the node's
                # PHP-FPM master and empty the OPcache of every site on the node.
                out["php_fpm"] = "running"
            else:
                subprocess.run(["service", "php%s-fpm" % ver, "start"], capture_output=True, check=False,
                               stdin=subprocess.DEVNULL)
                out["php_fpm"] = "started"
            deadline = time.monotonic() + 5
            while not os.path.exists(t.fpm_socket) and time.monotonic() < deadline:
                time.sleep(0.05)
        return out

    def switch(self, staged, label):
        """Swaps what stage() prepared in: the database (scratch tables renamed in, or the verified
        dump imported as root), the uploads directory, then `current`. The new release's name
        (None without files). From the first step on, the environment counts as changed."""
        t = self.t
        timer = self.timer
        release = None
        try:
            if staged["database"] or staged["dump"]:
                self.touched = True
                if staged["database"]:
                    timer.run(label + "_switch_database", self.swap_database, staged["database"])
                    staged["database"] = None
                    self.changes.append("%s: database %s replaced (imported into a scratch database while "
                                        "verified, renamed in)" % (label, t.db_name))
                else:
                    timer.run(label + "_database_import", self.import_database, staged["dump"])
                    self.changes.append("%s: database %s replaced (verified, then imported as root)"
                                        % (label, t.db_name))
            if staged["uploads"]:
                self.touched = True
                timer.run(label + "_switch", self.swap_uploads, staged["uploads"])
                staged["uploads"] = None
                self.changes.append("%s: uploads replaced" % label)
            if staged["release"]:
                self.touched = True
                timer.run(label + "_switch", self.activate, staged["release"], staged["name"])
                staged["release"] = None
                release = staged["name"]
                self.changes.append("%s: current -> releases/%s" % (label, release))
        except OSError as exc:
            raise ApplyError("%s: %s" % (exc.filename or "", exc.strerror or exc))
        except DumpError as exc:
            raise ApplyError(str(exc))
        finally:
            self.discard(staged)
        return release

    def apply(self, manifest, staged, label):
        """Switches the staged backup in, rewrites URLs, prunes releases, purges caches; the new
        release's name (None for db)."""
        t = self.t
        timer = self.timer
        has_db = bool(staged["database"] or staged["dump"])
        release = self.switch(staged, label)
        if has_db:
            self.rewrite_restored_urls(manifest, label)
        timer.run(label + "_prune", self.prune_releases, label)
        self.facts["cache_purge"] = timer.run(label + "_caches", self.purge_caches)
        return release

    def rewrite_restored_urls(self, manifest, label):
        """After a database switch: the backup's site_url rewritten to the environment's."""
        timer = self.timer
        old = (manifest.get("site_url") or "").rstrip("/")
        if old and old != self.site_url:
            self.facts["url_rewrite"] = timer.run(label + "_url_rewrite", self.rewrite_urls, old)
        # the imported `home` when it is yet another URL (a backup whose recorded site_url was
        # not WordPress' home): rewritten too, so no link points to a foreign host
        home = self.imported_home()
        if home and home not in (old, self.site_url) and urlsplit(home).scheme in ("http", "https"):
            self.facts["url_rewrite_home"] = timer.run(label + "_url_rewrite", self.rewrite_urls, home)

    # --------------------------------------------------------------------------------- health
    def health(self):
        t = self.t
        p = self.p
        php = t.php_cli()
        current = os.path.join(t.root, "current")
        timeout = p["health_timeout"]

        # Certificates are not verified (as pressluft_environment's health check: test CAs). A
        # 200 with WordPress content proves the database reachable and WordPress installed (an
        # unreachable database answers 500, an uninstalled one redirects to the installer): the
        # PHP CLI checks only run to name the cause when the HTTP check fails (they would compete
        # for the CPU with the first, cold request of the restored release).
        checks = wordpress_checks(self.site_url, "127.0.0.1", timeout, False, p["health_retries"],
                                  lambda command: run_helper(t.user, php, p["helper"], current, command, timeout),
                                  cli_on_http_failure=True)
        healthy = all(c["ok"] for c in checks.values())
        self.facts.update({"healthy": healthy, "health_url": self.site_url, "health_checks": checks,
                           "health_checked_at": now_iso()})
        return healthy, ", ".join("%s: %s" % (k, v["detail"]) for k, v in checks.items() if not v["ok"])

    # --------------------------------------------------------------------------------- run
    def restore(self):
        t = self.t
        t.require_present()
        manifest = self.p["backup_manifest"]
        os.makedirs(RESTORE_TMP, mode=0o700, exist_ok=True)
        os.chmod(RESTORE_TMP, 0o700)
        for stale in glob.glob(os.path.join(RESTORE_TMP, "*")):
            try:
                if time.time() - os.lstat(stale).st_mtime > 6 * 3600:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass
        tmp = tempfile.mkdtemp(prefix="restore-%s-" % self.restore_id, dir=RESTORE_TMP)
        try:
            if valid_artifacts(manifest):
                self.check_fits(manifest, "restore")
            if self.rollback is not None and valid_artifacts(self.p["rollback_manifest"]):
                self.check_fits(self.p["rollback_manifest"], "rollback")
            try:
                checks = []
                if self.rollback is not None:
                    checks.append((self.check_manifest, self.rollback, self.p["rollback_manifest"], "rollback"))
                if self.m.check_mode:
                    for c in checks:
                        c[0](*c[1:])
                    self.timer.run("verify", self.verify_only, self.storage, manifest, "backup")
                    staged = None
                else:
                    staged = self.timer.run("stage", self.stage, self.storage, manifest, "restore", tmp, checks)
            except StorageError as exc:
                raise Known("RESTORE_STORAGE_UNREADABLE", str(exc))
            except VerifyError as exc:
                raise Known("RESTORE_CHECKSUM_MISMATCH", str(exc))
            except ApplyError as exc:
                raise Known("RESTORE_FAILED", "preparing the restore failed (nothing was changed): %s" % exc)
            except OSError as exc:
                raise Known("RESTORE_STORAGE_UNREADABLE", "%s: %s" % (exc.filename, exc.strerror))
            self.facts["restore_verified"] = True
            self.facts["backup_scope"] = manifest.get("scope")
            if staged is None:
                return
            error = None
            try:
                self.facts["restored_release"] = self.apply(manifest, staged, "restore")
                healthy, detail = self.timer.run("health", self.health)
                if not healthy:
                    error = "unhealthy after the restore (%s)" % detail
            except ApplyError as exc:
                healthy = False
                error = "the restore failed: %s" % exc
                self.facts["healthy"] = False
            self.facts["restore_healthy"] = healthy
            if healthy:
                return
            if self.rollback is None:
                raise Known("RESTORE_FAILED", error)
            shutil.rmtree(os.path.join(tmp, "restore"), ignore_errors=True)  # disk space for the rollback
            rollback_manifest = self.p["rollback_manifest"]
            try:
                rstaged = self.timer.run("rollback_stage", self.stage, self.rollback, rollback_manifest,
                                         "rollback", tmp)
                self.facts["rollback_release"] = self.apply(rollback_manifest, rstaged, "rollback")
            except (StorageError, VerifyError, ApplyError, OSError) as exc:
                raise Known("RESTORE_FAILED", "%s; the rollback to the pre-restore backup failed: %s" % (error, exc))
            self.facts["rolled_back"] = True
            healthy, detail = self.timer.run("rollback_health", self.health)
            self.facts["rollback_healthy"] = healthy
            raise Known("RESTORE_ROLLED_BACK", "%s; rolled back to the pre-restore backup, which is %s" % (
                error, "healthy" if healthy else "unhealthy too (%s)" % detail))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self.dispose_garbage()


def restore_database(params, label="rollback"):
    """Only the DATABASE of a backup, restored with the restore's own code (Restore.stage with
    only the dump, Restore.switch): manifest.json at the target checked against the recorded one,
    the dump read ONCE from the storage and hashed while the scratch account imports it (one that
    does not match its size and SHA-256 is refused before anything live changes), then the scratch
    tables renamed in (or the verified dump imported as root), the backup's site_url rewritten to
    the environment's, its Redis keys and page cache purged. Files, uploads and `current` are not
    touched. `params`: pressluft_backup's restore options (missing ones take ARGUMENT_SPEC's
    defaults). Returns the facts; raises Known (RESTORE_STORAGE_UNREADABLE,
    RESTORE_CHECKSUM_MISMATCH, RESTORE_FAILED) or Invalid."""
    class _Module:  # what Restore reads of an AnsibleModule
        check_mode = False

    m = _Module()
    m.params = {k: v.get("default") for k, v in ARGUMENT_SPEC.items()}
    m.params.update(params, action="restore")
    job = Restore(m)
    t = job.t
    t.require_present()
    manifest = job.p["backup_manifest"]
    if DB_ARTIFACT not in [a.get("name") for a in manifest.get("artifacts") or [] if isinstance(a, dict)]:
        raise Known("RESTORE_FAILED", "the backup holds no database")
    os.makedirs(RESTORE_TMP, mode=0o700, exist_ok=True)
    os.chmod(RESTORE_TMP, 0o700)
    tmp = tempfile.mkdtemp(prefix="restore-%s-" % job.restore_id, dir=RESTORE_TMP)
    try:
        if valid_artifacts(manifest):
            job.check_fits(manifest, label)
        try:
            staged = job.timer.run("stage", job.stage, job.storage, manifest, label, tmp, (), (DB_ARTIFACT,))
        except StorageError as exc:
            raise Known("RESTORE_STORAGE_UNREADABLE", str(exc))
        except VerifyError as exc:
            raise Known("RESTORE_CHECKSUM_MISMATCH", str(exc))
        except ApplyError as exc:
            raise Known("RESTORE_FAILED", "preparing the database restore failed (nothing was changed): %s" % exc)
        except OSError as exc:
            raise Known("RESTORE_STORAGE_UNREADABLE", "%s: %s" % (exc.filename, exc.strerror))
        job.facts["restore_verified"] = True
        try:
            job.switch(staged, label)
            job.rewrite_restored_urls(manifest, label)
        except ApplyError as exc:
            raise Known("RESTORE_FAILED", "switching the database in failed: %s" % exc)
        job.facts["cache_purge"] = job.timer.run(label + "_caches", job.purge_caches)
        job.facts["database_restored"] = True
        return job.facts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        job.dispose_garbage()
        job.facts["restore_changes"] = job.changes
        job.facts["restore_timings_ms"] = job.timer.done()


ARGUMENT_SPEC = dict(
    action=dict(type="str", required=True, choices=["create", "delete", "restore"]),
    backup_id=dict(type="str"),
    restore_id=dict(type="str"),
    site_id=dict(type="str"),
    environment_id=dict(type="str"),
    environment_root=dict(type="str"),
    sites_root=dict(type="str", default="/var/www/sites"),
    db_name=dict(type="str"),
    php_version=dict(type="str"),
    table_prefix=dict(type="str"),
    redis_prefix=dict(type="str"),
    site_url=dict(type="str"),
    preview_url=dict(type="str"),
    backup_scope=dict(type="str", choices=["full", "db", "files"], default="full"),
    storage_type=dict(type="str", choices=["local", "s3"]),
    storage_path=dict(type="str"),
    s3_endpoint=dict(type="str"),
    s3_bucket=dict(type="str"),
    s3_region=dict(type="str", default="us-east-1"),
    s3_access_key_id=dict(type="str", no_log=True),
    s3_secret_access_key=dict(type="str", no_log=True),
    s3_path_style=dict(type="bool", default=True),
    backup_manifest=dict(type="dict"),
    rollback_storage_path=dict(type="str"),
    rollback_manifest=dict(type="dict"),
    wordpress_source_dir=dict(type="str", default="/usr/share/wordpress"),
    login_plugin_src=dict(type="str", default="/usr/local/lib/pressluft/pressluft-login.php"),
    object_cache_src=dict(type="str", default="/usr/local/lib/pressluft/pressluft-object-cache.php"),
    helper=dict(type="str", default="/usr/local/lib/pressluft/pressluft-helper.php"),
    health_timeout=dict(type="float", default=10.0),
    health_retries=dict(type="int", default=1),
)
