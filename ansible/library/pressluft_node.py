#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: converge a node's shared configuration (nginx, PHP-FPM, MariaDB, Redis, helper files)
# in one module run, and report the node's facts.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_node
short_description: Converge node-wide files, directories and include lines for Pressluft
description:
  - Writes the given files (atomically, only when content, mode or owner differ), creates the given
    directories, removes the given paths and appends missing include lines, all in one process.
  - "Paths and contents may contain the placeholders C(@@PHP_VERSION@@) (the node's PHP-FPM version,
    given or detected), C(@@REDIS_MAXMEMORY@@) (I(redis_maxmemory_percent) of the node's RAM, in
    bytes), C(@@OPCACHE_MB@@) (the PHP-FPM OPcache size: a quarter of the RAM, 128 to 1024 MB) and
    C(@@PYTHON_SITE@@) (the site directory of the Python that runs the modules)."
  - Every item may name the service it affects (C(reload) = nginx, php_fpm, redis or mariadb). Changed
    nginx or PHP-FPM configuration is tested (C(nginx -t), C(php-fpmX.Y -t)) and rolled back when
    invalid. The result says which services need a reload or restart. Lines with
    C(listen [::]...) are dropped when the node has no IPv6.
  - Reports C(pressluft_facts) about the node (PHP version, OS, component versions).
options:
  php_version: {type: str, description: "X.Y; empty: detected"}
  redis_maxmemory_percent: {type: int, default: 10}
  directories: {type: list, elements: dict, default: [], description: "path, mode, owner, group"}
  files:
    type: list
    elements: dict
    default: []
    description: "path, content, mode (octal string), owner, group, reload, create_only (keep an existing file)"
  absent: {type: list, elements: dict, default: [], description: "path, reload"}
  lines: {type: list, elements: dict, default: [], description: "path, line, reload: append the line when missing"}
  wordpress_source_dir: {type: str, default: /usr/share/wordpress}
  packages:
    type: list
    elements: str
    default: []
    description: >-
      Debian packages that must be installed (checked with dpkg-query; missing ones are installed
      with apt-get, without recommends, after an apt-get update when the lists are older than a day).
"""

import fcntl
import glob
import grp
import hashlib
import os
import pwd
import re
import shutil
import site
import stat
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

RELOADS = ("", "nginx", "php_fpm", "redis", "mariadb")
HAVE_IPV6 = os.path.exists("/proc/net/if_inet6")
CONFIG_LOCK = "/run/lock/pressluft-config.lock"


class Failure(Exception):
    pass


def detect_php_version():
    versions = sorted((d.split("/")[3] for d in glob.glob("/etc/php/*/fpm/pool.d")
                       if re.match(r"^[0-9]+\.[0-9]+$", d.split("/")[3])),
                      key=lambda v: tuple(int(x) for x in v.split(".")))
    if not versions:
        raise Failure("no PHP-FPM found under /etc/php/*/fpm (install php-fpm)")
    if len(versions) == 1:
        return versions[0]
    php = shutil.which("php")
    if php:
        proc = subprocess.run([php, "-r", "echo PHP_MAJOR_VERSION.'.'.PHP_MINOR_VERSION;"],
                              capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip() in versions:
            return proc.stdout.strip()
    return versions[-1]


def mem_total_bytes():
    with open("/proc/meminfo", "r", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise Failure("cannot read MemTotal from /proc/meminfo")


def os_id():
    info = {}
    try:
        with open("/etc/os-release", "r", encoding="utf-8") as fh:
            for line in fh:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    info[k] = v.strip('"')
    except OSError:
        return None
    return "%s-%s" % (info.get("ID", "unknown"), info.get("VERSION_ID", "unknown"))


def version_of(argv, pattern):
    exe = shutil.which(argv[0])
    if not exe:
        return None
    try:
        proc = subprocess.run([exe] + argv[1:], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(pattern, proc.stdout + proc.stderr)
    return m.group(1) if m else None


def ensure_packages(wanted, check):
    """Install missing packages first: the PHP version, users and directories depend on them.
    Returns the list of changes."""
    if not wanted:
        return []
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n"] + wanted,
                          capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"))
    installed = {line.split()[0] for line in proc.stdout.splitlines()
                 if line.endswith(" install ok installed")}
    missing = [p for p in wanted if p not in installed]
    if not missing:
        return []
    changes = ["packages installed: %s" % " ".join(missing)]
    if check:
        return changes
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    stamp = "/var/lib/apt/periodic/update-success-stamp"
    lists = "/var/lib/apt/lists"
    newest = max([os.path.getmtime(x) for x in (stamp, lists) if os.path.exists(x)] or [0])
    if time.time() - newest > 86400:
        proc = subprocess.run(["apt-get", "update", "-q"] + lock, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise Failure("apt-get update failed: %s" % proc.stderr.strip()[-1000:])
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                           "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
                          + lock + missing, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise Failure("apt-get install %s failed: %s" % (" ".join(missing), (proc.stderr or proc.stdout).strip()[-1500:]))
    return changes


class Node:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.check = module.check_mode
        self.changes = []
        self.reload = {k: False for k in RELOADS if k}
        self.backups = {k: [] for k in RELOADS if k}
        self.php = (self.p["php_version"] or "").strip() or detect_php_version()
        if not re.match(r"^[0-9]+\.[0-9]+$", self.php):
            raise Failure("php_version must look like 8.2")
        pct = self.p["redis_maxmemory_percent"]
        self.redis_maxmemory = mem_total_bytes() * pct // 100
        # Every site is its own copy of WordPress for OPcache (it keys on paths): a node with
        # dozens of sites needs far more than PHP's 128 MB default, or it recompiles all the time.
        self.opcache_mb = max(128, min(1024, mem_total_bytes() // 4 // (1024 * 1024)))

    def subst(self, text):
        return (text.replace("@@PHP_VERSION@@", self.php)
                    .replace("@@REDIS_MAXMEMORY@@", str(self.redis_maxmemory))
                    .replace("@@OPCACHE_MB@@", str(self.opcache_mb))
                    .replace("@@PYTHON_SITE@@", site.getsitepackages()[0]))

    @staticmethod
    def ids(item):
        try:
            uid = pwd.getpwnam(item.get("owner") or "root").pw_uid
            gid = grp.getgrnam(item.get("group") or "root").gr_gid
        except KeyError as exc:
            raise Failure("unknown owner/group in %r: %s" % (item.get("path"), exc))
        return uid, gid

    @staticmethod
    def mode(item, default):
        value = item.get("mode")
        if value is None:
            return default
        return int(str(value), 8)

    def mark(self, item, what):
        self.changes.append(what)
        tag = item.get("reload") or ""
        if tag not in RELOADS:
            raise Failure("unknown reload tag %r" % tag)
        if tag:
            self.reload[tag] = True

    def directories(self):
        for item in self.p["directories"]:
            path = self.subst(item["path"])
            uid, gid = self.ids(item)
            mode = self.mode(item, 0o755)
            if not os.path.isdir(path):
                if self.check:
                    self.mark(item, "directory %s" % path)
                    continue
                os.makedirs(path, 0o755, exist_ok=True)
                os.chown(path, uid, gid)
                os.chmod(path, mode)
                self.mark(item, "directory %s" % path)
                continue
            st = os.stat(path)
            if (st.st_uid, st.st_gid) != (uid, gid) or stat.S_IMODE(st.st_mode) != mode:
                if not self.check:
                    os.chown(path, uid, gid)
                    os.chmod(path, mode)
                self.mark(item, "directory %s owner/mode" % path)

    def files(self):
        for item in self.p["files"]:
            path = self.subst(item["path"])
            content = self.subst(item.get("content") or "")
            if not HAVE_IPV6:
                content = "".join(l for l in content.splitlines(True) if not re.match(r"\s*listen\s+\[::\]", l))
            if content and not content.endswith("\n"):
                content += "\n"
            data = content.encode("utf-8")
            uid, gid = self.ids(item)
            mode = self.mode(item, 0o644)
            old = None
            if os.path.lexists(path):
                if os.path.islink(path) or not os.path.isfile(path):
                    raise Failure("%s exists and is not a regular file" % path)
                if item.get("create_only"):
                    continue
                with open(path, "rb") as fh:
                    old = fh.read()
                st = os.stat(path)
                if old == data and (st.st_uid, st.st_gid) == (uid, gid) and stat.S_IMODE(st.st_mode) == mode:
                    continue
            self.mark(item, "file %s" % path)
            if self.check:
                continue
            tag = item.get("reload") or ""
            if tag:
                self.backups[tag].append((path, old))
            directory = os.path.dirname(path)
            os.makedirs(directory, 0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".pressluft-", dir=directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.chown(tmp, uid, gid)
                os.chmod(tmp, mode)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise

    def absent(self):
        for item in self.p["absent"]:
            path = self.subst(item["path"])
            if not os.path.lexists(path):
                continue
            self.mark(item, "removed %s" % path)
            if self.check:
                continue
            tag = item.get("reload") or ""
            if os.path.islink(path) or not os.path.isdir(path):
                if tag:
                    self.backups[tag].append((path, ("link", os.readlink(path)) if os.path.islink(path)
                                              else open(path, "rb").read()))
                os.unlink(path)
            else:
                raise Failure("refusing to remove directory %s" % path)

    def lines(self):
        for item in self.p["lines"]:
            path = self.subst(item["path"])
            line = self.subst(item["line"]).rstrip("\n")
            if not os.path.isfile(path):
                raise Failure("%s missing (is the package installed?)" % path)
            with open(path, "rb") as fh:
                old = fh.read()
            if line.encode("utf-8") in old.splitlines():
                continue
            self.mark(item, "line %r in %s" % (line, path))
            if self.check:
                continue
            tag = item.get("reload") or ""
            if tag:
                self.backups[tag].append((path, old))
            new = old if old.endswith(b"\n") or not old else old + b"\n"
            st = os.stat(path)
            with open(path, "wb") as fh:  # in place: keeps owner and mode of the packaged file
                fh.write(new + line.encode("utf-8") + b"\n")
            os.chown(path, st.st_uid, st.st_gid)

    def rollback(self, tag):
        for path, old in reversed(self.backups[tag]):
            if old is None:
                if os.path.lexists(path):
                    os.unlink(path)
            elif isinstance(old, tuple):
                if os.path.lexists(path):
                    os.unlink(path)
                os.symlink(old[1], path)
            else:
                with open(path, "wb") as fh:
                    fh.write(old)

    def validate(self):
        if self.check:
            return
        if self.reload["php_fpm"]:
            fpm = shutil.which("php-fpm%s" % self.php) or "/usr/sbin/php-fpm%s" % self.php
            proc = subprocess.run([fpm, "-t"], capture_output=True, text=True)
            if proc.returncode != 0:
                self.rollback("php_fpm")
                raise Failure("php-fpm%s -t failed (changes rolled back): %s"
                              % (self.php, (proc.stderr or proc.stdout).strip()[-1000:]))
        if self.reload["nginx"]:
            proc = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
            if proc.returncode != 0:
                self.rollback("nginx")
                raise Failure("nginx -t failed (changes rolled back): %s" % proc.stderr.strip()[-1000:])

    def facts(self):
        wp_version = None
        try:
            with open(os.path.join(self.p["wordpress_source_dir"], "wp-includes", "version.php"),
                      "r", encoding="utf-8") as fh:
                m = re.search(r"\$wp_version\s*=\s*'([^']+)'", fh.read())
                wp_version = m.group(1) if m else None
        except OSError:
            pass
        helper = "/usr/local/lib/pressluft/pressluft-helper.php"
        helper_sha = None
        if os.path.isfile(helper):
            with open(helper, "rb") as fh:
                helper_sha = hashlib.sha256(fh.read()).hexdigest()
        return {
            "node_provisioned": True,
            "php_version": self.php,
            "php_fpm_service": "php%s-fpm" % self.php,
            "os": os_id(),
            "nginx_version": version_of(["nginx", "-v"], r"nginx/([0-9.]+)"),
            "mariadb_version": version_of(["mariadb", "--version"], r"([0-9]+\.[0-9]+\.[0-9]+)-MariaDB"),
            "redis_version": version_of(["redis-server", "--version"], r"v=([0-9.]+)"),
            "wordpress_source_version": wp_version,
            "helper_sha256": helper_sha,
            "memory_total_bytes": mem_total_bytes(),
            "redis_maxmemory_bytes": self.redis_maxmemory,
            "node_changes": self.changes,
        }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            php_version=dict(type="str"),
            redis_maxmemory_percent=dict(type="int", default=10),
            directories=dict(type="list", elements="dict", default=[]),
            files=dict(type="list", elements="dict", default=[]),
            absent=dict(type="list", elements="dict", default=[]),
            lines=dict(type="list", elements="dict", default=[]),
            wordpress_source_dir=dict(type="str", default="/usr/share/wordpress"),
            packages=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    try:
        early = ensure_packages(module.params["packages"], module.check_mode)
        node = Node(module)
        node.changes[:0] = early
        node.directories()
        with open(CONFIG_LOCK, "a") as lock:  # shared with pressluft_environment
            fcntl.flock(lock, fcntl.LOCK_EX)
            node.absent()
            node.files()
            node.lines()
            node.validate()
        module.exit_json(
            changed=bool(node.changes),
            php_version=node.php,
            reload_nginx=node.reload["nginx"],
            reload_php_fpm=node.reload["php_fpm"],
            restart_redis=node.reload["redis"],
            restart_mariadb=node.reload["mariadb"],
            pressluft_facts=node.facts(),
        )
    except Failure as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
