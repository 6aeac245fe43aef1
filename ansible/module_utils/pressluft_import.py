"""Import of an existing WordPress site from an archive into one Pressluft environment (issue 12):
download (hashed and counted while it is written), every tar member checked before anything is
extracted, the dump imported into a scratch database and the files extracted beside the live
release, the tables renamed to the environment's prefix, then the restore's switch
(pressluft_backup_lib.Restore: one RENAME TABLE, uploads exchanged, `current` repointed), the
serialized-safe URL rewrite, Pressluft's administrator, caches, health check, and on failure the
rollback to the pre-import backup (the restore's rollback code).

Archive formats (.tar.gz / .tgz / .tar, optionally all under one top-level directory):
  A. db.sql or db.sql.gz + files/ (the wp-content contents) + optional meta.json
     ({"source_url": "https://example.com", "table_prefix": "wp_"});
  B. one *.sql or *.sql.gz + a wp-content/ directory (what operators usually have).
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
import zlib
from urllib.parse import unquote, urlsplit

from ansible.module_utils.pressluft_backup_lib import (
    ARGUMENT_SPEC as BACKUP_ARGUMENT_SPEC, RESTORE_TMP, UUID_RE, ApplyError, Invalid, Known,
    Restore, StorageError, Target, Timer, VerifyError, ident, make_storage, mariadb, own_tree, sql_str)
from ansible.module_utils.pressluft_checks import last_json_line

CHUNK = 1024 * 1024
META_LIMIT = 64 * 1024
DEFAULT_MAX_BYTES = 20 * 1024 ** 3
DEFAULT_IMPORT_DIR = "/var/lib/pressluft/imports"
PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
CREATE_RE = re.compile(rb"CREATE TABLE (?:IF NOT EXISTS )?`([^`]{1,64})`")
# wp-content parts never imported: caches and upgrade leftovers of the source
CONTENT_SKIP = ("cache", "upgrade", "upgrade-temp-backup")
WP_CORE_TABLES = ("options", "posts", "users")


def redact_url(url):
    """The URL without user:password (never in facts or messages)."""
    try:
        u = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if u.query:
        u = u._replace(query="****")
    if u.username is None and u.password is None:
        return u.geturl()
    host = u.hostname or ""
    if u.port:
        host += ":%d" % u.port
    return u._replace(netloc="****@" + host).geturl()


class ArchiveError(Exception):
    """A known, permanent problem of the archive: (code, message)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ download --------------------
def local_path(p, url):
    """The file a file:// URL names, which must lie under p["import_dir"] (root-only)."""
    root = os.path.realpath(p["import_dir"])
    path = os.path.realpath(unquote(urlsplit(url).path))
    if not path.startswith(root + os.sep):
        raise ArchiveError("IMPORT_INVALID_ARCHIVE",
                           "file:// archives must be under the import directory %s" % root)
    return path


def download(p, dest, url=None, sha256=None, limit=None, what="the archive"):
    """Writes the file at `url` (default p["archive_url"]) to dest (0600, root), hashing and
    counting the bytes as they arrive. Returns (size, sha256). http(s) from anywhere; file:// only
    for a path under p["import_dir"] (tests, uploads streamed to the node). `limit` defaults to
    p["import_max_bytes"]; `sha256` (default p["archive_sha256"]) is checked when set. With dest
    None the bytes are only hashed and counted (a file:// source is then read where it lies)."""
    if url is None:
        url = p["archive_url"]
        sha256 = p.get("archive_sha256")
    if limit is None:
        limit = p["import_max_bytes"]
    u = urlsplit(url)
    if u.scheme == "file":
        path = local_path(p, url)
        try:
            src = open(path, "rb")
        except OSError as exc:
            raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "%s: %s" % (path, exc.strerror))
        declared = os.fstat(src.fileno()).st_size
    elif u.scheme in ("http", "https"):
        req = urllib.request.Request(url, headers={"User-Agent": "pressluft-import"})
        if u.username is not None:
            # credentials in the URL: HTTP basic auth, never logged
            import base64
            token = base64.b64encode(("%s:%s" % (unquote(u.username or ""), unquote(u.password or "")))
                                     .encode()).decode()
            host = u.hostname + (":%d" % u.port if u.port else "")
            req = urllib.request.Request(u._replace(netloc=host).geturl(),
                                         headers={"User-Agent": "pressluft-import", "Authorization": "Basic " + token})
        try:
            src = urllib.request.urlopen(req, timeout=p["download_timeout"])
        except urllib.error.HTTPError as exc:
            raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "%s answered HTTP %d" % (redact_url(url), exc.code))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "%s: %s" % (redact_url(url), getattr(exc, "reason", exc)))
        try:
            declared = int(src.headers.get("Content-Length") or -1)
        except ValueError:
            declared = -1
    else:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "unsupported URL scheme %r" % u.scheme)
    h = hashlib.sha256()
    size = 0
    try:
        if declared > limit:
            raise ArchiveError("IMPORT_TOO_LARGE", "%s has %d bytes, more than the limit of %d"
                               % (what, declared, limit))
        if dest is None:
            out_cm = open(os.devnull, "wb")
        else:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            out_cm = os.fdopen(fd, "wb")
        with out_cm as out:
            while True:
                try:
                    chunk = src.read(CHUNK)
                except (OSError, ValueError) as exc:
                    raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "reading %s: %s" % (redact_url(url), exc))
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise ArchiveError("IMPORT_TOO_LARGE", "%s is larger than the limit of %d bytes" % (what, limit))
                h.update(chunk)
                out.write(chunk)
    finally:
        src.close()
    if declared >= 0 and size != declared:
        raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "the download of %s ended after %d of %d bytes"
                           % (what, size, declared))
    digest = h.hexdigest()
    want = (sha256 or "").strip().lower()
    if want and want != digest:
        raise ArchiveError("IMPORT_CHECKSUM_MISMATCH", "the SHA-256 of %s is %s, expected %s" % (what, digest, want))
    return size, digest


# ------------------------------------------------------------------ inspection ------------------
def norm(name):
    """A member name without leading ./ and trailing /; ArchiveError for absolute paths and ..."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "absolute path in the archive: %r" % name)
    parts = [x for x in name.split("/") if x not in ("", ".")]
    if ".." in parts or "\\" in name and ".." in name.split("\\"):
        raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "path traversal in the archive: %r" % name)
    return "/".join(parts)


def open_tar(path):
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "not a tar archive (.tar, .tar.gz, .tgz): %s"
                           % str(exc).splitlines()[0].rstrip(":"))


class Layout:
    """What the source holds, found by inspect() (one archive) or inspect_parts() (a dump file and
    a wp-content tarball: the formats operators have, and what an adoption pulls over SSH)."""

    def __init__(self):
        self.base = ""          # the common top-level directory ("" when none)
        self.dump = None        # member (as stored) of content_tar holding the dump, or
        self.dump_path = None   # a local file holding the dump (plain or gzip)
        self.dump_gz = False
        self.content_tar = None  # the tar holding the wp-content directory
        self.content = None     # normalized path in content_tar of the wp-content directory ("" = its root)
        self.meta = {}
        self.tables = []        # CREATE TABLE names in the dump
        self.members = 0
        self.home = {}
        self.downloads = []     # files fetched for this import: removed once staged (disk space)

    @contextlib.contextmanager
    def open_dump(self):
        """The dump's bytes (decompressed when gzip), a file object."""
        if self.dump_path is not None:
            with open(self.dump_path, "rb") as raw:
                yield gzip.GzipFile(fileobj=raw, mode="rb") if self.dump_gz else raw
        else:
            with open_tar(self.content_tar) as tar:
                yield dump_stream(tar, self)

    def content_base(self):
        """The prefix of member names inside the wp-content directory."""
        return self.content + "/" if self.content else ""


def check_members(tar):
    """Every member of the tar, checked before anything is extracted: no absolute paths, no `..`,
    no links pointing outside the archive (or members reached through a link), no devices or fifos;
    a truncated or corrupt stream is IMPORT_INVALID_ARCHIVE. Returns ({name: member}, {symlinks})."""
    members = []
    try:
        for m in tar:
            members.append(m)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive is truncated or corrupt: %s" % exc)
    if not members:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive is empty")
    names = {}
    links = set()
    for m in members:
        n = norm(m.name)
        if m.isdev() or m.isfifo() or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "device, fifo or unknown entry in the archive: %r" % m.name)
        if m.issym():
            if m.linkname.startswith("/"):
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r points to an absolute path" % m.name)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(n), m.linkname))
            if target == ".." or target.startswith("../"):
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r points outside the archive" % m.name)
            links.add(n)
        elif m.islnk():
            target = norm(m.linkname)
            if target not in names:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "hard link %r to %r, which is not an earlier member"
                                   % (m.name, m.linkname))
        names[n] = m
    for n in names:
        parts = n.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "%r lies behind the symlink %r"
                                   % (n, "/".join(parts[:i])))
    return names, links


def check_content_links(lay, names, links):
    """Links that are extracted stay inside what they are extracted with: the content directory,
    and uploads/ (which moves to shared/uploads) inside uploads/."""
    base = lay.content_base()
    for n in links:
        if not n.startswith(base):
            continue
        target = posixpath.normpath(posixpath.join(posixpath.dirname(n), names[n].linkname))
        uploads = base + "uploads/"
        inside = uploads if n.startswith(uploads) else base
        if inside and not target.startswith(inside):
            raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r points outside %s" % (n, inside.rstrip("/")))


def inspect(path):
    """Reads the whole archive once and checks EVERY member before anything is extracted: no
    absolute paths, no `..`, no links pointing outside the archive (or members reached through a
    link), no devices or fifos; a truncated or corrupt stream is IMPORT_INVALID_ARCHIVE. Finds the
    dump, the wp-content directory and meta.json, and scans the dump's CREATE TABLE names."""
    lay = Layout()
    lay.content_tar = path
    with open_tar(path) as tar:
        names, links = check_members(tar)
        lay.members = len(names)
        # one common top-level directory: looked into
        tops = {n.split("/")[0] for n in names if n}
        if len(tops) == 1:
            top = next(iter(tops))
            if names.get(top) is None or names[top].isdir():
                if any("/" in n for n in names):
                    lay.base = top + "/"

        def rel(n):
            return n[len(lay.base):] if n.startswith(lay.base) else None

        top_files = {rel(n): m for n, m in names.items()
                     if rel(n) and "/" not in rel(n) and (m.isfile() or m.islnk())}
        dirs = {rel(n).split("/")[0] for n in names if rel(n) and "/" in rel(n)} | \
            {rel(n) for n, m in names.items() if rel(n) and "/" not in rel(n) and m.isdir()}
        for cand in ("db.sql.gz", "db.sql"):
            if cand in top_files:
                lay.dump = top_files[cand]
                break
        if lay.dump is None:
            dumps = sorted(k for k in top_files if k.endswith(".sql") or k.endswith(".sql.gz"))
            if len(dumps) > 1:
                raise ArchiveError("IMPORT_MISSING_DUMP", "more than one dump in the archive: %s" % ", ".join(dumps))
            if dumps:
                lay.dump = top_files[dumps[0]]
        if lay.dump is None:
            raise ArchiveError("IMPORT_MISSING_DUMP", "the archive holds no database dump (db.sql, db.sql.gz or one *.sql[.gz])")
        lay.dump_gz = lay.dump.name.endswith(".gz")
        for cand in ("files", "wp-content"):
            if cand in dirs:
                lay.content = lay.base + cand
                break
        if lay.content is None:
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive holds no files/ (or wp-content/) directory")
        check_content_links(lay, names, links)
        if "meta.json" in top_files:
            fh = tar.extractfile(top_files["meta.json"])
            data = fh.read(META_LIMIT + 1) if fh else b""
            if len(data) > META_LIMIT:
                raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json is larger than %d bytes" % META_LIMIT)
            try:
                meta = json.loads(data.decode("utf-8"))
            except ValueError:
                raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json is not valid JSON")
            if not isinstance(meta, dict):
                raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json must hold an object")
            lay.meta = meta
        lay.tables = scan_tables(dump_stream(tar, lay))
    return lay


# wp-content's usual top-level entries: a tarball of exactly one of these is the directory's
# contents, not wp-content under another name
CONTENT_ENTRIES = ("plugins", "themes", "uploads", "mu-plugins", "languages", "index.php")


def is_gzip(path):
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def inspect_parts(dump_path, content_path):
    """A dump (.sql or .sql.gz, detected by its bytes) and a wp-content tarball given separately:
    the tarball's members checked like an archive's (inspect()), wp-content found at its root or
    as its one top-level directory (`tar czf x.tgz wp-content` as well as `tar czf x.tgz -C
    wp-content .`), and the dump's CREATE TABLE names scanned."""
    lay = Layout()
    lay.dump_path = dump_path
    lay.dump_gz = is_gzip(dump_path)
    lay.content_tar = content_path
    with open_tar(content_path) as tar:
        names, links = check_members(tar)
    lay.members = len(names) + 1
    tops = {n.split("/")[0] for n in names if n}
    lay.content = ""
    if len(tops) == 1:
        top = next(iter(tops))
        if (names.get(top) is None or names[top].isdir()) and top not in CONTENT_ENTRIES \
                and any(n.startswith(top + "/") for n in names):
            lay.content = top
    check_content_links(lay, names, links)
    with lay.open_dump() as fh:
        lay.tables = scan_tables(fh)
    return lay


def dump_stream(tar, lay):
    """The dump's bytes (decompressed when .gz), a file object."""
    fh = tar.extractfile(lay.dump)
    if fh is None:
        raise ArchiveError("IMPORT_MISSING_DUMP", "the dump %r is not a file" % lay.dump.name)
    return gzip.GzipFile(fileobj=fh, mode="rb") if lay.dump_gz else fh


def feed_dump(fh, sink):
    """The dump's statements into the client's stdin, `CREATE DATABASE` and `USE` lines (a dump
    made with --databases) left out. Returns the write error when the client went away."""
    pending = b""
    for chunk in read_chunks(fh, "the dump"):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        lines, pending = data[:cut], data[cut:]
        if b"CREATE DATABASE" in lines or b"\nUSE `" in b"\n" + lines:
            lines = b"".join(line for line in lines.splitlines(True)
                             if not (line.startswith(b"CREATE DATABASE") or line.startswith(b"USE `")))
        try:
            sink.write(lines)
        except (BrokenPipeError, OSError) as exc:
            return exc
    if pending:
        try:
            sink.write(pending)
        except (BrokenPipeError, OSError) as exc:
            return exc
    return None


def read_chunks(fh, what):
    while True:
        try:
            chunk = fh.read(CHUNK)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "%s is truncated or corrupt: %s" % (what, exc))
        if not chunk:
            return
        yield chunk


def scan_tables(fh):
    """The names of the tables the dump creates (read once, in chunks; a truncated gzip fails)."""
    tables, tail = [], b""
    for chunk in read_chunks(fh, "the dump"):
        buf = tail + chunk
        for m in CREATE_RE.finditer(buf):
            name = m.group(1).decode("utf-8", "replace")
            if name not in tables:
                tables.append(name)
        tail = buf[-200:]
    return tables


def source_prefix(tables, declared):
    """The WordPress table prefix of the dump: the declared one (which must be the dump's), else
    the one prefix P with P+options, P+posts and P+users."""
    found = sorted(p for p in {t[:-len("options")] for t in tables if t.endswith("options")}
                   if all(p + x in tables for x in WP_CORE_TABLES))
    if not found:
        raise ArchiveError("IMPORT_MISSING_DUMP", "the dump creates no WordPress tables (<prefix>options, posts, users)")
    if declared:
        if declared not in found:
            raise ArchiveError("IMPORT_PREFIX_MISMATCH", "the dump's WordPress tables use the prefix %s, not the declared %s"
                               % (", ".join(found), declared))
        return declared
    if len(found) > 1:
        raise ArchiveError("IMPORT_PREFIX_MISMATCH", "the dump holds WordPress tables of several prefixes (%s): declare "
                           "table_prefix" % ", ".join(found))
    return found[0]


# ------------------------------------------------------------------ the import ------------------
class Import(Restore):
    """The restore's machinery with the archive as its source."""

    def __init__(self, module):  # pylint: disable=super-init-not-called
        self.m = module
        p = self.p = module.params
        if not UUID_RE.match(p.get("import_id") or ""):
            raise Invalid("import_id must be a UUID")
        self.import_id = p["import_id"].lower()
        self.restore_id = self.import_id  # names of tmp and prune directories
        if p.get("release_id") and not UUID_RE.match(p["release_id"]):
            raise Invalid("release_id must be a UUID")
        self.t = Target(p)
        self.site_url = (p.get("site_url") or p.get("preview_url") or "").rstrip("/")
        u = urlsplit(self.site_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise Invalid("site_url must be an http(s) URL")
        self.validate_source()
        if p.get("source_table_prefix") and not PREFIX_RE.match(p["source_table_prefix"]):
            raise Invalid("source_table_prefix must match %s" % PREFIX_RE.pattern)
        if p["import_max_bytes"] < 1:
            raise Invalid("import_max_bytes must be positive")
        self.rollback = None
        if p.get("rollback_storage_path"):
            if not isinstance(p.get("rollback_manifest"), dict) or not p.get("storage_type"):
                raise Invalid("rollback_manifest and storage_type are required with rollback_storage_path")
            self.rollback = make_storage(p["storage_type"], p["rollback_storage_path"], p)
        self.timer = Timer()
        self.changes = []
        self.touched = False
        self.garbage = {"sql": [], "paths": []}
        self.facts = {
            "import_id": self.import_id,
            "release_id": p.get("release_id"),
            "import_url": redact_url(p.get("archive_url") or p.get("database_url") or ""),
            "import_healthy": False,
            "imported_release": None,
            "import_changed": False,
            "rolled_back": False,
            "healthy": False,
        }

    # --------------------------------------------------------------------------------- source
    def validate_source(self):
        """The source parameters (called by __init__; a subclass with another source overrides
        this and fetch())."""
        p = self.p
        parts = bool(p.get("database_url") or p.get("content_url"))
        if p.get("archive_url") and parts:
            raise Invalid("give archive_url, or database_url and content_url, not both")
        if parts and not (p.get("database_url") and p.get("content_url")):
            raise Invalid("database_url and content_url go together")
        if not p.get("archive_url") and not parts:
            raise Invalid("archive_url (or database_url and content_url) is required")
        for key in ("archive_sha256", "database_sha256", "content_sha256"):
            if p.get(key) and not re.match(r"^[0-9a-fA-F]{64}$", p[key].strip()):
                raise Invalid("%s must be 64 hex digits" % key)

    def fetch(self, tmp):
        """The source, fetched into the run's private directory `tmp` and checked: a Layout.
        Either one archive (archive_url), or a dump (database_url) and a wp-content tarball
        (content_url), each hashed and checked against its SHA-256; import_max_bytes bounds the
        sum."""
        p = self.p
        downloads = []

        def get(name, url, sha256, limit, what):
            # a file:// source (an upload, a file staged by hand: root-only directory) is hashed
            # and read where it lies; anything else is downloaded into tmp first
            if urlsplit(url).scheme == "file":
                size, digest = self.timer.run("download", download, p, None, url, sha256, limit, what)
                return local_path(p, url), size, digest
            dest = os.path.join(tmp, name)
            size, digest = self.timer.run("download", download, p, dest, url, sha256, limit, what)
            downloads.append(dest)
            return dest, size, digest

        if p.get("archive_url"):
            archive, size, digest = get("archive", p["archive_url"], p.get("archive_sha256"),
                                        p["import_max_bytes"], "the archive")
            self.facts.update({"import_size_bytes": size, "import_sha256": digest})
            lay = self.timer.run("inspect", inspect, archive)
        else:
            dump, dsize, ddigest = get("database", p["database_url"], p.get("database_sha256"),
                                       p["import_max_bytes"], "the database dump")
            content, csize, cdigest = get("content", p["content_url"], p.get("content_sha256"),
                                          p["import_max_bytes"] - dsize, "the wp-content archive")
            self.facts.update({"import_size_bytes": dsize + csize, "import_database_sha256": ddigest,
                               "import_content_sha256": cdigest})
            lay = self.timer.run("inspect", inspect_parts, dump, content)
        lay.downloads += downloads
        return lay

    def remove_uploads(self):
        """Files uploaded through the API for this import (`upload-*` in the import directory)
        go once it succeeded: they are copies the operator still has."""
        root = os.path.realpath(self.p.get("import_dir") or DEFAULT_IMPORT_DIR)
        removed = 0
        for key in ("archive_url", "database_url", "content_url"):
            u = urlsplit(self.p.get(key) or "")
            if u.scheme != "file":
                continue
            path = os.path.realpath(unquote(u.path))
            if os.path.dirname(path) == root and os.path.basename(path).startswith("upload-"):
                try:
                    os.unlink(path)
                    removed += 1
                except OSError:
                    pass
        return removed

    # --------------------------------------------------------------------------------- stage
    def extract_content(self, tar, lay, release, uploads):
        """wp-content of the archive into release/wp-content, its uploads/ into `uploads`, as root
        into directories only this run knows (every member was checked by inspect(); links are
        created as links, never followed); owners and modes set afterwards by own_tree."""
        t = self.t
        content = os.path.join(release, "wp-content")
        os.mkdir(content, 0o750)
        base = lay.content_base()
        count = 0
        for m in tar:
            n = norm(m.name)
            if not n.startswith(base):
                continue
            rel = n[len(base):]
            first = rel.split("/")[0]
            if first in CONTENT_SKIP:
                continue
            if first == "uploads":
                rel = rel[len("uploads"):].lstrip("/")
                dest_root = uploads
            else:
                dest_root = content
            if not rel:
                continue
            dest = os.path.join(dest_root, rel)
            parent = os.path.dirname(dest)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o750)
            if m.isdir():
                if not os.path.isdir(dest):
                    os.mkdir(dest, 0o750)
                continue
            if os.path.lexists(dest) and not os.path.isdir(dest):
                os.unlink(dest)
            if m.issym():
                os.symlink(m.linkname, dest)
            else:
                src = tar.extractfile(m)
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
                with os.fdopen(fd, "wb") as out:
                    for chunk in read_chunks(src, m.name):
                        out.write(chunk)
            count += 1
        own_tree(uploads, t.uid, t.web_gid)
        return count

    def import_dump(self, lay, tmp):
        """The dump into the scratch database as the scratch account (it can change nothing else);
        `CREATE DATABASE` and `USE` statements (a dump made with --databases) are left out."""
        scratch, cnf = self.open_scratch(tmp)
        client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        errf = tempfile.TemporaryFile(dir=tmp)
        proc = subprocess.Popen([client, "--defaults-file=" + cnf, "--protocol=socket", "--batch",
                                 "--default-character-set=utf8mb4", "--max-allowed-packet=1G", scratch],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errf, cwd="/")
        broken = None
        try:
            with lay.open_dump() as fh:
                broken = feed_dump(fh, proc.stdin)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        try:
            proc.stdin.close()
        except OSError:
            pass
        rc = proc.wait()
        if rc != 0 or broken is not None:
            errf.seek(0)
            detail = errf.read().decode("utf-8", "replace").strip()[-600:]
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the dump could not be imported: %s" % (detail or broken or rc))
        return scratch

    def adopt_prefix(self, scratch, prefix, target):
        """The WordPress tables of the scratch database renamed from the archive's prefix to the
        environment's (its wp-config.php is not changed), with the two places WordPress stores the
        prefix in data: the <prefix>user_roles option and the <prefix>capabilities / user_level /
        … user meta keys. Another table already named like a renamed one: IMPORT_PREFIX_MISMATCH."""
        if prefix == target:
            return []
        out = mariadb("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s;\n" % sql_str(scratch),
                      raw=True)
        tables = [x for x in out.splitlines() if x]
        renames, renamed = [], []
        for name in tables:
            if name.startswith(prefix):
                new = target + name[len(prefix):]
                if new in tables and not new.startswith(prefix):
                    raise ArchiveError("IMPORT_PREFIX_MISMATCH", "the dump holds both %s and %s" % (name, new))
                if len(new) > 64:
                    raise ArchiveError("IMPORT_PREFIX_MISMATCH", "table %s cannot be renamed to %s" % (name, new))
                renames.append("%s.%s TO %s.%s" % (ident(scratch), ident(name), ident(scratch), ident(new)))
                renamed.append(new)
        stmts = []
        if renames:
            stmts.append("RENAME TABLE %s;" % ", ".join(renames))
        db = ident(scratch)
        like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
        stmts.append("UPDATE %s.%s SET option_name=%s WHERE option_name=%s;"
                     % (db, ident(target + "options"), sql_str(target + "user_roles"), sql_str(prefix + "user_roles")))
        stmts.append("UPDATE %s.%s SET meta_key=CONCAT(%s, SUBSTRING(meta_key, %d)) WHERE meta_key LIKE %s;"
                     % (db, ident(target + "usermeta"), sql_str(target), len(prefix) + 1, sql_str(like + "%")))
        try:
            mariadb("\n".join(stmts) + "\n")
        except ApplyError as exc:
            raise ArchiveError("IMPORT_PREFIX_MISMATCH", "renaming the tables from %s to %s failed: %s" % (prefix, target, exc))
        return renamed

    def scratch_home(self, scratch, prefix):
        try:
            out = mariadb("SELECT option_name, option_value FROM %s.%s WHERE option_name IN ('home','siteurl');\n"
                          % (ident(scratch), ident(prefix + "options")), raw=True)
        except ApplyError:
            return {}
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def stage_import(self, lay, tmp):
        """Everything beside the live environment; nothing live is touched. The staged parts."""
        t = self.t
        self.clear_leftovers()
        name = self.p.get("release_id") or self.next_release_name()
        staged = {"name": name, "release": None, "uploads": None, "database": None, "dump": None}
        try:
            staged["release"] = os.path.join(t.releases_dir, ".tmp-" + name)
            staged["uploads"] = os.path.join(t.shared, ".uploads-new-" + name.replace("-", ""))
            # the dump goes into the scratch database beside the files (the mariadb client parses
            # it in its own process; zlib and file writes release the GIL): the two take about as
            # long as the longer one, as a hand import in two terminals
            database = {}

            def load():
                try:
                    database["name"] = self.timer.run("database", self.import_dump, lay, tmp)
                except BaseException as exc:  # re-raised in the caller's thread
                    database["error"] = exc

            loader = threading.Thread(target=load, name="import-dump", daemon=True)
            loader.start()
            try:
                self.timer.run("release_core", self.prepare_release, staged["release"])
                self.make_dir(staged["uploads"])
                with open_tar(lay.content_tar) as tar:
                    self.facts["import_files"] = self.timer.run("files", self.extract_content, tar, lay,
                                                                staged["release"], staged["uploads"])
                self.timer.run("release_finish", self.finish_release, staged["release"])
            finally:
                loader.join()
                staged["database"] = database.get("name")
            if "error" in database:
                raise database["error"]
            target = t.table_prefix()
            self.facts["import_table_prefix"] = lay.prefix
            self.facts["import_tables_renamed"] = len(
                self.timer.run("prefix", self.adopt_prefix, staged["database"], lay.prefix, target))
            lay.home = self.scratch_home(staged["database"], target)
            return staged
        except BaseException:
            self.discard(staged)
            raise

    # --------------------------------------------------------------------------------- after
    def rewrite_from(self, sources):
        """The source URL(s) rewritten to the environment's URL, both schemes of each."""
        olds = []
        for src in sources:
            src = (src or "").rstrip("/")
            u = urlsplit(src)
            if u.scheme not in ("http", "https") or not u.hostname or any(c.isspace() for c in src):
                continue
            other = ("https" if u.scheme == "http" else "http") + src[len(u.scheme):]
            for old in (src, other):
                if old not in olds and old != self.site_url:
                    olds.append(old)
        if not olds:
            return []
        # one pass over the tables for all of them (the helper takes several, space-separated)
        return [self.timer.run("url_rewrite", self.rewrite_urls, " ".join(olds))]

    def ensure_admin(self):
        t = self.t
        p = self.p
        if not p.get("wp_admin_login"):
            return None
        env = dict(os.environ, PRESSLUFT_ADMIN_PASSWORD=p.get("wp_admin_password") or "")
        argv = ["runuser", "-u", t.user, "--", t.php_cli(), p["helper"], "--path=%s/current" % t.root,
                "ensure-admin", "--user=" + p["wp_admin_login"], "--email=" + (p.get("wp_admin_email") or "admin@localhost")]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/",
                              timeout=120, check=False, env=env)
        result = last_json_line(proc.stdout)
        if not isinstance(result, dict) or result.get("ok") is not True or proc.returncode != 0:
            detail = result.get("error") if isinstance(result, dict) else None
            raise ApplyError("making sure the administrator exists failed: %s" % (
                detail or (proc.stderr or proc.stdout).strip()[-400:] or "rc=%d" % proc.returncode))
        return {"user": p["wp_admin_login"], "created": bool(result.get("created"))}

    # --------------------------------------------------------------------------------- run
    def run(self):
        t = self.t
        t.require_present()
        os.makedirs(RESTORE_TMP, mode=0o700, exist_ok=True)
        os.chmod(RESTORE_TMP, 0o700)
        tmp = tempfile.mkdtemp(prefix="import-%s-" % self.import_id, dir=RESTORE_TMP)
        try:
            try:
                lay = self.fetch(tmp)
                self.facts["import_members"] = lay.members
                declared = self.p.get("source_table_prefix") or lay.meta.get("table_prefix") or None
                if declared is not None and (not isinstance(declared, str) or not PREFIX_RE.match(declared)):
                    raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json's table_prefix must match %s" % PREFIX_RE.pattern)
                lay.prefix = source_prefix(lay.tables, declared)
                if self.rollback is not None:
                    self.check_manifest(self.rollback, self.p["rollback_manifest"], "rollback")
                if self.m.check_mode:
                    return
                staged = self.timer.run("stage", self.stage_import, lay, tmp)
            except ArchiveError as exc:
                raise Known(exc.code, str(exc))
            except (StorageError, VerifyError) as exc:
                raise Known("IMPORT_FAILED", "the pre-import backup cannot be used as the rollback point "
                            "(nothing was changed): %s" % exc)
            except (ApplyError, OSError) as exc:
                raise Known("IMPORT_FAILED", "preparing the import failed (nothing was changed): %s" % exc)
            for path in lay.downloads:  # disk space
                os.unlink(path)
            source = self.p.get("source_url") or lay.meta.get("source_url")
            if source is not None and not isinstance(source, str):
                source = None
            error = None
            try:
                self.facts["imported_release"] = self.switch(staged, "import")
                self.facts["import_changed"] = True
                # the object cache still holds the replaced site's rows (users, options): emptied
                # before WordPress is loaded for the rewrite and the administrator, and again after
                self.timer.run("caches_before", self.purge_caches)
                sources = [source, lay.home.get("home"), lay.home.get("siteurl")]
                self.facts["import_source_url"] = redact_url((source or lay.home.get("home") or "").rstrip("/"))
                self.facts["url_rewrites"] = self.rewrite_from(sources)
                self.facts["admin_user"] = self.timer.run("admin", self.ensure_admin)
                self.timer.run("prune", self.prune_releases, "import")
                self.facts["cache_purge"] = self.timer.run("caches", self.purge_caches)
                healthy, detail = self.timer.run("health", self.health)
                if not healthy:
                    error = "unhealthy after the import (%s)" % detail
            except ApplyError as exc:
                healthy = False
                error = "the import failed: %s" % exc
                self.facts["healthy"] = False
            self.facts["import_healthy"] = healthy
            if healthy:
                self.facts["uploads_removed"] = self.remove_uploads()
                return
            if self.rollback is None:
                raise Known("IMPORT_FAILED", error + "; no rollback point was given")
            try:
                rstaged = self.timer.run("rollback_stage", self.stage, self.rollback, self.p["rollback_manifest"],
                                         "rollback", tmp)
                self.facts["rollback_release"] = self.apply(self.p["rollback_manifest"], rstaged, "rollback")
            except (StorageError, VerifyError, ApplyError, OSError) as exc:
                raise Known("IMPORT_FAILED", "%s; the rollback to the pre-import backup failed: %s" % (error, exc))
            self.facts["rolled_back"] = True
            healthy, detail = self.timer.run("rollback_health", self.health)
            self.facts["rollback_healthy"] = healthy
            raise Known("IMPORT_UNHEALTHY", "%s; rolled back to the pre-import backup, which is %s" % (
                error, "healthy" if healthy else "unhealthy too (%s)" % detail))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self.dispose_garbage()


ARGUMENT_SPEC = dict(
    {k: v for k, v in BACKUP_ARGUMENT_SPEC.items()
     if k not in ("action", "backup_id", "restore_id", "backup_scope", "backup_manifest", "storage_path")},
    import_id=dict(type="str", required=True),
    release_id=dict(type="str"),
    archive_url=dict(type="str", no_log=True),
    archive_sha256=dict(type="str"),
    database_url=dict(type="str", no_log=True),
    database_sha256=dict(type="str"),
    content_url=dict(type="str", no_log=True),
    content_sha256=dict(type="str"),
    source_url=dict(type="str"),
    source_table_prefix=dict(type="str"),
    import_max_bytes=dict(type="int", default=DEFAULT_MAX_BYTES),
    import_dir=dict(type="str", default=DEFAULT_IMPORT_DIR),
    download_timeout=dict(type="float", default=60.0),
    wp_admin_login=dict(type="str"),
    wp_admin_email=dict(type="str"),
    wp_admin_password=dict(type="str", no_log=True),
)
