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
import io
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
from ansible.module_utils.pressluft_prebackup import PreBackup
from ansible.module_utils import pressluft_fastcgi as fastcgi
from ansible.module_utils.pressluft_dumpload import Loader, LoadError

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


def local_source(p, url, limit, what):
    """The path of a file:// source (under the import directory), checked for its size like a
    download (IMPORT_TOO_LARGE) but not read yet."""
    path = local_path(p, url)
    try:
        size = os.stat(path).st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ArchiveError("IMPORT_SOURCE_UNAVAILABLE", "%s: %s" % (path, exc.strerror))
    if size > limit:
        raise ArchiveError("IMPORT_TOO_LARGE", "%s has %d bytes, more than the limit of %d" % (what, size, limit))
    return path


class HashedFile(io.RawIOBase):
    """A local archive read (and seeked: tarfile's format detection) by the import while every
    byte is hashed once, in order; finish() hashes what was not read and checks the SHA-256 and
    the size limit (IMPORT_CHECKSUM_MISMATCH, IMPORT_TOO_LARGE)."""

    def __init__(self, path, sha256, what):
        super().__init__()
        self.path = path
        self.want = (sha256 or "").strip().lower()
        self.what = what
        self.fh = None
        self.hash = hashlib.sha256()
        self.hashed = 0

    def open(self):
        self.fh = open(self.path, "rb", buffering=0)
        self.hash = hashlib.sha256()
        self.hashed = 0
        return io.BufferedReader(self, CHUNK)

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self.fh.seek(offset, whence)

    def tell(self):
        return self.fh.tell()

    def _catch_up(self, pos):
        while self.hashed < pos:
            data = os.pread(self.fh.fileno(), min(CHUNK, pos - self.hashed), self.hashed)
            if not data:
                break
            self.hash.update(data)
            self.hashed += len(data)

    def readinto(self, b):
        pos = self.fh.tell()
        self._catch_up(pos)
        n = self.fh.readinto(b)
        if n and pos + n > self.hashed:
            self.hash.update(memoryview(b)[self.hashed - pos:n])
            self.hashed = pos + n
        return n

    def finish(self, limit):
        """(size, sha256) of the whole file, checked."""
        if self.fh is None:
            self.fh = open(self.path, "rb", buffering=0)
        self._catch_up(os.fstat(self.fh.fileno()).st_size)
        while True:  # a file that grew meanwhile
            data = os.pread(self.fh.fileno(), CHUNK, self.hashed)
            if not data:
                break
            self.hash.update(data)
            self.hashed += len(data)
        if self.hashed > limit:
            raise ArchiveError("IMPORT_TOO_LARGE", "%s is larger than the limit of %d bytes" % (self.what, limit))
        digest = self.hash.hexdigest()
        if self.want and self.want != digest:
            raise ArchiveError("IMPORT_CHECKSUM_MISMATCH", "the SHA-256 of %s is %s, expected %s"
                               % (self.what, digest, self.want))
        return self.hashed, digest

    def close(self):
        """The file closed (finish() opens it again)."""
        if self.fh is not None:
            self.fh.close()
            self.fh = None


# ------------------------------------------------------------------ inspection ------------------
def norm(name):
    """A member name without leading ./ and trailing /; ArchiveError for absolute paths and ..."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "absolute path in the archive: %r" % name)
    parts = [x for x in name.split("/") if x not in ("", ".")]
    if ".." in parts or "\\" in name and ".." in name.split("\\"):
        raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "path traversal in the archive: %r" % name)
    return "/".join(parts)


def open_tar(path, fileobj=None):
    try:
        if fileobj is not None:
            return tarfile.open(fileobj=fileobj, mode="r:*")
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "not a tar archive (.tar, .tar.gz, .tgz): %s"
                           % str(exc).splitlines()[0].rstrip(":"))


class GunzipStream:
    """A gzip stream decompressed with zlib in large pieces, as the forward-only, seekable file
    object tarfile's "r:" mode reads (the next header by seeking forward): about twice as fast as
    tarfile's own gzip reading (no second CRC pass, no small reads). Concatenated members and
    zero padding as gzip(1) reads them; a truncated stream is EOFError, a corrupt one zlib.error."""

    OUT = 4 * CHUNK

    def __init__(self, raw):
        self.raw = raw
        self.d = zlib.decompressobj(31)
        self.buf = b""
        self.off = 0
        self.pos = 0
        self.done = False

    def _fill(self):
        """More decompressed bytes into buf; False at the end of the stream."""
        while self.off >= len(self.buf):
            if self.done:
                return False
            if self.d.unconsumed_tail:
                data = self.d.decompress(self.d.unconsumed_tail, self.OUT)
            elif self.d.eof:
                rest = self.d.unused_data.lstrip(b"\0")
                if not rest:
                    chunk = self.raw.read(CHUNK)
                    rest = chunk.lstrip(b"\0")
                    if not chunk:
                        self.done = True
                        return False
                    if not rest:
                        continue
                if len(rest) < 2:
                    rest += self.raw.read(1)
                if rest[:2] != b"\x1f\x8b":
                    raise zlib.error("trailing garbage after the gzip data")
                self.d = zlib.decompressobj(31)
                data = self.d.decompress(rest, self.OUT)
            else:
                chunk = self.raw.read(CHUNK)
                if not chunk:
                    raise EOFError("the gzip stream ended before its end-of-stream marker")
                data = self.d.decompress(chunk, self.OUT)
            self.buf, self.off = data, 0
        return True

    def read(self, n=-1):
        if n is None or n < 0:
            n = 1 << 62
        parts = []
        while n > 0 and self._fill():
            take = self.buf[self.off:self.off + n]
            self.off += len(take)
            self.pos += len(take)
            n -= len(take)
            parts.append(take)
        return b"".join(parts)

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        if whence == io.SEEK_CUR:
            offset += self.pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a gzip stream cannot seek from its end")
        if offset < self.pos:
            raise io.UnsupportedOperation("a gzip stream cannot seek backwards")
        while self.pos < offset and self._fill():
            step = min(offset - self.pos, len(self.buf) - self.off)
            self.off += step
            self.pos += step
        return self.pos

    def readable(self):
        return True

    def seekable(self):
        return True


def open_tar_stream(path, raw):
    """The tar at `path`, opened as `raw` (a buffered binary file object at its start, closed by
    the caller), for ONE sequential read (the import's): gzip-compressed decompressed by
    GunzipStream, anything else as open_tar() opens it."""
    try:
        magic = raw.peek(2)[:2]
    except (OSError, ValueError):
        magic = b""
    if magic != b"\x1f\x8b":
        return open_tar(path, raw)
    try:
        return tarfile.open(fileobj=GunzipStream(raw), mode="r:")
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
        self.hashed = None      # HashedFile: a local archive hashed while it is staged

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


class MemberChecks:
    """The member checks, one member at a time as the archive streams (nothing is extracted
    before its member passed): no absolute paths, no `..`, no devices or fifos, no symlinks
    pointing outside the archive, no member behind a symlink (an earlier one, or a LATER symlink
    over an earlier member's directory), no symlink replacing an earlier member, no file replacing
    a directory, hard links only to earlier regular files. Nothing is ever written through a link."""

    def __init__(self):
        self.names = {}       # normalized name -> member (the last one of that name)
        self.links = set()    # names of symlinks
        self.parents = set()  # every proper ancestor directory of a member seen

    def check(self, m):
        """The normalized name of member m, or ArchiveError."""
        n = norm(m.name)
        if m.isdev() or m.isfifo() or not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "device, fifo or unknown entry in the archive: %r" % m.name)
        parts = n.split("/") if n else []
        for i in range(1, len(parts)):
            up = "/".join(parts[:i])
            if up in self.links:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "%r lies behind the symlink %r" % (n, up))
            prev = self.names.get(up)
            if prev is not None and not prev.isdir():
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "%r lies below %r, which is not a directory" % (n, up))
        prev = self.names.get(n)
        if m.issym():
            if not n:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r names the archive's root" % m.name)
            if m.linkname.startswith("/"):
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r points to an absolute path" % m.name)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(n), m.linkname))
            if target == ".." or target.startswith("../"):
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r points outside the archive" % m.name)
            if n in self.parents:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "earlier members lie behind the symlink %r" % m.name)
            if prev is not None:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "symlink %r replaces an earlier member" % m.name)
            self.links.add(n)
        elif m.islnk():
            target = norm(m.linkname)
            linked = self.names.get(target)
            if linked is None:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "hard link %r to %r, which is not an earlier member"
                                   % (m.name, m.linkname))
            if not (linked.isfile() or linked.islnk()) or target in self.links:
                raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "hard link %r to %r, which is not a regular file"
                                   % (m.name, m.linkname))
        if not m.isdir() and ((prev is not None and prev.isdir()) or n in self.parents):
            raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "%r replaces an earlier directory" % m.name)
        if prev is not None and m.isdir() and not prev.isdir():
            raise ArchiveError("IMPORT_UNSAFE_ARCHIVE", "directory %r replaces an earlier file or link" % m.name)
        self.names[n] = m
        for i in range(1, len(parts)):
            self.parents.add("/".join(parts[:i]))
        return n


def check_members(tar):
    """Every member of the tar checked (MemberChecks) without extracting anything; a truncated
    or corrupt stream is IMPORT_INVALID_ARCHIVE. Returns ({name: member}, {symlinks})."""
    checks = MemberChecks()
    try:
        for m in tar:
            checks.check(m)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive is truncated or corrupt: %s" % exc)
    if not checks.names:
        raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive is empty")
    return checks.names, checks.links


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


def archive_layout(lay, names, links, read_meta):
    """The layout of a whole archive from its checked members: the common top-level directory,
    the dump, the wp-content directory (files/ or wp-content/), meta.json (read_meta(member) ->
    its first META_LIMIT + 1 bytes)."""
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
    lay.dump = None
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
        data = read_meta(top_files["meta.json"])
        if len(data) > META_LIMIT:
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json is larger than %d bytes" % META_LIMIT)
        try:
            meta = json.loads(data.decode("utf-8"))
        except ValueError:
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json is not valid JSON")
        if not isinstance(meta, dict):
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json must hold an object")
        lay.meta = meta
    return lay


def inspect(path):
    """Reads the whole archive once and checks EVERY member (check_members), finds the dump, the
    wp-content directory and meta.json, and scans the dump's CREATE TABLE names. (The import
    itself checks the members while it extracts them, in one read: Import.stage_import; this is
    the check mode's look at an archive.)"""
    lay = Layout()
    lay.content_tar = path
    with open_tar(path) as tar:
        names, links = check_members(tar)

        def read_meta(member):
            fh = tar.extractfile(member)
            return fh.read(META_LIMIT + 1) if fh else b""

        archive_layout(lay, names, links, read_meta)
        lay.tables = scan_tables(dump_stream(tar, lay))
    return lay


# wp-content's usual top-level entries: a tarball of exactly one of these is the directory's
# contents, not wp-content under another name
CONTENT_ENTRIES = ("plugins", "themes", "uploads", "mu-plugins", "languages", "index.php")


def is_gzip(path):
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def parts_layout(lay, names, links):
    """wp-content in a separate tarball: at its root, or its one top-level directory (`tar czf
    x.tgz wp-content` as well as `tar czf x.tgz -C wp-content .`)."""
    lay.members = len(names) + 1
    tops = {n.split("/")[0] for n in names if n}
    lay.content = ""
    if len(tops) == 1:
        top = next(iter(tops))
        if (names.get(top) is None or names[top].isdir()) and top not in CONTENT_ENTRIES \
                and any(n.startswith(top + "/") for n in names):
            lay.content = top
    check_content_links(lay, names, links)
    return lay


def parts(dump_path, content_path):
    """The Layout of a dump and a wp-content tarball given separately, nothing read yet (the
    import checks the tarball's members as it extracts them)."""
    lay = Layout()
    lay.dump_path = dump_path
    lay.dump_gz = is_gzip(dump_path)
    lay.content_tar = content_path
    return lay


def inspect_parts(dump_path, content_path):
    """A dump (.sql or .sql.gz, detected by its bytes) and a wp-content tarball given separately:
    the tarball's members checked like an archive's (inspect()), wp-content found (parts_layout),
    and the dump's CREATE TABLE names scanned."""
    lay = parts(dump_path, content_path)
    with open_tar(content_path) as tar:
        names, links = check_members(tar)
    parts_layout(lay, names, links)
    with lay.open_dump() as fh:
        lay.tables = scan_tables(fh)
    return lay


def dump_stream(tar, lay):
    """The dump's bytes (decompressed when .gz), a file object."""
    fh = tar.extractfile(lay.dump)
    if fh is None:
        raise ArchiveError("IMPORT_MISSING_DUMP", "the dump %r is not a file" % lay.dump.name)
    return gzip.GzipFile(fileobj=fh, mode="rb") if lay.dump_gz else fh


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


def dump_candidate(n):
    """A member that may be the archive's dump (loaded from the moment it is seen): a *.sql or
    *.sql.gz file at the top, or in a top-level directory other than files/ or wp-content/."""
    if not (n.endswith(".sql") or n.endswith(".sql.gz")):
        return False
    parts = n.split("/")
    return len(parts) == 1 or (len(parts) == 2 and parts[0] not in ("files", "wp-content"))


class Growing(io.RawIOBase):
    """A file being written by the extraction, read as it grows (the dump loads while the rest
    of the archive is extracted): reads wait for more data until finish() or fail()."""

    def __init__(self, path):
        super().__init__()
        self.fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        self.cond = threading.Condition()
        self.size = 0
        self.pos = 0
        self.done = False
        self.failed = None

    def readable(self):
        return True

    def grow(self, size):
        with self.cond:
            self.size = size
            self.cond.notify_all()

    def finish(self):
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def fail(self, why="aborted"):
        with self.cond:
            self.failed = why
            self.cond.notify_all()

    def readinto(self, b):
        with self.cond:
            while self.pos >= self.size and not self.done and self.failed is None:
                self.cond.wait()
            if self.failed is not None:
                raise OSError("the archive's dump could not be read: %s" % self.failed)
            n = min(len(b), self.size - self.pos)
        if n <= 0:
            return 0
        data = os.pread(self.fd, n, self.pos)
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def close(self):
        if not self.closed:
            os.close(self.fd)
        super().close()


class DumpLoad:
    """The dump loaded into the scratch database in a thread of its own (as the scratch account:
    it can change nothing else), over p["import_load_workers"] client connections
    (pressluft_dumpload.Loader)."""

    def __init__(self, job, tmp):
        self.job = job
        self.tmp = tmp
        self.lock = threading.Lock()
        self.reset()
        self.scratch = None

    def reset(self):
        self.thread = None
        self.path = None
        self.gz = False
        self.growing = None
        self.loader = None
        self.aborted = False
        self.started = False
        self.parallel = False
        self.result = {}

    def start(self, path, gz, growing):
        self.path, self.gz, self.growing, self.started = path, gz, growing, True
        job = self.job

        def run():
            try:
                self.result["tables"] = job.timer.run("database", self.load)
            except BaseException as exc:  # re-raised by wait()
                self.result["error"] = exc
            finally:
                if self.growing is not None:
                    self.growing.close()

        self.thread = threading.Thread(target=run, name="import-dump", daemon=True)
        self.thread.start()

    def load(self):
        job = self.job
        scratch, cnf = job.open_scratch(self.tmp)
        self.scratch = scratch
        client = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
        argv = [client, "--defaults-file=" + cnf, "--protocol=socket", "--batch",
                "--default-character-set=utf8mb4", "--max-allowed-packet=1G", scratch]
        with self.lock:
            if self.aborted:
                raise LoadError("aborted")
            self.loader = Loader(argv, job.p.get("import_load_workers") or 2, self.tmp)
        raw = io.BufferedReader(self.growing, CHUNK) if self.growing is not None else open(self.path, "rb")
        with raw:
            fh = gzip.GzipFile(fileobj=raw, mode="rb") if self.gz else raw
            tables = self.loader.load(fh)
        self.parallel = self.loader.parallel
        return tables

    def abort(self):
        with self.lock:
            self.aborted = True
            if self.loader is not None:
                self.loader.kill()
        if self.growing is not None:
            self.growing.fail()
        if self.thread is not None:
            self.thread.join()

    def restart(self, path, gz):
        if self.started:
            self.abort()
        self.reset()
        self.start(path, gz, None)

    def wait(self):
        """The tables the dump created; LoadError (the client's message) when it failed."""
        self.thread.join()
        if "error" in self.result:
            raise self.result["error"]
        return self.result["tables"]

    @contextlib.contextmanager
    def open_complete(self):
        """The complete dump (decompressed), once the stream ended."""
        with open(self.path, "rb") as raw:
            yield gzip.GzipFile(fileobj=raw, mode="rb") if self.gz else raw


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

        if p.get("archive_url") and urlsplit(p["archive_url"]).scheme == "file" and not self.m.check_mode:
            # a file:// archive is hashed while it is read for the import (stage_import): one
            # read; a mismatch refuses the import then, before anything live was touched
            lay = Layout()
            lay.content_tar = local_source(p, p["archive_url"], p["import_max_bytes"], "the archive")
            lay.hashed = HashedFile(lay.content_tar, p.get("archive_sha256"), "the archive")
        elif p.get("archive_url"):
            archive, size, digest = get("archive", p["archive_url"], p.get("archive_sha256"),
                                        p["import_max_bytes"], "the archive")
            self.facts.update({"import_size_bytes": size, "import_sha256": digest})
            lay = Layout()  # read once, when it is staged (stage_import)
            lay.content_tar = archive
        else:
            dump, dsize, ddigest = get("database", p["database_url"], p.get("database_sha256"),
                                       p["import_max_bytes"], "the database dump")
            content, csize, cdigest = get("content", p["content_url"], p.get("content_sha256"),
                                          p["import_max_bytes"] - dsize, "the wp-content archive")
            self.facts.update({"import_size_bytes": dsize + csize, "import_database_sha256": ddigest,
                               "import_content_sha256": cdigest})
            lay = parts(dump, content)
        lay.downloads += downloads
        return lay

    def inspect_only(self, lay):
        """The check mode's look at the source: every member checked, the layout and the dump's
        WordPress tables found, without extracting or loading anything."""
        if lay.dump_path is None:
            full = self.timer.run("inspect", inspect, lay.content_tar)
        else:
            full = self.timer.run("inspect", inspect_parts, lay.dump_path, lay.content_tar)
        self.facts["import_members"] = full.members
        full.prefix = source_prefix(full.tables, self.declared_prefix(full))
        self.facts["import_table_prefix"] = full.prefix
        return full

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
    def stream_archive(self, lay, stage, dump):
        """The archive (or the wp-content tarball of a two-part source) read ONCE: every member
        checked as it streams (MemberChecks) and extracted as root into `stage`, a directory only
        this run knows (releases/.tmp-<name>.archive); links are created as links, never
        followed or written through. The first member that looks like the dump starts loading
        into the scratch database while it is still being written (dump.start with a Growing
        reader). Returns the MemberChecks (the names and links the layout is decided from)."""
        if lay.hashed is not None:
            try:
                checks = self.stream_members(lay, stage, dump, lay.hashed.open())
            except ArchiveError:
                lay.hashed.finish(self.p["import_max_bytes"])  # a checksum mismatch comes first
                raise
            finally:
                lay.hashed.close()
            size, digest = lay.hashed.finish(self.p["import_max_bytes"])
            self.facts.update({"import_size_bytes": size, "import_sha256": digest})
            return checks
        return self.stream_members(lay, stage, dump, None)

    def stream_members(self, lay, stage, dump, fileobj):
        raw = fileobj if fileobj is not None else open(lay.content_tar, "rb")
        try:
            return self.extract_members(lay, stage, dump, raw)
        finally:
            if fileobj is None:
                raw.close()

    def extract_members(self, lay, stage, dump, raw):
        checks = MemberChecks()
        speculative = None
        with open_tar_stream(lay.content_tar, raw) as tar:
            while True:
                try:
                    m = tar.next()
                except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                    raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive is truncated or corrupt: %s" % exc)
                if m is None:
                    break
                n = checks.check(m)
                if not n:
                    continue
                dest = os.path.join(stage, n)
                if m.isdir():
                    if not os.path.isdir(dest):
                        os.makedirs(dest, 0o750)
                    continue
                parent = os.path.dirname(dest)
                if not os.path.isdir(parent):
                    os.makedirs(parent, 0o750)  # every ancestor is a directory or new (checked)
                if os.path.lexists(dest):
                    os.unlink(dest)  # an earlier file of the same name (never a directory: checked)
                    if n == speculative:
                        dump.abort()  # the dump being loaded was replaced: loaded again at the end
                        speculative = None
                if m.issym():
                    os.symlink(m.linkname, dest)
                    continue
                if m.islnk():
                    os.link(os.path.join(stage, norm(m.linkname)), dest, follow_symlinks=False)
                    continue
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                grow = None
                try:
                    if lay.dump_path is None and not dump.started and dump_candidate(n):
                        grow = Growing(dest)
                        speculative = n
                        dump.start(dest, n.endswith(".gz"), grow)
                    written = 0
                    for chunk in read_chunks(tar.extractfile(m), m.name):
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                        written += len(chunk)
                        if grow is not None:
                            grow.grow(written)
                finally:
                    os.close(fd)
                if grow is not None:
                    grow.finish()
        if not checks.names:
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive is empty")
        return checks

    def place_content(self, lay, checks, staged):
        """The staged wp-content directory moved (renamed) into the new release, its uploads/
        into the new uploads directory, caches and upgrade leftovers of the source left behind.
        Returns the number of members imported."""
        t = self.t
        stage = staged["archive"]
        src = os.path.join(stage, lay.content) if lay.content else stage
        if not os.path.isdir(src) or os.path.islink(src):
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the archive's wp-content directory is not a directory")
        content = os.path.join(staged["release"], "wp-content")
        if src == stage:
            os.rename(stage, content)  # a wp-content tarball with the contents at its root
            staged["archive"] = None
            stage = staged["archive"] = staged["release"] + ".archive"
            os.mkdir(stage, 0o700)
        else:
            os.rename(src, content)
        skipped = None
        for skip in CONTENT_SKIP:
            path = os.path.join(content, skip)
            if os.path.lexists(path):
                skipped = skipped or tempfile.mkdtemp(prefix=".skipped-", dir=stage)
                os.rename(path, os.path.join(skipped, skip))
        uploads = os.path.join(content, "uploads")
        if os.path.isdir(uploads) and not os.path.islink(uploads):
            os.rename(uploads, staged["uploads"])
            os.chown(staged["uploads"], t.uid, t.web_gid)
            os.chmod(staged["uploads"], 0o2750)
        else:
            if os.path.lexists(uploads):
                os.unlink(uploads)
            self.make_dir(staged["uploads"])
        self.timer.run("uploads_own", own_tree, staged["uploads"], t.uid, t.web_gid)
        base = lay.content_base()
        count = 0
        for n, m in checks.names.items():
            if n.startswith(base) and not m.isdir() and n[len(base):].split("/")[0] not in CONTENT_SKIP \
                    and n[len(base):] != "uploads":
                count += 1
        return count

    def declared_prefix(self, lay):
        declared = self.p.get("source_table_prefix") or lay.meta.get("table_prefix") or None
        if declared is not None and (not isinstance(declared, str) or not PREFIX_RE.match(declared)):
            raise ArchiveError("IMPORT_INVALID_ARCHIVE", "meta.json's table_prefix must match %s" % PREFIX_RE.pattern)
        return declared

    def stage_import(self, lay, tmp):
        """Everything beside the live environment; nothing live is touched. The source is read
        once: the members checked and extracted into a staging directory while the dump loads
        into the scratch database (from the moment its member is seen, over
        import_load_workers connections); then the layout is decided, the staged wp-content and
        uploads renamed into the new release, the tables renamed to the environment's prefix.
        A refusal removes everything staged. The staged parts."""
        t = self.t
        self.clear_leftovers()
        name = self.p.get("release_id") or self.next_release_name()
        staged = {"name": name, "release": None, "uploads": None, "database": None, "dump": None,
                  "archive": None}
        dump = DumpLoad(self, tmp)
        try:
            staged["release"] = os.path.join(t.releases_dir, ".tmp-" + name)
            staged["uploads"] = os.path.join(t.shared, ".uploads-new-" + name.replace("-", ""))
            staged["archive"] = staged["release"] + ".archive"
            os.mkdir(staged["archive"], 0o700)
            if lay.dump_path is not None:
                dump.start(lay.dump_path, lay.dump_gz, None)
            core = {}

            def prepare():
                try:
                    self.timer.run("release_core", self.prepare_release, staged["release"])
                except BaseException as exc:  # re-raised in the caller's thread
                    core["error"] = exc

            preparer = threading.Thread(target=prepare, name="import-core", daemon=True)
            preparer.start()
            try:
                checks = self.timer.run("stream", self.stream_archive, lay, staged["archive"], dump)
            finally:
                preparer.join()
            if "error" in core:
                raise core["error"]
            if lay.dump_path is None:
                def read_meta(member):
                    path = os.path.join(staged["archive"], norm(member.name))
                    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                    with os.fdopen(fd, "rb") as fh:
                        return fh.read(META_LIMIT + 1)

                archive_layout(lay, checks.names, checks.links, read_meta)
                chosen = os.path.join(staged["archive"], norm(lay.dump.name))
                if dump.path != chosen or dump.aborted:
                    dump.restart(chosen, lay.dump_gz)
            else:
                parts_layout(lay, checks.names, checks.links)
            declared = self.declared_prefix(lay)
            self.facts["import_members"] = lay.members
            self.facts["import_files"] = self.timer.run("place", self.place_content, lay, checks, staged)
            self.timer.run("release_finish", self.finish_release, staged["release"])
            try:
                lay.tables = self.timer.run("database_wait", dump.wait)
            except LoadError as exc:
                # a dump without WordPress tables or for another prefix is refused as that, as
                # when the dump was scanned before it was loaded
                with dump.open_complete() as fh:
                    source_prefix(scan_tables(fh), declared)
                raise ArchiveError("IMPORT_INVALID_ARCHIVE", "the dump could not be imported: %s" % exc)
            staged["database"] = dump.scratch
            self.facts["import_load_parallel"] = dump.parallel
            lay.prefix = source_prefix(lay.tables, declared)
            target = t.table_prefix()
            self.facts["import_table_prefix"] = lay.prefix
            self.facts["import_tables_renamed"] = len(
                self.timer.run("prefix", self.adopt_prefix, staged["database"], lay.prefix, target))
            lay.home = self.scratch_home(staged["database"], target)
            self.garbage["paths"].append(staged["archive"])  # the dump, what was left out
            staged["archive"] = None
            return staged
        except BaseException:
            dump.abort()
            staged["database"] = dump.scratch
            if staged.get("archive"):
                shutil.rmtree(staged["archive"], ignore_errors=True)
            self.discard(staged)
            raise

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
        return [self.timer.run("url_rewrite", self.rewrite_tables, " ".join(olds))]

    def rewrite_tables(self, old):
        """The helper's search-replace --lean (the tables only, without loading WordPress; the
        caches are emptied afterwards)."""
        return self.rewrite_urls(old, lean=True)

    def warm_release(self):
        """A thread compiling the new release's WordPress core into the environment's PHP-FPM
        OPcache (pressluft_fastcgi.warm_opcache: nothing executed, so nothing of the source's
        URLs is written back), so that the health check's first request finds it warm. None when
        the pool's socket or the environment's tmp/ is missing."""
        t = self.t
        script_dir = os.path.join(t.root, "tmp")
        if not os.path.exists(t.fpm_socket) or not os.path.isdir(script_dir) or os.path.islink(script_dir):
            return None
        release = os.path.realpath(os.path.join(t.root, "current"))

        def warm():
            self.facts["opcache_files"] = self.timer.run(
                "opcache_warm", fastcgi.warm_opcache, t.fpm_socket, release, script_dir,
                os.path.join(t.root, "current"))

        thread = threading.Thread(target=warm, name="import-opcache", daemon=True)
        thread.start()
        return thread

    def rewrite_and_admin(self, sources):
        """Pressluft's administrator made sure of first (the one WordPress load of the two: what
        the imported site's code writes while it loads is rewritten next), then the URL rewrite
        over the tables (--lean, without loading WordPress); the caches are emptied after both.
        Returns (url_rewrites, admin_user)."""
        admin = self.timer.run("admin", self.ensure_admin)
        return self.rewrite_from(sources), admin

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
        pre = None
        try:
            # a pre-import backup that is not stored yet is taken now, beside reading and staging
            # the archive (it reads the live environment, they write beside it)
            if self.p.get("pre_backup_id") and self.rollback is None and not self.m.check_mode:
                pre = PreBackup(self.m).start()
            try:
                lay = self.fetch(tmp)
                if self.rollback is not None:
                    self.check_manifest(self.rollback, self.p["rollback_manifest"], "rollback")
                if self.m.check_mode:
                    self.inspect_only(lay)
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
            if pre is not None:
                # the rollback point exists before anything of the target changes
                try:
                    self.rollback, self.p["rollback_manifest"] = self.timer.run("pre_backup_wait", pre.result)
                except Known:
                    self.discard(staged)
                    raise
            try:
                self.facts["imported_release"] = self.switch(staged, "import")
                self.facts["import_changed"] = True
                # the object cache still holds the replaced site's rows (users, options): emptied
                # before WordPress is loaded for the rewrite and the administrator, and again after
                self.timer.run("caches_before", self.purge_caches)
                warm = self.warm_release()  # beside the administrator and the rewrite
                sources = [source, lay.home.get("home"), lay.home.get("siteurl")]
                self.facts["import_source_url"] = redact_url((source or lay.home.get("home") or "").rstrip("/"))
                try:
                    self.facts["url_rewrites"], self.facts["admin_user"] = self.rewrite_and_admin(sources)
                finally:
                    if warm is not None:
                        warm.join(20)
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
            if pre is not None:
                report = pre.report()  # stored even when the import was refused: a valid backup
                if report:
                    self.facts["pre_backup"] = report
            shutil.rmtree(tmp, ignore_errors=True)
            self.dispose_garbage()


ARGUMENT_SPEC = dict(
    {k: v for k, v in BACKUP_ARGUMENT_SPEC.items()
     if k not in ("action", "backup_id", "restore_id", "backup_scope", "backup_manifest", "storage_path")},
    import_id=dict(type="str", required=True),
    release_id=dict(type="str"),
    pre_backup_id=dict(type="str"),
    pre_backup_storage_path=dict(type="str"),
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
    import_load_workers=dict(type="int", default=2),
    wp_admin_login=dict(type="str"),
    wp_admin_email=dict(type="str"),
    wp_admin_password=dict(type="str", no_log=True),
)
