"""Bytecode cache for Ansible's module payloads on a Pressluft node.

Installed by node-provision beside `pressluft-bytecode.pth` in the node Python's site directory,
which imports this at interpreter start. Every Ansible task runs its module from a fresh zip
(`ansible_<module>_payload.zip` in a new temp directory); zipimport never caches bytecode, so
each run compiles `ansible.module_utils.basic` and everything it pulls in (~0.2 s on a small
node) and the module with its module_utils again. This path hook gives those zips an importer
whose compiled code is kept in CACHE_DIR, keyed by the SHA-256 of the Python version's magic
number, the module's name and its source: the same source always gets the same code; a changed
source gets a new entry, never a stale one.

Only for root (Pressluft's modules run as root) and only while CACHE_DIR is a directory owned by
root that nobody else may write to; otherwise, and on any error, the zip is imported as before.
Other zips and all other imports are not touched. Nothing else is imported at interpreter start.
"""
import sys

CACHE_DIR = "/var/cache/pressluft/python"
MAX_ENTRIES = 4096
_PAYLOAD = "_payload.zip"


def _archive_of(path):
    """The Ansible payload zip a sys.path entry points into, or None."""
    end = path.find(_PAYLOAD)
    if end < 0:
        return None
    archive = path[:end + len(_PAYLOAD)]
    name = archive.rsplit("/", 1)[-1]
    return archive if name.startswith("ansible_") else None


def _cache_usable():
    import os
    import stat
    if os.geteuid() != 0:
        return False
    try:
        st = os.lstat(CACHE_DIR)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022


def _refile(code, filename):
    """The code object (and every nested one) reporting `filename`: the cached code was compiled
    from a zip in another temp directory."""
    import types
    consts = tuple(_refile(c, filename) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _hook(path):
    if _archive_of(path) is None or not _cache_usable():
        raise ImportError("not an Ansible payload")
    import zipimport

    class CachedZipImporter(zipimport.zipimporter):
        # zipimport compiles a module's source twice (find_spec asks get_filename, which compiles
        # it, and exec_module compiles it again): both answered here, from the cache.
        def get_filename(self, fullname):
            inner = self._source_of(fullname)
            return self.archive + "/" + inner if inner else super().get_filename(fullname)

        def get_code(self, fullname):
            try:
                cached = self._cached_code(fullname)
            except Exception:  # pylint: disable=broad-except  # the plain import decides
                cached = None
            return cached if cached is not None else super().get_code(fullname)

        def _source_of(self, fullname):
            """The zip entry of the module's source, or None (not found, or bytecode in the
            zip, which zipimport prefers)."""
            try:
                files = self._get_files() if hasattr(self, "_get_files") else self._files
                base = self.prefix + fullname.rpartition(".")[2]
            except Exception:  # pylint: disable=broad-except  # another zipimport: plain import
                return None
            for inner in (base + "/__init__.py", base + ".py"):
                if inner + "c" in files:
                    return None
                if inner in files:
                    return inner
            return None

        def _cached_code(self, fullname):
            import hashlib
            import importlib.util
            import marshal
            import os
            inner = self._source_of(fullname)
            if inner is None:
                return None
            source = self.get_data(inner).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            filename = self.archive + "/" + inner
            key = hashlib.sha256(importlib.util.MAGIC_NUMBER + fullname.encode() + b"\0" + source).hexdigest()
            entry = os.path.join(CACHE_DIR, key)
            try:
                with open(entry, "rb") as fh:
                    return _refile(marshal.loads(fh.read()), filename)
            except (OSError, EOFError, ValueError, TypeError):
                pass
            code = compile(source, filename, "exec", dont_inherit=True)
            try:
                if len(os.listdir(CACHE_DIR)) < MAX_ENTRIES:
                    tmp = "%s.%d.tmp" % (entry, os.getpid())
                    with open(tmp, "wb") as fh:
                        fh.write(marshal.dumps(code))
                    os.rename(tmp, entry)
            except OSError:
                pass
            return code

    return CachedZipImporter(path)


def install():
    if _hook not in sys.path_hooks:
        sys.path_hooks.insert(0, _hook)


install()
