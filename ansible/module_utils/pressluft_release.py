"""Releases of a Pressluft environment on its node (issue 8): fetch a source (git or an archive),
build the immutable directory C(releases/<release id>/) (a whole WordPress root, or a wp-content
overlay applied onto a copy of the current release), check it through the environment's own
PHP-FPM pool before anything is switched, switch C(current) atomically (symlink + rename), check
it again through nginx, switch back when that fails, keep the last N releases.

Shared by the pressluft_release module (deploy, plan) and other modules that make releases
(promotion, update): everything here is plain Python 3 without Ansible, so it also runs as a
script (C(python3 - plan ...)) for the API's dry runs.

Layout of an environment root (see pressluft_environment): C(current -> releases/<name>),
C(releases/<name>/), C(shared/wp-config.php), C(shared/uploads/), C(tmp/). Metadata of the
releases made here: C(releases/.meta/<id>.json) (built_at, source, files); names starting with a
dot are never releases.
"""
from __future__ import annotations

import filecmp
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from urllib.parse import urlsplit

WP_LINK = 'rel="https://api.w.org/"'
DROPIN_MARKER = b"Pressluft object-cache drop-in (pressluft-object-cache)"
CACHE_ROOT = "/var/cache/nginx/pressluft"
RELEASE_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")
SHA_RE = re.compile(r"^[0-9a-fA-F]{64}$")
# never taken from a source: the environment's own (linked or managed) files
IGNORED = ("wp-config.php", "wp-content/uploads", "wp-content/object-cache.php",
           "wp-content/mu-plugins/pressluft-login.php", ".git")
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024


class ReleaseError(Exception):
    """A failure with a registered error code (reconcilers/src/error_code.rs)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# --- paths ------------------------------------------------------------------------------------
def env_root(sites_root, site_id, env_id):
    return os.path.join(os.path.normpath(sites_root), site_id.lower(), env_id.lower())


def linux_user(env_id):
    return "pl_" + env_id.lower().replace("-", "")[-16:]


def fpm_socket(env_id):
    return "/run/php/pressluft-%s.sock" % linux_user(env_id)


def current_release(root):
    """The directory name `current` points to (releases/<name>), or None."""
    cur = os.path.join(root, "current")
    if not os.path.islink(cur):
        return None
    target = os.readlink(cur).rstrip("/")
    name = os.path.basename(target)
    if target != "releases/" + name:
        return None
    return name


def release_dirs(root):
    rel = os.path.join(root, "releases")
    if not os.path.isdir(rel):
        return []
    return sorted(d for d in os.listdir(rel) if not d.startswith(".") and os.path.isdir(os.path.join(rel, d)))


def is_complete(root, name):
    return os.path.isfile(os.path.join(root, "releases", name, "wp-load.php"))


def meta_path(root, name):
    return os.path.join(root, "releases", ".meta", name + ".json")


def read_meta(root, name):
    try:
        with open(meta_path(root, name), "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def write_meta(root, name, data, uid, gid):
    d = os.path.dirname(meta_path(root, name))
    os.makedirs(d, mode=0o2750, exist_ok=True)
    os.lchown(d, uid, gid)
    tmp = meta_path(root, name) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
    os.chmod(tmp, 0o640)
    os.lchown(tmp, uid, gid)
    os.rename(tmp, meta_path(root, name))


# --- sources ----------------------------------------------------------------------------------
def parse_source(source_type, source_ref):
    """Validates a source reference: git `<url>#<ref>`, upload `<url>[#sha256=<hex>]`."""
    if source_type == "git":
        url, sep, ref = source_ref.rpartition("#")
        if not sep or not url or not ref:
            raise ReleaseError("RELEASE_INVALID", "git source_ref must be <repository url>#<branch, tag or commit>")
        if ref.startswith("-") or any(c.isspace() for c in ref) or ".." in ref:
            raise ReleaseError("RELEASE_INVALID", "git ref %r is not a valid ref" % ref)
        if url.startswith("-"):
            raise ReleaseError("RELEASE_INVALID", "git repository url must not start with '-'")
        return {"type": "git", "url": url, "ref": ref}
    if source_type == "upload":
        url, sep, frag = source_ref.partition("#")
        sha = None
        if sep:
            if not frag.startswith("sha256=") or not SHA_RE.match(frag[7:]):
                raise ReleaseError("RELEASE_INVALID", "the archive URL's fragment must be #sha256=<64 hex digits>")
            sha = frag[7:].lower()
        parts = urlsplit(url)
        if parts.scheme not in ("file", "http", "https"):
            raise ReleaseError("RELEASE_INVALID", "the archive URL must be file://, http:// or https://")
        path = parts.path.lower()
        if not (path.endswith(".tar.gz") or path.endswith(".tgz") or path.endswith(".zip")):
            raise ReleaseError("RELEASE_INVALID", "the archive must be a .tar.gz, .tgz or .zip")
        return {"type": "upload", "url": url, "sha256": sha}
    raise ReleaseError("RELEASE_INVALID", "source_type %r cannot be built from its source" % source_type)


def run(argv, timeout, cwd="/", env=None):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        return 124, "", "timed out after %ds" % timeout
    return proc.returncode, proc.stdout, proc.stderr


def fetch_git(src, dest):
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/true", LC_ALL="C")
    git = ["git", "-c", "safe.directory=*", "-c", "protocol.ext.allow=never"]
    rc, _, err = run(git + ["clone", "--quiet", "--no-checkout", "--", src["url"], dest], 300, env=env)
    if rc != 0:
        raise ReleaseError("RELEASE_SOURCE_UNAVAILABLE", "git clone of %s failed: %s" % (src["url"], err.strip()[-300:]))
    rc, _, err = run(git + ["-C", dest, "checkout", "--quiet", "--detach", src["ref"]], 120, env=env)
    if rc != 0:
        rc2, _, _ = run(git + ["-C", dest, "checkout", "--quiet", "--detach", "origin/" + src["ref"]], 120, env=env)
        if rc2 != 0:
            raise ReleaseError("RELEASE_SOURCE_UNAVAILABLE", "ref %s not found in %s: %s" % (src["ref"], src["url"], err.strip()[-300:]))
    _, out, _ = run(git + ["-C", dest, "rev-parse", "HEAD"], 30, env=env)
    shutil.rmtree(os.path.join(dest, ".git"), ignore_errors=True)
    return {"commit": out.strip()}


def download(url, dest, timeout=300):
    parts = urlsplit(url)
    h = hashlib.sha256()
    size = 0
    try:
        if parts.scheme == "file":
            fh_in = open(parts.path, "rb")
        else:
            ctx = ssl.create_default_context()
            fh_in = urllib.request.urlopen(url, timeout=timeout, context=ctx)  # noqa: S310 (http/https only)
        with fh_in, open(dest, "wb") as out:
            while True:
                chunk = fh_in.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise ReleaseError("RELEASE_INVALID", "the archive is larger than %d bytes" % MAX_ARCHIVE_BYTES)
                h.update(chunk)
                out.write(chunk)
    except ReleaseError:
        raise
    except Exception as exc:  # noqa: BLE001 - every transport error is "unavailable"
        raise ReleaseError("RELEASE_SOURCE_UNAVAILABLE", "cannot read %s: %s" % (url.split("#")[0], exc))
    return h.hexdigest(), size


def _safe_member(name):
    n = name.replace("\\", "/")
    if n.startswith("/") or any(part == ".." for part in n.split("/")):
        raise ReleaseError("RELEASE_INVALID", "unsafe path in the archive: %r" % name)
    return n


def extract(archive, url, dest):
    if url.lower().split("#")[0].endswith(".zip"):
        try:
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    _safe_member(info.filename)
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode == 0o120000:
                        raise ReleaseError("RELEASE_INVALID", "links are not allowed in a release archive: %r" % info.filename)
                z.extractall(dest)
        except zipfile.BadZipFile as exc:
            raise ReleaseError("RELEASE_INVALID", "not a zip archive: %s" % exc)
        return
    try:
        with tarfile.open(archive, "r:gz") as t:
            members = []
            for m in t.getmembers():
                _safe_member(m.name)
                if m.issym() or m.islnk():
                    raise ReleaseError("RELEASE_INVALID", "links are not allowed in a release archive: %r" % m.name)
                if not (m.isfile() or m.isdir()):
                    continue
                members.append(m)
            for m in members:
                m.mode = 0o750 if m.isdir() else 0o640
            t.extractall(dest, members=members)  # noqa: S202 - members checked above
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReleaseError("RELEASE_INVALID", "not a readable .tar.gz: %s" % exc)


def fetch(source_type, source_ref, workdir):
    """Fetches the source into workdir/src; returns (content dir, facts about the source)."""
    src = parse_source(source_type, source_ref)
    dest = os.path.join(workdir, "src")
    if src["type"] == "git":
        info = fetch_git(src, dest)
    else:
        archive = os.path.join(workdir, "archive")
        digest, size = download(src["url"], archive)
        if src["sha256"] and digest != src["sha256"]:
            raise ReleaseError("RELEASE_CHECKSUM_MISMATCH",
                               "the archive's SHA-256 is %s, not the pinned %s" % (digest, src["sha256"]))
        os.makedirs(dest)
        extract(archive, src["url"], dest)
        os.unlink(archive)
        info = {"sha256": digest, "bytes": size}
    return content_root(dest), info


def content_root(d):
    """The directory holding the release content: d, or its only top-level directory."""
    entries = [e for e in os.listdir(d) if not e.startswith(".")] if os.path.isdir(d) else []
    if (not os.path.exists(os.path.join(d, "wp-load.php")) and not os.path.isdir(os.path.join(d, "wp-content"))
            and len(entries) == 1 and os.path.isdir(os.path.join(d, entries[0]))):
        return os.path.join(d, entries[0])
    return d


def classify(content):
    if os.path.isfile(os.path.join(content, "wp-load.php")):
        return "root"
    if os.path.isdir(os.path.join(content, "wp-content")):
        return "overlay"
    raise ReleaseError("RELEASE_INVALID",
                       "the source is neither a WordPress root (wp-load.php) nor a wp-content overlay")


# --- building ---------------------------------------------------------------------------------
def ignored(rel):
    return any(rel == i or rel.startswith(i + "/") for i in IGNORED)


def copy_tree(src, dst, link=False):
    """Copies src into dst (created). link: hard links instead of copies (never modified in place:
    replaced files are unlinked first)."""
    argv = ["cp", "-a"] + (["-l"] if link else []) + ["--", src + "/.", dst]
    os.makedirs(dst, exist_ok=True)
    rc, _, err = run(argv, 600)
    if rc != 0:
        raise ReleaseError("RELEASE_INVALID", "copying %s failed: %s" % (src, err.strip()[-300:]))


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def put_tree(src, dst):
    """src (a file or directory) replaces dst by fresh copies."""
    remove(dst)
    if os.path.isdir(src) and not os.path.islink(src):
        shutil.copytree(src, dst, symlinks=False)
    else:
        shutil.copy2(src, dst)


def apply_overlay(content, target):
    """wp-content of the overlay onto target's: a theme, plugin or mu-plugin entry replaces the
    whole entry of the same name; other files replace single files."""
    base = os.path.join(content, "wp-content")
    for top in sorted(os.listdir(base)):
        rel = "wp-content/" + top
        if ignored(rel):
            continue
        src = os.path.join(base, top)
        dst = os.path.join(target, "wp-content", top)
        if top in ("themes", "plugins", "mu-plugins") and os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
            for entry in sorted(os.listdir(src)):
                if ignored(rel + "/" + entry):
                    continue
                put_tree(os.path.join(src, entry), os.path.join(dst, entry))
        else:
            put_tree(src, dst)


def strip_ignored(target):
    for rel in IGNORED:
        p = os.path.join(target, rel)
        if os.path.lexists(p):
            remove(p)


def own_tree(top, uid, gid):
    """Owner uid:gid, directories 2750, files 0640 (as the converge leaves a release)."""
    for root, dirs, files in os.walk(top):
        os.lchown(root, uid, gid)
        os.chmod(root, 0o2750)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            os.lchown(path, uid, gid)
            if not os.path.islink(path):
                os.chmod(path, 0o640)


def link_shared(release, uid, gid, login_plugin_src, dropin_src):
    """wp-config.php and uploads linked to shared/, Pressluft's mu-plugin, the drop-in (when the
    environment uses one: dropin_src is the live release's Pressluft drop-in)."""
    cfg = os.path.join(release, "wp-config.php")
    remove(cfg)
    os.symlink("../../shared/wp-config.php", cfg)
    os.lchown(cfg, uid, gid)
    content = os.path.join(release, "wp-content")
    if not os.path.isdir(content):
        raise ReleaseError("RELEASE_INVALID", "the release has no wp-content directory")
    up = os.path.join(content, "uploads")
    remove(up)
    os.symlink("../../../shared/uploads", up)
    os.lchown(up, uid, gid)
    mu = os.path.join(content, "mu-plugins")
    os.makedirs(mu, mode=0o2750, exist_ok=True)
    if login_plugin_src and os.path.isfile(login_plugin_src):
        dst = os.path.join(mu, "pressluft-login.php")
        remove(dst)
        shutil.copyfile(login_plugin_src, dst)
    if dropin_src:
        shutil.copyfile(dropin_src, os.path.join(content, "object-cache.php"))


def pressluft_dropin(release_dir):
    """The release's object-cache.php when it is Pressluft's drop-in, else None."""
    path = os.path.join(release_dir, "wp-content", "object-cache.php")
    try:
        with open(path, "rb") as fh:
            return path if DROPIN_MARKER in fh.read() else None
    except OSError:
        return None


def file_index(top):
    out = {}
    for root, dirs, files in os.walk(top):
        rel_root = os.path.relpath(root, top)
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                dirs.remove(d)
                files.append(d)
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if ignored(rel):
                continue
            out[rel] = os.path.join(root, name)
    return out


def diff(old, new):
    """Files added / changed / removed from release dir old to new (links and Pressluft's own
    files left out), with up to 20 example paths each."""
    a = file_index(old) if old and os.path.isdir(old) else {}
    b = file_index(new)
    added = sorted(set(b) - set(a))
    removed = sorted(set(a) - set(b))
    changed = []
    for rel in sorted(set(a) & set(b)):
        pa, pb = a[rel], b[rel]
        if os.path.islink(pa) or os.path.islink(pb):
            if os.path.islink(pa) != os.path.islink(pb) or (os.readlink(pa) != os.readlink(pb)):
                changed.append(rel)
            continue
        sa, sb = os.stat(pa), os.stat(pb)
        if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
            continue
        if sa.st_size != sb.st_size or not filecmp.cmp(pa, pb, shallow=False):
            changed.append(rel)
    return {"added": len(added), "changed": len(changed), "removed": len(removed),
            "added_paths": added[:20], "changed_paths": changed[:20], "removed_paths": removed[:20]}


def build(root, release_id, content, kind, base, uid, gid, login_plugin_src, workdir):
    """Builds releases/<release_id> from fetched content: a whole root, or an overlay on a
    (hard-linked) copy of the base release. A leftover partial build is removed first."""
    rel_dir = os.path.join(root, "releases")
    tmp = os.path.join(rel_dir, ".tmp-" + release_id)
    remove(tmp)
    base_dir = os.path.join(rel_dir, base) if base else None
    if kind == "root":
        copy_tree(content, tmp)
        strip_ignored(tmp)
    else:
        if not base_dir or not os.path.isfile(os.path.join(base_dir, "wp-load.php")):
            raise ReleaseError("RELEASE_INVALID", "an overlay needs a current release to apply onto")
        copy_tree(base_dir, tmp, link=True)
        strip_ignored(tmp)
        apply_overlay(content, tmp)
    if not os.path.isfile(os.path.join(tmp, "wp-load.php")):
        remove(tmp)
        raise ReleaseError("RELEASE_INVALID", "the built release holds no WordPress (wp-load.php missing)")
    link_shared(tmp, uid, gid, login_plugin_src, pressluft_dropin(base_dir) if base_dir else None)
    own_tree(tmp, uid, gid)
    return tmp


# --- checks -----------------------------------------------------------------------------------
def _fcgi_record(rtype, content, req_id=1):
    out = b""
    pos = 0
    while True:
        chunk = content[pos:pos + 65535]
        pad = (-len(chunk)) % 8
        out += struct.pack("!BBHHBB", 1, rtype, req_id, len(chunk), pad, 0) + chunk + b"\0" * pad
        pos += len(chunk)
        if pos >= len(content):
            return out


def _fcgi_params(params):
    body = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            body += struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)
        body += k + v
    return body


def fastcgi_get(sock_path, params, timeout):
    """One FastCGI request (responder role) to a PHP-FPM socket: (status, headers dict, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(_fcgi_record(1, struct.pack("!HB5x", 1, 0))
                  + _fcgi_record(4, _fcgi_params(params)) + _fcgi_record(4, b"")
                  + _fcgi_record(5, b""))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    stdout = b""
    pos = 0
    while pos + 8 <= len(data):
        _, rtype, _, clen, plen, _ = struct.unpack("!BBHHBB", data[pos:pos + 8])
        if rtype == 6:
            stdout += data[pos + 8:pos + 8 + clen]
        pos += 8 + clen + plen
    head, _, body = stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, body = stdout.partition(b"\n\n")
    status = 200
    headers = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "status":
            try:
                status = int(value.split()[0])
            except (ValueError, IndexError):
                status = 500
        elif name:
            headers[name] = (headers[name] + ", " + value) if name in headers else value
    return status, headers, body


def wordpress_content(headers, body):
    text = body.decode("utf-8", errors="replace")
    return WP_LINK in headers.get("link", "") or "/wp-content/" in text or "/wp-includes/" in text


def check_release_direct(release_dir, site_url, sock_path, timeout=10, retries=1):
    """Pre-switch check: GET / of the site, served by the environment's PHP-FPM pool straight from
    release_dir (SCRIPT_FILENAME / DOCUMENT_ROOT inside it, the site's Host), redirects on the same
    host followed. Needs 200 with WordPress content. Never touches `current` or nginx."""
    u = urlsplit(site_url)
    https = u.scheme == "https"
    host = u.hostname + ("" if u.port is None else ":%d" % u.port)
    real = os.path.realpath(release_dir)
    detail = "not checked"
    for attempt in range(retries + 1):
        uri = (u.path.rstrip("/") or "") + "/"
        for _ in range(6):
            path, _, query = uri.partition("?")
            params = {
                "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "pressluft-release-check",
                "REQUEST_METHOD": "GET", "REQUEST_URI": uri, "QUERY_STRING": query,
                "SCRIPT_FILENAME": real + "/index.php", "SCRIPT_NAME": "/index.php",
                "DOCUMENT_URI": "/index.php", "DOCUMENT_ROOT": real, "SERVER_PROTOCOL": "HTTP/1.1",
                "SERVER_NAME": u.hostname, "SERVER_PORT": str(u.port or (443 if https else 80)),
                "SERVER_ADDR": "127.0.0.1", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
                "HTTP_HOST": host, "HTTP_USER_AGENT": "Pressluft-Release-Check/1",
                "HTTP_ACCEPT": "text/html,*/*", "REDIRECT_STATUS": "200", "CONTENT_LENGTH": "",
                "CONTENT_TYPE": "", "PATH_INFO": "",
            }
            if https:
                params["HTTPS"] = "on"
            try:
                status, headers, body = fastcgi_get(sock_path, params, timeout)
            except OSError as exc:
                detail = "PHP-FPM pool %s: %s" % (sock_path, exc)
                break
            if status in (301, 302, 303, 307, 308):
                loc = urlsplit(headers.get("location", ""))
                if loc.hostname and loc.hostname.lower() != u.hostname.lower():
                    detail = "redirected to another host: %s" % headers.get("location")
                    break
                uri = (loc.path or "/") + ("?" + loc.query if loc.query else "")
                continue
            if status != 200:
                detail = "HTTP %d from the new release (through PHP-FPM, before the switch)" % status
            elif not wordpress_content(headers, body):
                detail = "HTTP 200 without WordPress content from the new release (before the switch)"
            else:
                return True, "HTTP 200 with WordPress content (through PHP-FPM, before the switch)"
            break
        else:
            detail = "more than 5 redirects"
        if attempt < retries:
            time.sleep(0.5)
    return False, detail


def check_live(site_url, release_id, timeout=10, retries=1):
    """Post-switch check through nginx: GET <site_url>/?pressluft-release=<id> (a query string
    bypasses the page cache, so visitors keep cached pages meanwhile)."""
    from ansible.module_utils.pressluft_checks import check_http, with_retry
    url = site_url.rstrip("/") + "/?pressluft-release=" + release_id
    res = with_retry(lambda: check_http(url, "127.0.0.1", timeout, False), retries, delay=0.5)
    return res["ok"], res["detail"]


# --- switching, cache, pruning --------------------------------------------------------------------
def switch(root, name, uid, gid):
    """Points `current` to releases/<name> atomically (a new symlink renamed over it)."""
    tmp = os.path.join(root, ".current-" + name)
    remove(tmp)
    os.symlink("releases/" + name, tmp)
    os.lchown(tmp, uid, gid)
    os.rename(tmp, os.path.join(root, "current"))


def purge_page_cache(env_id):
    d = os.path.join(CACHE_ROOT, env_id.lower())
    n = 0
    if not os.path.isdir(d):
        return 0
    for r, _, files in os.walk(d):
        for f in files:
            try:
                os.unlink(os.path.join(r, f))
                n += 1
            except OSError:
                pass
    return n


def built_at(root, name):
    m = read_meta(root, name)
    if m.get("built_at"):
        return m["built_at"]
    try:
        return os.stat(os.path.join(root, "releases", name)).st_mtime
    except OSError:
        return 0


def prune(root, keep, protect):
    """Removes release directories beyond the `keep` newest (by build time); never one in
    `protect` (current, previous)."""
    names = sorted(release_dirs(root), key=lambda n: built_at(root, n), reverse=True)
    keep = max(int(keep), 2)
    removed = []
    kept = 0
    for n in names:
        if n in protect or kept < keep:
            kept += 1
            continue
        remove(os.path.join(root, "releases", n))
        try:
            os.unlink(meta_path(root, n))
        except OSError:
            pass
        removed.append(n)
    return removed


def owner_of(root):
    st = os.stat(root)
    return st.st_uid, st.st_gid


# --- updates (core, plugins, themes from an offline source) ---------------------------------------
VERSION_RE = re.compile(r"^[ \t/*#@]*Version:\s*(\S+)", re.I | re.M)
WP_VERSION_RE = re.compile(r"\$wp_version\s*=\s*'([^']+)'")


def _read_head(path, n=8192):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            return fh.read(n)
    except OSError:
        return ""


def core_version(tree):
    m = WP_VERSION_RE.search(_read_head(os.path.join(tree, "wp-includes", "version.php"), 65536))
    return m.group(1) if m else None


def plugin_version(plugin_dir):
    """Version header of the plugin's main file (the .php file with a Plugin Name header)."""
    if os.path.isfile(plugin_dir):
        files = [plugin_dir]
    else:
        files = sorted(os.path.join(plugin_dir, f) for f in os.listdir(plugin_dir) if f.endswith(".php"))
    for f in files:
        head = _read_head(f)
        if "Plugin Name:" in head:
            m = VERSION_RE.search(head)
            return m.group(1) if m else "0"
    return None


def theme_version(theme_dir):
    head = _read_head(os.path.join(theme_dir, "style.css"))
    if "Theme Name:" not in head:
        return None
    m = VERSION_RE.search(head)
    return m.group(1) if m else "0"


def version_key(v):
    parts = []
    for p in re.split(r"[.\-+]", v or ""):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return parts


def components(tree, content=None):
    """{(type, slug): version} of a WordPress tree (type core | plugin | theme); content: the
    directory holding plugins/ and themes/ (default tree/wp-content)."""
    out = {}
    v = core_version(tree)
    if v:
        out[("core", "wordpress")] = v
    content = content or os.path.join(tree, "wp-content")
    for kind, sub, fn in (("plugin", "plugins", plugin_version), ("theme", "themes", theme_version)):
        d = os.path.join(content, sub)
        if not os.path.isdir(d):
            continue
        for slug in sorted(os.listdir(d)):
            if slug.startswith(".") or slug == "index.php":
                continue
            ver = fn(os.path.join(d, slug))
            if ver is not None:
                out[(kind, slug)] = ver
    return out


SCOPES = {"core": ("core",), "plugins": ("plugin",), "themes": ("theme",), "all": ("core", "plugin", "theme")}


def update_changes(current_dir, source_dir, scope):
    """Components of the current release whose version in the update source (core/, plugins/<slug>,
    themes/<slug>) is newer: [{type, slug, from, to}]. Only installed components are updated."""
    if scope not in SCOPES:
        raise ReleaseError("RELEASE_INVALID", "update scope must be core, plugins, themes or all")
    if not source_dir or not os.path.isdir(source_dir):
        raise ReleaseError("RELEASE_SOURCE_UNAVAILABLE", "the update source %s is not a directory on the node" % source_dir)
    have = components(current_dir)
    src = {}
    core = os.path.join(source_dir, "core")
    if os.path.isfile(os.path.join(core, "wp-load.php")):
        v = core_version(core)
        if v:
            src[("core", "wordpress")] = v
    src.update({k: v for k, v in components(os.path.join(source_dir, ".none"), source_dir).items() if k[0] != "core"})
    out = []
    for key in sorted(have):
        if key[0] not in SCOPES[scope] or key not in src:
            continue
        if version_key(src[key]) > version_key(have[key]):
            out.append({"type": key[0], "slug": key[1], "from": have[key], "to": src[key]})
    return out


def apply_updates(tmp, source_dir, changes):
    for c in changes:
        if c["type"] == "core":
            core = os.path.join(source_dir, "core")
            for top in sorted(os.listdir(core)):
                if top in ("wp-content", "wp-config.php", "wp-config-sample.php", ".htaccess"):
                    continue
                put_tree(os.path.join(core, top), os.path.join(tmp, top))
        else:
            sub = "plugins" if c["type"] == "plugin" else "themes"
            put_tree(os.path.join(source_dir, sub, c["slug"]), os.path.join(tmp, "wp-content", sub, c["slug"]))


def build_update(root, release_id, base, source_dir, changes, uid, gid, login_plugin_src):
    """releases/.tmp-<id>: a hard-linked copy of the base release with the changed components
    replaced by fresh copies from the source."""
    rel_dir = os.path.join(root, "releases")
    tmp = os.path.join(rel_dir, ".tmp-" + release_id)
    remove(tmp)
    base_dir = os.path.join(rel_dir, base)
    copy_tree(base_dir, tmp, link=True)
    strip_ignored(tmp)
    apply_updates(tmp, source_dir, changes)
    link_shared(tmp, uid, gid, login_plugin_src, pressluft_dropin(base_dir))
    own_tree(tmp, uid, gid)
    return tmp


# --- plan (dry run) ---------------------------------------------------------------------------
def plan(root, release_id, source_type, source_ref, login_plugin_src=None):
    """What a deploy would change, without touching the environment: the source is fetched and
    the release built in a scratch directory under tmp/, compared with the current release, and
    removed."""
    cur = current_release(root)
    if cur is None or not is_complete(root, cur):
        raise ReleaseError("RELEASE_INVALID", "the environment has no current release")
    uid, gid = owner_of(root)
    work = tempfile.mkdtemp(prefix="pressluft-plan-", dir=os.path.join(root, "tmp"))
    try:
        content, info = fetch(source_type, source_ref, work)
        kind = classify(content)
        scratch = os.path.join(work, "release")
        if kind == "root":
            copy_tree(content, scratch)
            strip_ignored(scratch)
        else:
            copy_tree(os.path.join(root, "releases", cur), scratch, link=True)
            strip_ignored(scratch)
            apply_overlay(content, scratch)
        d = diff(os.path.join(root, "releases", cur), scratch)
        return {"current_release": cur, "kind": kind, "source": info, "files": d}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plan_update(root, scope, source_dir):
    cur = current_release(root)
    if cur is None or not is_complete(root, cur):
        raise ReleaseError("RELEASE_INVALID", "the environment has no current release")
    return {"current_release": cur, "scope": scope,
            "components": update_changes(os.path.join(root, "releases", cur), source_dir, scope)}


if __name__ == "__main__":
    import sys
    # python3 - plan <sites_root> <site_id> <env_id> <release_id> <source_type> <source_ref>
    # python3 - plan-update <sites_root> <site_id> <env_id> <scope> <update_source_dir>
    try:
        if len(sys.argv) == 7 and sys.argv[1] == "plan-update":
            _, _, sites_root, site, env, scope, src_dir = sys.argv
            print(json.dumps({"ok": True, "plan": plan_update(env_root(sites_root, site, env), scope, src_dir)}))
            sys.exit(0)
        if len(sys.argv) != 8 or sys.argv[1] != "plan":
            raise ReleaseError("RELEASE_INVALID", "usage: plan SITES_ROOT SITE ENV RELEASE TYPE REF")
        _, _, sites_root, site, env, rid, stype, sref = sys.argv
        result = plan(env_root(sites_root, site, env), rid, stype, sref)
        print(json.dumps({"ok": True, "plan": result}))
    except ReleaseError as exc:
        print(json.dumps({"ok": False, "error_code": exc.code, "error": exc.message}))
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"ok": False, "error_code": "RELEASE_INVALID", "error": "%s: %s" % (type(exc).__name__, exc)}))
