"""Spare WordPress core trees for the first release of a new environment (pressluft_environment).

Copying WordPress core (~60 MB, ~2,600 files) into a new environment's first release costs 0.3 s on
an idle node, but well over a second while a clone copies its database and uploads beside it: the
file copy's metadata and data writes and InnoDB's commit fsyncs queue on the same disk. So the copy
is made ahead of time instead: after a run that made a first release, a detached, niced process
copies wordpress_source_dir once more into <sites_root>/.pressluft-spare/<key>.<id> (root, 0700:
no environment's user can enter it), and the next new release of a node takes that tree with one
rename() (same file system) and gives it its owner and modes (own_tree) - the tree is then that
environment's own copy, sharing no inode with anything (no hard links: nothing changes in the
environments' isolation). <key> fingerprints the source tree (path, names, sizes and mtimes of
what the copy takes, links followed): a spare of an older or changed source is never used, and is
removed by the next fill. At most one spare per node (one lock; the filler exits when one is there).
A node without a spare (the first create, a concurrent create that lost the race, a changed source)
copies as before.

FILLER_SOURCE is both the filler program (python3 -c FILLER_BOOT SPARE_ROOT SRC EXCLUDES with the
program on stdin, run detached) and, executed here, the definitions the module uses (fingerprint): one implementation."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

SPARE_DIR = ".pressluft-spare"

FILLER_SOURCE = r'''
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time


def tree_entries(src, exclude):
    """(relative path, absolute path) of the top-level entries a release copy takes from src, and
    the directories to create for nested excludes (exclude: paths relative to src)."""
    items, mkdirs = [], []

    def walk(rel):
        for name in sorted(os.listdir(os.path.join(src, rel) if rel else src)):
            r = rel + "/" + name if rel else name
            if r in exclude:
                continue
            path = os.path.join(src, r)
            if os.path.isdir(path) and any(e.startswith(r + "/") for e in exclude):
                mkdirs.append(r)
                walk(r)
                continue
            items.append((r, path))

    walk("")
    return items, mkdirs


def fingerprint(src, exclude):
    """SHA-256 (32 hex digits) over the source path and, for everything the copy takes (links
    followed, as cp -L does), relative path, type, size and mtime."""
    h = hashlib.sha256(os.path.realpath(src).encode("utf-8", "surrogateescape") + b"\0")
    items, mkdirs = tree_entries(src, exclude)
    for r in mkdirs:
        h.update(b"D\0" + r.encode("utf-8", "surrogateescape") + b"\n")
    for r, path in items:
        if not os.path.isdir(path):
            st = os.stat(path)
            h.update(("F\0%s\0%d\0%d\n" % (r, st.st_size, st.st_mtime_ns)).encode("utf-8", "surrogateescape"))
            continue
        for root, dirs, files in os.walk(path, followlinks=True):
            dirs.sort()
            h.update(b"D\0" + os.path.relpath(root, src).encode("utf-8", "surrogateescape") + b"\n")
            for name in sorted(files):
                st = os.stat(os.path.join(root, name))
                h.update(("F\0%s\0%d\0%d\n" % (os.path.relpath(os.path.join(root, name), src), st.st_size,
                                                  st.st_mtime_ns)).encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


def fill(spare_root, src, exclude):
    """Makes one spare copy of src (unless a current one is there), niced; removes stale ones."""
    try:
        os.nice(10)
    except OSError:
        pass
    if not os.path.isdir(spare_root):
        os.mkdir(spare_root, 0o700)
    st = os.lstat(spare_root)
    if not os.path.isdir(spare_root) or os.path.islink(spare_root) or st.st_uid != 0:
        return
    os.chmod(spare_root, 0o700)
    with open(os.path.join(spare_root, ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another filler runs
        key = fingerprint(src, exclude)
        for e in os.listdir(spare_root):
            if e == ".lock" or e.startswith(key + "."):
                continue
            path = os.path.join(spare_root, e)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        if any(e.startswith(key + ".") for e in os.listdir(spare_root)):
            return
        tmp = os.path.join(spare_root, ".tmp-%d" % os.getpid())
        os.mkdir(tmp, 0o700)
        try:
            items, mkdirs = tree_entries(src, exclude)
            for r in mkdirs:
                os.mkdir(os.path.join(tmp, r), 0o700)
            by_target = {}
            for r, path in items:
                by_target.setdefault(os.path.join(tmp, os.path.dirname(r)) if "/" in r else tmp, []).append(path)
            ionice = ["ionice", "-c3"] if shutil.which("ionice") else []
            for target, paths in sorted(by_target.items()):
                subprocess.run(ionice + ["cp", "-rL", "--preserve=timestamps", "-t", target, "--"] + paths,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               check=True)
            if fingerprint(src, exclude) != key:
                raise RuntimeError("the source changed during the copy")
            os.rename(tmp, os.path.join(spare_root, "%s.%d-%d" % (key, int(time.time()), os.getpid())))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


if __name__ == "__main__":
    fill(sys.argv[1], sys.argv[2], tuple(e for e in sys.argv[3].split("\n") if e))
'''

# pressluft-spare-filler: the process reads FILLER_SOURCE from stdin and runs it as __main__
FILLER_BOOT = "import sys; exec(compile(sys.stdin.read(), 'pressluft-spare-filler', 'exec'))"

_defs = {"__name__": "pressluft_spare_filler"}
exec(compile(FILLER_SOURCE, "pressluft_spare_filler", "exec"), _defs)  # pylint: disable=exec-used
fingerprint = _defs["fingerprint"]


def spare_root(sites_root):
    return os.path.join(sites_root, SPARE_DIR)


def take_spare(sites_root, src, exclude, dst):
    """Moves a spare copy of src (current fingerprint) to dst (which must not exist, on the same
    file system). True when one was taken; False when there is none (or it cannot be used)."""
    root = spare_root(sites_root)
    try:
        st = os.lstat(root)
        entries = os.listdir(root)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or stat.S_IMODE(st.st_mode) & 0o077:
        return False
    if not any(not e.startswith(".") for e in entries):
        return False
    try:
        key = fingerprint(src, exclude)
    except OSError:
        return False
    for e in sorted(entries):
        if e.startswith(key + "."):
            try:
                os.rename(os.path.join(root, e), dst)
                return True
            except OSError:
                continue  # another run took it, or another file system
    return False


def spawn_filler(sites_root, src, exclude, releases_dir):
    """Starts the filler detached (own session, no inherited descriptors): it outlives this run and
    holds no pipe of Ansible's connection. Nothing when sites_root and releases_dir are on
    different file systems (rename() would not work)."""
    try:
        if os.stat(sites_root).st_dev != os.stat(releases_dir).st_dev:
            return False
    except OSError:
        return False
    # the program on stdin (a short command line in ps), read whole before it runs
    proc = subprocess.Popen([sys.executable or "/usr/bin/python3", "-c", FILLER_BOOT, spare_root(sites_root), src,
                             "\n".join(exclude)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            close_fds=True, start_new_session=True, cwd="/")
    try:
        proc.stdin.write(FILLER_SOURCE.encode("utf-8"))
    finally:
        proc.stdin.close()
    return True
