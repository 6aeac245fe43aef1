#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: converge one WordPress environment on a node in a single module run.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_environment
short_description: Converge (or remove) one Pressluft WordPress environment on a node
description:
  - Runs on the node as root and converges, in one process, everything an environment needs
    (spec node-runtime §2, §3, §7) - or removes all of it with I(state=absent).
  - The Linux user, the PHP-FPM pool and the nginx server block are named deterministically from
    the ids, so a rerun after a crash converges onto the same names and never duplicates.
  - "Linux user (and PHP-FPM pool name): C(pl_) followed by the last 16 hex digits of the
    environment id without dashes, lower case (19 characters). The first hex digits of a UUIDv7 are
    its timestamp and repeat for ids created close together; the last 16 are random."
  - "I(state=present): user (own group, no login shell, home = environment root); environment root
    C(<sites_root>/<site_id>/<environment_id>/) (owner the user, group www-data, 2750) with
    C(releases/), C(current), C(shared/uploads), C(shared/wp-config.php), C(tmp/); site directory
    0711; a first release copied from I(wordpress_source_dir) when C(current) is missing (the
    node's spare copy, C(<sites_root>/.pressluft-spare/), when one of the current source is there:
    one rename instead of the copy; a run that made a first release starts a detached, niced
    process that makes the next spare after it - module_utils/pressluft_spare; fact
    C(release_core) spare or copy); MariaDB
    database and user (mariadb client as root over the unix socket); hardened PHP-FPM pool;
    nginx server block for the preview host. Changed nginx / PHP-FPM configuration is checked with
    C(nginx -t) / C(php-fpmX.Y -t) and rolled back when invalid."
  - "I(state=absent): removes the server block(s), the pool, the database and its user, the Redis
    keys with the environment's prefix, the files and the Linux user. Tolerates a create that never
    ran or stopped half-way."
  - Reports C(reload_nginx) / C(reload_php_fpm) so the playbook can notify its handlers. Exception:
    with I(state=absent), PHP-FPM keeps (and respawns) the workers of a removed pool until it is
    reloaded, and the Linux user cannot be removed while they run; the module then reloads PHP-FPM
    itself (C(service phpX.Y-fpm reload)), waits for the workers to end and reports
    C(reload_php_fpm=false).
  - "With I(reload=true) (state=present) the module reloads what changed itself, under the node's
    config lock right after its files passed C(nginx -t) / C(php-fpmX.Y -t): nginx
    (C(nginx -s reload), or C(service nginx start) when it is not running) and PHP-FPM
    (C(service phpX.Y-fpm reload)), and reports C(reload_nginx) / C(reload_php_fpm) false - no
    handler runs. A reload still to do is recorded in C(/var/lib/pressluft/pending/) first and
    cleared after it, so a run killed in between reloads on the next run."
  - "With I(install=true) it then installs WordPress through the PHP helper (C(install), run as the
    environment's user with the pool's PHP CLI, the admin password on stdin), unless the database
    already holds an installed WordPress; the helper's (secret-free) JSON result is reported as
    C(wordpress_install). It never fails the task by itself."
  - "With I(health_check=true) it finally runs the health checks of spec node-runtime §10, exactly as
    the C(pressluft_health) module does (HTTP through the node's nginx with the URL's Host header,
    the helper's C(is-installed) beside it, which proves the database reachable with the
    environment's credentials, C(db-ping) only to name the cause when it fails; each with a
    timeout and one retry; module_utils/pressluft_checks.wordpress_checks),
    after waiting (at most 5 s each) for a just reloaded nginx to serve the host and for the pool's
    socket. Reports C(healthy), C(health_url), C(health_checks), C(health_checked_at) in the facts
    and C(health_error) (the failed checks) in the result; the task does not fail when unhealthy."
options:
  state: {type: str, choices: [present, absent], default: present}
  site_id: {type: str, required: true, description: UUID of the site}
  environment_id: {type: str, required: true, description: UUID of the environment}
  environment_root:
    type: str
    description: Must equal C(<sites_root>/<site_id>/<environment_id>) when given.
  sites_root: {type: str, default: /var/www/sites}
  environment_type: {type: str, default: production}
  preview_url: {type: str, description: Required for state=present (WP_HOME / WP_SITEURL).}
  preview_host: {type: str, description: Defaults to the host of I(preview_url).}
  php_version: {type: str, description: "X.Y; empty: detected from /etc/php/*/fpm."}
  db_name: {type: str, description: "Default: the Linux user name."}
  db_user: {type: str, description: "Default: the Linux user name."}
  db_password: {type: str, no_log: true, description: Required for state=present.}
  redis_prefix: {type: str, description: "Default: pressluft_<environment_id>:"}
  site_url:
    type: str
    description: >-
      The URL WordPress must have as C(home) / C(siteurl) (and C(WP_HOME) / C(WP_SITEURL)), e.g.
      C(https://shop.example.test); scheme, host and optional port only. Default I(preview_url).
      After the install step the raw C(home) option is compared with it (a trailing slash ignored);
      when it differs the helper's serialized-safe C(search-replace) rewrites the old URL to it in
      the whole database, C(home) / C(siteurl) are set, and the environment's Redis keys (its prefix)
      and page cache are emptied.
  domains:
    type: list
    elements: dict
    default: []
    description: >-
      Custom domains served by this environment's server block file, each C({id, hostname, primary,
      www_redirect, tls}). C(tls) means the certificate is installed at
      C(<tls_dir>/<id>/fullchain.pem) and C(privkey.pem) (domain-add); when both files are there the
      domain gets a 443 block (HTTP redirects to HTTPS), otherwise only a port-80 block (ACME
      challenge + site or redirect) and its id is reported in C(domains_without_certificate).
      The primary domain serves the site, the others answer 301 to I(site_url).
  fastcgi_cache_ttl_seconds: {type: int, default: 3600, description: "1..604800: fastcgi_cache_valid and inactive"}
  fastcgi_cache_enabled: {type: bool, default: false}
  redis_cache_enabled: {type: bool, default: false, description: "WP_REDIS_DISABLED = not enabled; places Pressluft's object-cache drop-in (removes it when false)"}
  object_cache_src: {type: str, default: /usr/local/lib/pressluft/pressluft-object-cache.php}
  tls_dir: {type: str, default: /etc/pressluft/tls}
  wordpress_source_dir: {type: str, default: /usr/share/wordpress}
  login_plugin_src: {type: str, default: /usr/local/lib/pressluft/pressluft-login.php}
  table_prefix: {type: str, default: wp_}
  fpm_max_children: {type: int, default: 5}
  client_max_body_size_mb: {type: int, default: 64}
  reload: {type: bool, default: false, description: "state=present: reload nginx / PHP-FPM here instead of in handlers"}
  install: {type: bool, default: false, description: "state=present: install WordPress through the helper"}
  site_title: {type: str, description: "Blog title at install (required with install)"}
  wp_admin_login: {type: str, description: "Administrator login (required with install)"}
  wp_admin_email: {type: str, description: "Administrator e-mail (required with install)"}
  wp_admin_password: {type: str, no_log: true, description: "Administrator password (required with install; stdin of the helper)"}
  health_check: {type: bool, default: false, description: "state=present: run the health checks after everything else"}
  health_url: {type: str, description: "URL to check; default I(site_url). Certificates are not verified (test CAs)"}
  health_timeout: {type: float, default: 10}
  health_retries: {type: int, default: 1}
  helper: {type: str, default: /usr/local/lib/pressluft/pressluft-helper.php}
  source_environment_id: {type: str, description: "state=present: clone this environment (same node) into this one while it holds no installed WordPress (see clone_source); reports cloned_from, clone_timings_ms"}
  source_environment_root: {type: str, description: "with source_environment_id: its root, <sites_root>/<site>/<source id>"}
  source_db_name: {type: str, description: "with source_environment_id: its database"}
  source_site_url: {type: str, description: "with source_environment_id: the URL it serves WordPress on (rewritten to site_url)"}
  clone_tablespace_max_bytes:
    type: int
    default: 1073741824
    description: "with source_environment_id: a source database up to this size is copied as InnoDB tablespaces
      (writes to the source wait while its files are copied; module_utils/pressluft_dbcopy); larger ones, and
      with 0 every one, by mariadb-dump --single-transaction | mariadb. Fact clone_database: method, reason, locked_ms"
  drift_baseline_preset: {type: str, choices: [content-protect, commerce-protect], description: "with source_environment_id (production): report the source's overwritable data for this preset, as the clone copied it, as drift_baseline (drift_baseline_skipped once cloned)"}
"""

RETURN = r"""
reload_nginx: {type: bool, description: nginx configuration changed}
reload_php_fpm: {type: bool, description: PHP-FPM configuration changed (or a removed pool still runs)}
php_version: {type: str}
linux_user: {type: str}
timings_ms: {type: dict, description: milliseconds per step (diagnostics)}
healthy: {type: bool, description: with health_check - all checks passed}
health_error: {type: str, description: with health_check and unhealthy - the failed checks and why}
pressluft_facts: {type: dict, description: facts for the control plane (no secrets)}
"""

import atexit
import concurrent.futures
import fcntl
import glob
import grp
import hashlib
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_checks import (
    helper_user_argv, http_get, last_json_line, run_helper, run_lean_helper, wait_for_nginx, wordpress_checks)
from ansible.module_utils import pressluft_dbcopy as dbcopy
from ansible.module_utils import pressluft_fastcgi as fastcgi
from ansible.module_utils import pressluft_promote as promote
from ansible.module_utils.pressluft_spare import spawn_filler, take_spare

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
DB_IDENT_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
PHP_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+$")
SALT_NAMES = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
              "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")
SALT_ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                 "!#$%&()*+,-./:;<=>?@[]^_`{|}~")
WEB_GROUP = "www-data"
NGINX_DIR = "/etc/nginx/sites-enabled"
FASTCGI_CACHE_DIR = "/var/cache/nginx/pressluft"
MANAGED = "Managed by Pressluft (pressluft_environment); changes are overwritten."
CONFIG_LOCK = "/run/lock/pressluft-config.lock"
# A reload this module asks for is recorded here before the handler runs, and the handler removes
# the marker after reloading: a run that dies in between (control plane killed, SSH dropped)
# leaves the marker, and the next run reloads even though no file changes any more.
PENDING_DIR = "/var/lib/pressluft/pending"
DISABLE_FUNCTIONS = "exec,passthru,shell_exec,system,proc_open,popen"
# Not copied into a release (rsync-style paths relative to the WordPress source).
RELEASE_EXCLUDE = ("wp-config.php", ".htaccess", "wp-content/uploads")
COPY_WORKERS = 3
# A custom domain: lower-case DNS name with at least two labels, the last not numeric (no IP
# addresses); a leading `*.` only for TLS domains (checked separately).
DOMAIN_RE = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                       r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ACME_WEBROOT = "/var/www/acme"
# Pressluft's object-cache drop-in carries this marker; only such a file is ever removed.
DROPIN_MARKER = b"Pressluft object-cache drop-in (pressluft-object-cache)"
# In the environment root: written after a successful clone (never clone again) / while one runs.
CLONE_MARKER = ".pressluft-cloned"
CLONE_PENDING = ".pressluft-clone-pending"
HSTS = 'add_header Strict-Transport-Security "max-age=31536000" always;'


class Failure(Exception):
    pass


def php_str(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_str(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_like_escape(name):
    """Database name as stored in mysql.db for a grant on the escaped name (`_` is a wildcard)."""
    return name.replace("_", "\\_")


def sha256(data):
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


class Env:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.check = module.check_mode
        self.changes = []
        self.reload_nginx = False
        self.reload_php_fpm = False
        self.pending_carried = False
        self.nginx_tested = False
        self.reloaded = []
        self.timings = {}
        self.spare_wanted = False
        self.release_core = None
        self._validate_and_derive()

    # ------------------------------------------------------------------ names ---------------
    def _validate_and_derive(self):
        p = self.p
        for key in ("site_id", "environment_id"):
            if not UUID_RE.match(p[key] or ""):
                raise Failure("%s must be a UUID, got %r" % (key, p[key]))
        self.site_id = p["site_id"].lower()
        self.env_id = p["environment_id"].lower()
        hexid = self.env_id.replace("-", "")
        self.user = "pl_" + hexid[-16:]
        sites_root = os.path.normpath(p["sites_root"])
        if not sites_root.startswith("/") or sites_root == "/":
            raise Failure("sites_root must be an absolute path below /")
        self.site_dir = os.path.join(sites_root, self.site_id)
        self.root = os.path.join(self.site_dir, self.env_id)
        if p["environment_root"] and os.path.normpath(p["environment_root"]) != self.root:
            raise Failure("environment_root %r differs from the derived %r" % (p["environment_root"], self.root))
        self.db_name = p["db_name"] or self.user
        self.db_user = p["db_user"] or self.user
        for key, value in (("db_name", self.db_name), ("db_user", self.db_user)):
            if not DB_IDENT_RE.match(value):
                raise Failure("%s must match %s" % (key, DB_IDENT_RE.pattern))
        if not re.match(r"^[A-Za-z0-9_]{1,32}$", p["table_prefix"]):
            raise Failure("table_prefix must match [A-Za-z0-9_]{1,32}")
        self.redis_prefix = p["redis_prefix"] or "pressluft_%s:" % self.env_id
        if not re.match(r"^[A-Za-z0-9_:.-]{1,128}$", self.redis_prefix):
            raise Failure("redis_prefix has unexpected characters")
        self.nginx_conf = os.path.join(NGINX_DIR, "pressluft-env-%s.conf" % self.env_id)
        self.cache_dir = os.path.join(FASTCGI_CACHE_DIR, self.env_id)
        self.fpm_socket = "/run/php/pressluft-%s.sock" % self.user
        self.gecos = "Pressluft environment %s" % self.env_id

    def change(self, what):
        self.changes.append(what)

    def timed(self, name, fn, *args):
        started = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.timings[name] = int((time.monotonic() - started) * 1000)

    # ------------------------------------------------------------------ helpers -------------
    def run(self, argv, data=None, check=True, env=None):
        proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise Failure("%s failed (rc=%d): %s" % (argv[0], proc.returncode,
                                                     (proc.stderr or proc.stdout).strip()[-1500:]))
        return proc

    def ensure_dir(self, path, mode, uid, gid):
        created = False
        if not os.path.isdir(path) or os.path.islink(path):
            if os.path.lexists(path):
                raise Failure("%s exists and is not a directory" % path)
            if self.check:
                return True
            os.mkdir(path, 0o700)
            created = True
        st = os.lstat(path)
        changed = created
        if (st.st_uid, st.st_gid) != (uid, gid):
            if not self.check:
                os.chown(path, uid, gid)
            changed = True
        if changed or stat.S_IMODE(st.st_mode) != mode:
            if not self.check:
                os.chmod(path, mode)
            changed = changed or stat.S_IMODE(st.st_mode) != mode
        return changed

    def write_file(self, path, content, mode, uid=0, gid=0):
        """Atomically converge a file. Returns (changed, previous content or None)."""
        data = content.encode("utf-8")
        old = None
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as fh:
                old = fh.read()
            st = os.stat(path)
            if old == data and stat.S_IMODE(st.st_mode) == mode and st.st_uid == uid and st.st_gid == gid:
                return False, old
        if self.check:
            return True, old
        directory = os.path.dirname(path)
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
        return True, old

    def restore_file(self, path, old):
        if old is None:
            if os.path.lexists(path):
                os.unlink(path)
        else:
            with open(path, "wb") as fh:
                fh.write(old)

    def ensure_symlink(self, path, target):
        if os.path.islink(path) and os.readlink(path) == target:
            return False
        if self.check:
            return True
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        tmp = "%s.pressluft-tmp" % path
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, path)
        return True

    def remove_path(self, path):
        if not os.path.lexists(path):
            return False
        if not self.check:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return True

    # ------------------------------------------------------------------ PHP version ---------
    def php_version(self):
        wanted = (self.p["php_version"] or "").strip()
        if wanted:
            if not PHP_VERSION_RE.match(wanted):
                raise Failure("php_version must look like 8.2, got %r" % wanted)
            if not os.path.isdir("/etc/php/%s/fpm/pool.d" % wanted):
                raise Failure("PHP-FPM %s is not installed (/etc/php/%s/fpm/pool.d missing)" % (wanted, wanted))
            return wanted
        return detect_php_version()

    # ------------------------------------------------------------------ present -------------
    def present(self):
        p = self.p
        if not p["preview_url"]:
            raise Failure("preview_url is required for state=present")
        url = urlsplit(p["preview_url"])
        if url.scheme not in ("http", "https") or not url.hostname:
            raise Failure("preview_url must be an http(s) URL")
        self.preview_url = p["preview_url"].rstrip("/")
        self.preview_host = (p["preview_host"] or url.hostname).lower()
        if not HOST_RE.match(self.preview_host):
            raise Failure("preview_host %r is not a valid host name" % self.preview_host)
        if p["db_password"] is None or p["db_password"] == "":
            raise Failure("db_password is required for state=present")
        self._validate_web()
        src = p["wordpress_source_dir"]
        if not os.path.isfile(os.path.join(src, "wp-load.php")):
            raise Failure("wordpress_source_dir %s holds no WordPress (wp-load.php missing)" % src)
        if not os.path.isfile(p["login_plugin_src"]):
            raise Failure("%s missing: run node-provision first" % p["login_plugin_src"])
        self.php = self.php_version()
        self.pool_conf = "/etc/php/%s/fpm/pool.d/%s.conf" % (self.php, self.user)

        uid, gid = self.timed("user", self.ensure_user)
        web_gid = grp.getgrnam(WEB_GROUP).gr_gid
        self.uid, self.web_gid = uid, web_gid
        self.timed("directories", self.ensure_tree, uid, web_gid)
        self.timed("database", self.ensure_database)
        # a clone's database copy and uploads rsync (the longest part of its run) start as soon as
        # the database exists, beside the rest of the set-up
        self.timed("clone_begin", self.clone_begin)
        # The copy of a first release (cp processes) runs while wp-config and the pool / server
        # block (tested, reloaded) are converged: nginx serves the new host from `current` only
        # once the release is complete (404 until then).
        started = time.monotonic()
        copy = self.begin_release(uid, web_gid)
        try:
            self.timed("wp_config", self.ensure_wp_config, uid, web_gid)
            pool = self.render_pool()
            nginx = self.render_nginx()
            self.timed("config", self.converge_config, pool, nginx)
            self.pool_text, self.nginx_text = pool, nginx
            release = self.finish_release(copy, uid, web_gid)
            self.timed("object_cache", self.converge_dropin, release)
        finally:
            if copy["copy"] is not None:
                # never leave cp running behind a failure (the .tmp- copy is removed next run)
                finish_copy(copy["copy"])
            self.timings["release"] = int((time.monotonic() - started) * 1000)
        return release

    def _validate_web(self):
        """site_url, domains and the page cache TTL, checked before anything is rendered."""
        p = self.p
        self.site_url = normalize_url(p["site_url"] or self.preview_url, "site_url")
        ttl = p["fastcgi_cache_ttl_seconds"]
        if ttl is None or not 1 <= ttl <= 604800:
            raise Failure("fastcgi_cache_ttl_seconds must be between 1 and 604800, got %r" % ttl)
        self.cache_ttl = ttl
        self.tls_dir = os.path.normpath(p["tls_dir"])
        domains, names, primaries = [], {self.preview_host}, 0
        for raw in p["domains"] or []:
            d = dict(raw)
            if not UUID_RE.match(str(d.get("id") or "")):
                raise Failure("domains: id must be a UUID, got %r" % d.get("id"))
            d["id"] = d["id"].lower()
            if len(d["id"]) != 36:
                raise Failure("domains: id %r must be a UUID with dashes" % d["id"])
            host = d.get("hostname") or ""
            if not isinstance(host, str) or len(host) > 253 or not DOMAIN_RE.match(host):
                raise Failure("domains: hostname %r is not a lower-case DNS name" % host)
            for key in ("primary", "www_redirect", "tls"):
                d[key] = bool(d.get(key))
            if host.startswith("*."):
                if not d["tls"]:
                    raise Failure("domains: the wildcard %r needs tls" % host)
                if d["primary"] or d["www_redirect"]:
                    raise Failure("domains: the wildcard %r can be neither primary nor www_redirect" % host)
            wanted = [host] + (["www." + host] if d["www_redirect"] else [])
            for name in wanted:
                if name in names:
                    raise Failure("domains: host name %s is used twice (or is the preview host)" % name)
                names.add(name)
            primaries += d["primary"]
            if d["tls"]:
                cert_dir = os.path.join(self.tls_dir, d["id"])
                d["cert"] = os.path.join(cert_dir, "fullchain.pem")
                d["key"] = os.path.join(cert_dir, "privkey.pem")
                d["has_cert"] = os.path.isfile(d["cert"]) and os.path.isfile(d["key"])
            else:
                d["has_cert"] = False
            domains.append(d)
        if primaries > 1:
            raise Failure("domains: at most one domain can be primary")
        self.domains = domains
        self.domains_without_certificate = [d["id"] for d in domains if d["tls"] and not d["has_cert"]]

    def ensure_user(self):
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            pw = None
        if pw is not None:
            if pw.pw_gecos != self.gecos:
                raise Failure("user %s exists but does not belong to environment %s (gecos %r)"
                              % (self.user, self.env_id, pw.pw_gecos))
            return pw.pw_uid, pw.pw_gid
        self.change("user %s created" % self.user)
        if self.check:
            return 0, 0
        try:
            grp.getgrnam(self.user)
            group_args = ["--gid", self.user]
        except KeyError:
            group_args = ["--user-group"]
        self.run(["useradd", "--no-create-home", "--home-dir", self.root, "--shell", "/usr/sbin/nologin",
                  "--comment", self.gecos] + group_args + [self.user])
        pw = pwd.getpwnam(self.user)
        return pw.pw_uid, pw.pw_gid

    def site_owner(self):
        try:
            return pwd.getpwnam("pressluft").pw_uid, grp.getgrnam("pressluft").gr_gid
        except KeyError:
            return 0, 0

    def ensure_tree(self, uid, web_gid):
        sites_root = os.path.dirname(self.site_dir)
        if not os.path.isdir(sites_root):
            raise Failure("%s missing: run node-provision first" % sites_root)
        s_uid, s_gid = self.site_owner()
        if self.ensure_dir(self.site_dir, 0o711, s_uid, s_gid):
            self.change("site directory %s" % self.site_dir)
        for sub in ("", "releases", "shared", "shared/uploads", "tmp"):
            path = os.path.join(self.root, sub) if sub else self.root
            if self.check and not os.path.isdir(self.root):
                self.change("environment root %s" % self.root)
                return
            if self.ensure_dir(path, 0o2750, uid, web_gid):
                self.change("directory %s" % path)

    # --- database ---------------------------------------------------------------------------
    def mariadb(self, sql):
        client = shutil.which("mariadb") or shutil.which("mysql")
        if not client:
            raise Failure("the mariadb client is not installed")
        proc = self.run([client, "--protocol=socket", "--user=root", "--batch", "--skip-column-names"],
                        data=sql, check=False)
        if proc.returncode != 0:
            raise Failure("MariaDB (as root over the unix socket) failed: %s" % proc.stderr.strip()[-1000:])
        return proc.stdout

    def ensure_database(self):
        db, user, pw = self.db_name, self.db_user, self.p["db_password"]
        grant_db = sql_like_escape(db)
        privs = ("Select", "Insert", "Update", "Delete", "Create", "Drop", "Index", "Alter",
                 "Create_tmp_table", "Lock_tables", "Create_view", "Show_view", "Create_routine",
                 "Alter_routine", "Execute", "Event", "Trigger")
        priv_cond = " AND ".join("%s_priv='Y'" % p for p in privs)
        out = self.mariadb(
            "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s),"
            " (SELECT COUNT(*) FROM mysql.user WHERE User=%s AND Host='localhost'),"
            " (SELECT COUNT(*) FROM mysql.user WHERE User=%s AND Host='localhost'"
            "   AND authentication_string=PASSWORD(%s)),"
            " (SELECT COUNT(*) FROM mysql.db WHERE User=%s AND Host='localhost' AND Db=%s AND %s);\n"
            % (sql_str(db), sql_str(user), sql_str(user), sql_str(pw), sql_str(user), sql_str(grant_db), priv_cond))
        db_exists, user_exists, pw_ok, grant_ok = [int(x) for x in out.split()]
        stmts = []
        if not db_exists:
            stmts.append("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;" % db)
            self.change("database %s created" % db)
        if not user_exists:
            stmts.append("CREATE USER IF NOT EXISTS %s@'localhost' IDENTIFIED BY %s;" % (sql_str(user), sql_str(pw)))
            self.change("database user %s created" % user)
        elif not pw_ok:
            stmts.append("ALTER USER %s@'localhost' IDENTIFIED BY %s;" % (sql_str(user), sql_str(pw)))
            self.change("database user %s password set" % user)
        if not grant_ok:
            stmts.append("GRANT ALL PRIVILEGES ON `%s`.* TO %s@'localhost';" % (grant_db, sql_str(user)))
            self.change("database grant %s -> %s" % (user, db))
        if stmts and not self.check:
            self.mariadb("\n".join(stmts) + "\nFLUSH PRIVILEGES;\n")
        # WordPress installed = its options table holds a siteurl (what is_blog_installed() asks);
        # lets the playbook skip the helper's install on reruns
        self.wordpress_installed = False
        if db_exists:
            table = self.p["table_prefix"] + "options"
            out = self.mariadb("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s;\n"
                               % (sql_str(db), sql_str(table)))
            if int(out.strip() or 0):
                out = self.mariadb("SELECT COUNT(*) FROM `%s`.`%s` WHERE option_name='siteurl' AND option_value<>'';\n"
                                   % (db, table))
                self.wordpress_installed = int(out.strip() or 0) > 0

    # --- wp-config ----------------------------------------------------------------------------
    def ensure_wp_config(self, uid, web_gid):
        path = os.path.join(self.root, "shared", "wp-config.php")
        salts = {}
        if os.path.isfile(path):
            with open(path, "r", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for name, value in re.findall(r"define\(\s*'([A-Z_]+)',\s*'((?:[^'\\]|\\.)*)'\s*\)", text):
                if name in SALT_NAMES:
                    salts[name] = re.sub(r"\\(.)", r"\1", value)
        for name in SALT_NAMES:
            if len(salts.get(name, "")) < 32:
                salts[name] = "".join(secrets.choice(SALT_ALPHABET) for _ in range(64))
        p = self.p
        wp_env = {"production": "production", "staging": "staging",
                  "development": "development", "local": "local"}.get(p["environment_type"], "staging")
        lines = [
            "<?php",
            "/**",
            " * wp-config.php of Pressluft environment %s (site %s)." % (self.env_id, self.site_id),
            " * %s" % MANAGED,
            " * Salts are generated once and kept across rewrites.",
            " */",
            "define( 'DB_NAME', %s );" % php_str(self.db_name),
            "define( 'DB_USER', %s );" % php_str(self.db_user),
            "define( 'DB_PASSWORD', %s );" % php_str(p["db_password"]),
            "define( 'DB_HOST', 'localhost' );",
            "define( 'DB_CHARSET', 'utf8mb4' );",
            "define( 'DB_COLLATE', '' );",
            "",
        ]
        lines += ["define( '%s', %s );" % (n, php_str(salts[n])) for n in SALT_NAMES]
        lines += [
            "",
            "$table_prefix = %s;" % php_str(p["table_prefix"]),
            "",
            "define( 'WP_HOME', %s );" % php_str(self.site_url),
            "define( 'WP_SITEURL', %s );" % php_str(self.site_url),
            "define( 'WP_ENVIRONMENT_TYPE', %s );" % php_str(wp_env),
            "",
            "define( 'WP_REDIS_HOST', '127.0.0.1' );",
            "define( 'WP_REDIS_PORT', 6379 );",
            "define( 'WP_REDIS_DATABASE', 0 );",
            "define( 'WP_REDIS_PREFIX', %s );" % php_str(self.redis_prefix),
            "define( 'WP_CACHE_KEY_SALT', %s );" % php_str(self.redis_prefix),
            "define( 'WP_REDIS_DISABLED', %s );" % ("false" if p["redis_cache_enabled"] else "true"),
            "",
            "define( 'PRESSLUFT_SITE_ID', %s );" % php_str(self.site_id),
            "define( 'PRESSLUFT_ENVIRONMENT_ID', %s );" % php_str(self.env_id),
            "define( 'DISALLOW_FILE_EDIT', true );",
            "define( 'AUTOMATIC_UPDATER_DISABLED', true );",
            "define( 'FS_METHOD', 'direct' );",
            "define( 'WP_DEBUG', false );",
            "",
            "if ( ! defined( 'ABSPATH' ) ) {",
            "\tdefine( 'ABSPATH', dirname( __DIR__ ) . '/current/' );",
            "}",
            "require_once ABSPATH . 'wp-settings.php';",
            "",
        ]
        changed, _ = self.write_file(path, "\n".join(lines), 0o600, uid, web_gid)
        if changed:
            self.change("shared/wp-config.php written")

    # --- release ------------------------------------------------------------------------------
    def releases(self):
        rel_dir = os.path.join(self.root, "releases")
        if not os.path.isdir(rel_dir):
            return []
        return sorted(d for d in os.listdir(rel_dir)
                      if not d.startswith(".") and os.path.isdir(os.path.join(rel_dir, d)))

    def current_release(self):
        cur = os.path.join(self.root, "current")
        if not os.path.islink(cur):
            return None
        target = os.readlink(cur)
        name = os.path.basename(target.rstrip("/"))
        if target != "releases/" + name or not os.path.isfile(os.path.join(self.root, "releases", name, "wp-load.php")):
            return None
        return name

    def begin_release(self, uid, web_gid):
        """Decides the release; when a first one must be made, takes the node's spare copy of
        wordpress_source_dir (module_utils/pressluft_spare: one rename, no copy while a clone's
        database and uploads are copied beside it) or, without one, starts copying it (returns
        the copy). A new release asks for the next spare (spawned when the run ends)."""
        rel_dir = os.path.join(self.root, "releases")
        # leftovers of an interrupted copy
        if os.path.isdir(rel_dir):
            for d in os.listdir(rel_dir):
                if d.startswith(".tmp-"):
                    self.remove_path(os.path.join(rel_dir, d))
                    self.change("removed partial release %s" % d)
        copy = {"name": self.current_release(), "new": False, "copy": None, "spare": False}
        if copy["name"] is not None:
            return copy
        complete = [r for r in self.releases() if os.path.isfile(os.path.join(rel_dir, r, "wp-load.php"))]
        if complete:
            copy["name"] = complete[-1]
            return copy
        name = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        copy.update(name=name, new=True)
        self.change("release %s created from %s" % (name, self.p["wordpress_source_dir"]))
        if self.check:
            return copy
        copy["tmp"] = os.path.join(rel_dir, ".tmp-" + name)
        self.spare_wanted = True
        taken = time.monotonic()
        copy["spare"] = take_spare(os.path.dirname(self.site_dir), self.p["wordpress_source_dir"],
                                   RELEASE_EXCLUDE, copy["tmp"])
        self.timings["release_spare"] = int((time.monotonic() - taken) * 1000)
        self.release_core = "spare" if copy["spare"] else "copy"
        if not copy["spare"]:
            copy["copy"] = start_copy(self.p["wordpress_source_dir"], copy["tmp"])
        return copy

    def fill_spare(self):
        """After a run that made a new first release: the node's next spare core copy, made by a
        detached, niced process once this run is over (module_utils/pressluft_spare)."""
        if not self.spare_wanted or self.check:
            return
        self.spare_wanted = False
        try:
            spawn_filler(os.path.dirname(self.site_dir), self.p["wordpress_source_dir"], RELEASE_EXCLUDE,
                         os.path.join(self.root, "releases"))
        except OSError:
            pass  # no spare: the next new release copies

    def finish_release(self, copy, uid, web_gid):
        rel_dir = os.path.join(self.root, "releases")
        name = copy["name"]
        if copy["new"]:
            if self.check:
                return name
            if copy["copy"] is not None:
                waited = time.monotonic()
                errors = finish_copy(copy["copy"])
                self.timings["release_copy_wait"] = int((time.monotonic() - waited) * 1000)
                self.timings["release_copy"] = copy["copy"].get("copy_ms", 0)
                self.timings["release_copy_plan"] = copy["copy"].get("plan_ms", 0)
                if errors:
                    raise Failure("copying %s failed: %s" % (self.p["wordpress_source_dir"], "; ".join(errors)))
            owned = time.monotonic()
            own_tree(copy["tmp"], uid, web_gid)
            self.timings["release_own"] = int((time.monotonic() - owned) * 1000)
            self.converge_release_links(copy["tmp"], uid, web_gid)
            os.rename(copy["tmp"], os.path.join(rel_dir, name))
        if copy["new"] or self.current_release() is None:
            if self.ensure_symlink(os.path.join(self.root, "current"), "releases/" + name):
                self.change("current -> releases/%s" % name)
        self.converge_release_links(os.path.join(rel_dir, name), uid, web_gid)
        return name

    def converge_release_links(self, release, uid, web_gid):
        if self.check and not os.path.isdir(release):
            return
        if self.ensure_symlink(os.path.join(release, "wp-config.php"), "../../shared/wp-config.php"):
            self.change("wp-config.php symlink in %s" % os.path.basename(release))
        content = os.path.join(release, "wp-content")
        if not os.path.isdir(content):
            raise Failure("release %s has no wp-content" % release)
        if self.ensure_symlink(os.path.join(content, "uploads"), "../../../shared/uploads"):
            self.change("uploads symlink in %s" % os.path.basename(release))
        mu = os.path.join(content, "mu-plugins")
        if self.ensure_dir(mu, 0o2750, uid, web_gid):
            self.change("mu-plugins directory")
        with open(self.p["login_plugin_src"], "r", encoding="utf-8") as fh:
            plugin = fh.read()
        changed, _ = self.write_file(os.path.join(mu, "pressluft-login.php"), plugin, 0o640, uid, web_gid)
        if changed:
            self.change("mu-plugin pressluft-login.php")

    # --- object-cache drop-in ------------------------------------------------------------------
    def dropin_path(self, release=None):
        base = os.path.join(self.root, "releases", release) if release else os.path.join(self.root, "current")
        return os.path.join(base, "wp-content", "object-cache.php")

    def converge_dropin(self, release):
        """Pressluft's drop-in as wp-content/object-cache.php of the live release when
        redis_cache_enabled, else removed (only when it is Pressluft's). A hand-deleted or edited
        drop-in is put back. Redis keys of the environment are emptied whenever the drop-in comes
        or goes: what Redis holds from before may be stale."""
        path = self.dropin_path(release)
        if self.check and not os.path.isdir(os.path.dirname(path)):
            self.dropin_present = bool(self.p["redis_cache_enabled"])
            return
        old = None
        if os.path.lexists(path):
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as fh:
                    old = fh.read()
            else:
                old = b""
        if self.p["redis_cache_enabled"]:
            src = self.p["object_cache_src"]
            if not os.path.isfile(src):
                raise Failure("%s missing: run node-provision first" % src)
            with open(src, "rb") as fh:
                content = fh.read()
            if DROPIN_MARKER not in content:
                raise Failure("%s is not Pressluft's object-cache drop-in" % src)
            if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
                self.remove_path(path)
            changed, _ = self.write_file(path, content.decode("utf-8"), 0o640, self.uid, self.web_gid)
            if changed:
                if old is None:
                    self.change("object-cache drop-in placed")
                elif DROPIN_MARKER in old:
                    self.change("object-cache drop-in restored")
                else:
                    self.change("object-cache drop-in replaced a foreign object-cache.php")
                if old is None or old != content:
                    self.drop_redis_keys()
            self.dropin_present = True
            return
        self.dropin_present = False
        if old is not None and DROPIN_MARKER in old:
            self.remove_path(path)
            self.change("object-cache drop-in removed")
            self.drop_redis_keys()

    def config_hash(self):
        """SHA-256 of the server block file + NUL + the pool file (+ NUL + wp-content/object-cache.php
        of the live release when that file exists): what the probe computes from the node."""
        data = self.nginx_text.encode("utf-8") + b"\0" + self.pool_text.encode("utf-8")
        path = self.dropin_path()
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                data += b"\0" + fh.read()
        return sha256(data)

    # --- site URL -----------------------------------------------------------------------------
    def options_table(self):
        return "`%s`.`%s`" % (self.db_name, self.p["table_prefix"] + "options")

    def raw_options(self):
        """home and siteurl as stored (None when WordPress' options table is missing)."""
        table = self.p["table_prefix"] + "options"
        out = self.mariadb("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s;\n"
                           % (sql_str(self.db_name), sql_str(table)))
        if not int(out.strip() or 0):
            return None
        out = self.mariadb("SELECT option_name, option_value FROM %s WHERE option_name IN ('home', 'siteurl');\n"
                           % self.options_table())
        values = {}
        for line in out.splitlines():
            name, _, value = line.partition("\t")
            values[name] = value
        return values

    def converge_site_url(self):
        """home / siteurl = site_url: the helper's search-replace from the old home over the whole
        database when they differ, then both options set, the Redis keys and the page cache emptied."""
        result = {"site_url": None, "site_url_changed": False, "site_url_previous": None}
        options = self.raw_options()
        if options is None or "home" not in options:
            return result  # not installed: the health check says so
        home = options.get("home", "")
        siteurl = options.get("siteurl", "")
        result["site_url"] = home.rstrip("/") or None
        want = self.site_url
        if home.rstrip("/") == want and siteurl.rstrip("/") == want:
            return result
        result.update(site_url=want, site_url_changed=True, site_url_previous=home.rstrip("/") or None)
        if self.check:
            self.change("site URL %s -> %s" % (home, want))
            return result
        old = home.rstrip("/")
        if old != want and re.match(r"^https?://[^/\s\"'<>\\]+$", old):
            self.search_replace(old, want)
        # both options exactly site_url, whatever they were
        self.mariadb("UPDATE %s SET option_value=%s WHERE option_name IN ('home', 'siteurl') AND option_value<>%s;\n"
                     % (self.options_table(), sql_str(want), sql_str(want)))
        self.change("home and siteurl set to %s" % want)
        self.drop_redis_keys()
        self.purge_page_cache()
        return result

    def search_replace(self, old, want, lean=False):
        """The helper's serialized-safe search-replace old -> want over the whole database (plain,
        JSON-escaped and URL-encoded forms), as the environment's user. `lean`: without loading
        WordPress (a clone: its caches are emptied afterwards)."""
        php = "php%s" % self.php if shutil.which("php%s" % self.php) else "php"
        args = ["search-replace", "--old", old, "--new", want]
        try:
            if lean:
                proc = run_lean_helper(self.user, php, self.p["helper"], "%s/current" % self.root,
                                       args + ["--lean"], 1800)
            else:
                proc = subprocess.run(helper_user_argv(self.user)
                                      + [php, self.p["helper"], "--path=%s/current" % self.root] + args,
                                      capture_output=True, text=True, cwd="/", timeout=1800, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failure("search-replace %s -> %s timed out" % (old, want))
        res = last_json_line(proc.stdout)
        if not isinstance(res, dict) or res.get("ok") is not True:
            detail = (res or {}).get("error") or (proc.stderr or proc.stdout).strip()[-500:]
            errors = (res or {}).get("errors") or []
            raise Failure("search-replace %s -> %s failed: %s %s" % (old, want, detail, "; ".join(errors[:5])))
        self.change("search-replace %s -> %s: %s rows, %s replacements"
                    % (old, want, res.get("rows_changed"), res.get("replacements")))
        return res

    # --- clone of a source environment ----------------------------------------------------------
    def clone_check(self):
        """The checks of a clone: (facts, None) when none runs (no source, already cloned, an
        installed WordPress, check mode), else (None, plan)."""
        p = self.p
        sid = (p["source_environment_id"] or "").strip().lower()
        if not sid:
            return {}, None
        marker = os.path.join(self.root, CLONE_MARKER)
        pending = os.path.join(self.root, CLONE_PENDING)
        if os.path.isfile(marker):
            with open(marker, "r", encoding="utf-8", errors="replace") as fh:
                done = fh.read().split()
            facts = {"cloned_from": done[0] if done else sid, "clone_skipped": "already cloned"}
            if p["drift_baseline_preset"]:
                facts["drift_baseline_skipped"] = "the environment was cloned already: its baseline stays"
            return facts, None
        if self.wordpress_installed and not os.path.exists(pending):
            return {"cloned_from": None, "clone_skipped": "WordPress already installed: never cloned over"}, None
        if not UUID_RE.match(sid) or len(sid) != 36:
            raise Failure("source_environment_id must be a UUID with dashes, got %r" % sid)
        if sid == self.env_id:
            raise Failure("an environment cannot be cloned from itself")
        src_root = os.path.normpath(p["source_environment_root"] or "")
        if (not src_root.startswith(os.path.normpath(p["sites_root"]) + "/")
                or os.path.basename(src_root) != sid):
            raise Failure("source_environment_root %r must be <sites_root>/<site>/%s" % (src_root, sid))
        src_db = p["source_db_name"] or ""
        if not DB_IDENT_RE.match(src_db) or src_db == self.db_name:
            raise Failure("source_db_name %r must be another database's name" % src_db)
        src_url = normalize_url(p["source_site_url"] or "", "source_site_url")
        src_release = os.path.realpath(os.path.join(src_root, "current"))
        if not os.path.isfile(os.path.join(src_release, "wp-load.php")):
            raise Failure("source environment %s is not ready: %s/current holds no release" % (sid, src_root))
        out = self.mariadb("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s;\n" % sql_str(src_db))
        if not int(out.strip() or 0):
            raise Failure("source environment %s is not ready: database %s missing" % (sid, src_db))
        self.change("cloned from environment %s (%s -> %s)" % (sid, src_url, self.site_url))
        if self.check:
            return {"cloned_from": sid}, None
        return None, {"sid": sid, "src_root": src_root, "src_db": src_db, "src_url": src_url,
                      "src_release": src_release, "marker": marker, "pending": pending}

    def clone_begin(self):
        """Starts the longest parts of a clone - the database copy (dump | import) and the rsync of
        the uploads - in the background as soon as this environment's user, directories and
        database exist (present() calls it right after the database step): they run while the
        release, wp-config, pool and server block are converged. CLONE_PENDING is written first.
        Nothing when no clone is due (clone_check); the subprocesses are killed when the module
        exits before clone_source() collected them (a failure elsewhere)."""
        if getattr(self, "_clone", None) is not None:
            return
        facts, plan = self.clone_check()
        if plan is None:
            self._clone = {"facts": facts}
            return
        with open(plan["pending"], "w", encoding="utf-8") as fh:
            fh.write(plan["sid"] + "\n")
        rsync = shutil.which("rsync")
        if not rsync:
            raise Failure("rsync is not installed")
        state = {"plan": plan, "t0": time.monotonic(), "procs": [], "db_error": None, "db_ms": 0,
                 "rsync": rsync, "owner": "--chown=%s:%s" % (self.user, WEB_GROUP)}
        self._clone = state
        atexit.register(self.clone_abort)
        src_uploads = os.path.join(plan["src_root"], "shared", "uploads")
        dst_uploads = os.path.join(self.root, "shared", "uploads")
        if not self.check and os.path.isdir(dst_uploads) and not os.listdir(dst_uploads):
            # A first copy into the empty directory: cp copies in the kernel (copy_file_range),
            # where rsync moves every byte through two processes and a pipe (~5x the CPU, taken
            # from the database copy beside it); owned and moded like rsync would afterwards
            # (collect_files). A rerun over a partial copy rsyncs (--delete).
            state["uploads_own"] = dst_uploads
            state["uploads"] = start(["cp", "-R", "--preserve=timestamps", "--", src_uploads + "/.", dst_uploads])
        else:
            state["uploads"] = start([rsync, "-rlt", "--delete", state["owner"], "--chmod=D2750,F640",
                                      src_uploads + "/", dst_uploads + "/"])
        state["procs"].append(state["uploads"])

        def copy_db():
            try:
                state["db_copy"] = self.copy_database(plan["src_db"], state["procs"])
            except Failure as exc:
                state["db_error"] = exc
            except Exception as exc:  # reported, never lost in the thread
                state["db_error"] = Failure("copying database %s failed: %s" % (plan["src_db"], exc))
            state["db_ms"] = int((time.monotonic() - state["t0"]) * 1000)

        state["db_thread"] = threading.Thread(target=copy_db, name="pressluft-clone-db", daemon=True)
        state["db_thread"].start()

    def clone_abort(self):
        state = getattr(self, "_clone", None) or {}
        for proc in list(state.get("procs", [])):
            if proc.poll() is None:
                try:
                    proc.kill()
                    proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass

    def clone_source(self):
        """With source_environment_id: copies the source environment's wp-content (of its current
        release; plugins, themes, mu-plugins - not Pressluft's object-cache drop-in) and shared
        uploads (rsync, owned by this environment's user) and its database (mariadb-dump
        --single-transaction --quick piped into this database, as root), then rewrites
        source_site_url to site_url with the helper's serialized-safe search-replace. This
        environment's wp-config (DB credentials, salts, Redis prefix) stays its own. The database
        copy and the uploads rsync started in clone_begin() (during the set-up of the
        environment); wp-content is copied here, into the finished release.

        Only into an environment that holds no installed WordPress: a marker (CLONE_MARKER in the
        environment root) is written after a successful clone and makes reruns skip it; a run
        that dies mid-clone leaves CLONE_PENDING, and the next run clones again (over its own
        partial copy). An installed WordPress without either marker is never cloned over.
        Returns the facts cloned_from, clone_timings_ms (and clone_skipped)."""
        self.clone_begin()
        state = self._clone
        if "facts" in state:
            return state["facts"]
        plan = state["plan"]
        timings = {}
        release = self.current_release()
        if release is None:
            self.clone_abort()
            raise Failure("no current release to clone into")
        dst_content = os.path.join(self.root, "releases", release, "wp-content")
        # the new pool compiles the release's core while the copy finishes and the URL rewrite
        # runs (the health check's first request then meets a warm OPcache)
        warm = None
        if self.p["health_check"] and "php-fpm" in self.reloaded:
            warm = threading.Thread(target=self.warm_opcache, args=(os.path.join(self.root, "releases", release),),
                                    daemon=True)
            warm.start()
        t0 = time.monotonic()
        # wp-content of the source's live release; the uploads symlink, Pressluft's drop-in and
        # this release's mu-plugin stay this environment's (excluded = also not deleted)
        content = start([state["rsync"], "-rlt", "--delete", state["owner"], "--chmod=D2750,F640",
                         "--exclude=/uploads", "--exclude=/object-cache.php",
                         "--exclude=/mu-plugins/pressluft-login.php",
                         os.path.join(plan["src_release"], "wp-content") + "/", dst_content + "/"])
        state["procs"].append(content)
        # The files are collected beside the wait for the database and the URL rewrite (which
        # needs the database only); the drift baseline's file manifest is hashed as soon as
        # wp-content is copied (it does not change any more).
        files = {}

        def collect_files():
            try:
                collect()
            except Exception as exc:  # pylint: disable=broad-except  # reported after the join
                files["error"] = "%s: %s" % (type(exc).__name__, exc)

        def collect():
            files["results"] = [finish(content)]
            files["content_ms"] = int((time.monotonic() - t0) * 1000)
            if self.p["drift_baseline_preset"] and files["results"][0][0] == 0:
                try:
                    files["manifest"] = promote.file_manifest(os.path.join(self.root, "releases", release))
                except Exception:  # pylint: disable=broad-except  # hashed again by the finish
                    pass
            files["results"].append(finish(state["uploads"]))
            if state.get("uploads_own") and files["results"][-1][0] == 0:
                own_tree(state["uploads_own"], self.uid, self.web_gid)
            files["files_ms"] = int((time.monotonic() - state["t0"]) * 1000)

        files_thread = threading.Thread(target=collect_files, name="pressluft-clone-files", daemon=True)
        files_thread.start()
        state["db_thread"].join()
        timings["database"] = state["db_ms"]
        timings["wait"] = int((time.monotonic() - t0) * 1000)
        if state["db_error"] is not None:
            raise state["db_error"]
        # The drift baseline is the imported tables before the URL rewrite: a snapshot taken now,
        # checksummed while the rewrite runs (and the copied files hashed meanwhile).
        baseline = None
        t0 = time.monotonic()
        if self.p["drift_baseline_preset"]:
            baseline = self.drift_baseline_start(plan)
        timings["drift_snapshot"] = int((time.monotonic() - t0) * 1000)
        try:
            t0 = time.monotonic()
            if plan["src_url"] != self.site_url:
                rewrite = self.search_replace(plan["src_url"], self.site_url, lean=True)
                timings["search_replace_helper"] = rewrite.get("timings_ms")
            timings["search_replace"] = int((time.monotonic() - t0) * 1000)
            files_thread.join()
            if "error" in files:
                raise Failure("copying the source's files failed: %s" % files["error"])
            timings["content"] = files["content_ms"]
            timings["files"] = files["files_ms"]
            for rc, _, err in files["results"]:
                if rc != 0:
                    raise Failure("copying the source's files failed (rsync rc=%d): %s" % (rc, err.strip()[-1000:]))
            if baseline is not None:
                t0 = time.monotonic()
                # (without a manifest - hashing failed - drift_baseline_finish hashes again and
                # reports what fails)
                baseline = self.drift_baseline_finish(baseline, os.path.join(self.root, "releases", release),
                                                      files.get("manifest"))
                timings["drift_baseline"] = int((time.monotonic() - t0) * 1000)
        finally:
            if isinstance(baseline, promote.SnapshotChecksums):
                baseline.abort()
        if warm is not None:
            warm.join(10)
        self.drop_redis_keys()
        self.purge_page_cache()
        marker = plan["marker"]
        with open(marker + ".tmp", "w", encoding="utf-8") as fh:
            fh.write("%s %s %s\n" % (plan["sid"], plan["src_url"], datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")))
        os.rename(marker + ".tmp", marker)
        os.unlink(plan["pending"])
        self.wordpress_installed = True  # the install step is skipped
        timings["total"] = int((time.monotonic() - state["t0"]) * 1000)
        facts = {"cloned_from": plan["sid"], "clone_timings_ms": timings, "clone_database": state.get("db_copy")}
        if baseline is not None:
            facts["drift_baseline"] = baseline
        return facts

    def drift_baseline_start(self, plan):
        """Starts the drift baseline: the source's (production's) overwritable data as this clone
        copied it - checksums of the freshly imported tables, read from a snapshot taken before
        the URL rewrite - the very snapshot the clone holds, so a change on production while the
        clone ran is drift later, never part of the baseline."""
        try:
            self._baseline_prefix = promote.table_prefix(plan["src_root"])
            snap = promote.SnapshotChecksums(self.db_name, self._baseline_prefix, self.p["drift_baseline_preset"])
            snap.start()
            return snap
        except promote.PromoteError as exc:
            raise Failure("recording the drift baseline failed: %s" % exc)

    def drift_baseline_finish(self, snap, release, files=None):
        """The baseline of drift_baseline_start() plus the manifest of the copied wp-content
        (`files`: computed beforehand)."""
        try:
            if files is None:
                files = promote.file_manifest(release)
            return {"preset": self.p["drift_baseline_preset"], "prefix": self._baseline_prefix,
                    "db": snap.result(), "files": files,
                    "captured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "production_environment_id": self._clone["plan"]["sid"]}
        except promote.PromoteError as exc:
            raise Failure("recording the drift baseline failed: %s" % exc)

    def copy_database(self, src_db, procs=None):
        """src_db copied into this database (as root; tables of an earlier partial clone go
        first): InnoDB tablespaces when they apply, else dump | import (module_utils/pressluft_dbcopy).
        The subprocesses are appended to `procs` (clone_abort kills them). The copy's facts."""
        try:
            return dbcopy.copy(src_db, self.db_name, procs, self.p["clone_tablespace_max_bytes"])
        except dbcopy.CopyError as exc:
            raise Failure("copying database %s failed: %s" % (src_db, exc))

    def purge_page_cache(self):
        if not os.path.isdir(self.cache_dir):
            return
        entries = os.listdir(self.cache_dir)
        if not entries:
            return
        self.change("page cache %s emptied" % self.cache_dir)
        if self.check:
            return
        for name in entries:
            path = os.path.join(self.cache_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    # --- PHP-FPM pool and nginx server block --------------------------------------------------
    def render_pool(self):
        r = self.root
        mb = self.p["client_max_body_size_mb"]
        return "\n".join([
            "; PHP-FPM pool of Pressluft environment %s (site %s)." % (self.env_id, self.site_id),
            "; %s" % MANAGED,
            "[%s]" % self.user,
            "user = %s" % self.user,
            "group = %s" % self.user,
            "listen = %s" % self.fpm_socket,
            "listen.owner = %s" % WEB_GROUP,
            "listen.group = %s" % WEB_GROUP,
            "listen.mode = 0660",
            "pm = ondemand",
            "pm.max_children = %d" % self.p["fpm_max_children"],
            "pm.process_idle_timeout = 30s",
            "pm.max_requests = 500",
            "chdir = /",
            "catch_workers_output = no",
            "security.limit_extensions = .php",
            "env[TMPDIR] = %s/tmp" % r,
            "php_admin_value[open_basedir] = %s/" % r,
            "php_admin_value[upload_tmp_dir] = %s/tmp/" % r,
            "php_admin_value[sys_temp_dir] = %s/tmp/" % r,
            "php_admin_value[session.save_path] = %s/tmp/" % r,
            "php_admin_value[disable_functions] = %s" % DISABLE_FUNCTIONS,
            "php_admin_flag[allow_url_include] = off",
            "php_admin_flag[allow_url_fopen] = on",
            "php_admin_flag[log_errors] = on",
            "php_admin_flag[display_errors] = off",
            "php_admin_value[error_log] = %s/tmp/php-error.log" % r,
            "php_admin_value[upload_max_filesize] = %dM" % mb,
            "php_admin_value[post_max_size] = %dM" % mb,
            "php_admin_value[memory_limit] = 256M",
            "",
        ])

    def render_nginx(self):
        """The environment's one server block file: the preview host, then per custom domain its
        port-80 block and (with a certificate) its 443 blocks. The site's body (root, WAF, headers,
        page cache, locations, PHP) is rendered once and shared by the preview and primary blocks."""
        p = self.p
        cache_zone = ""
        if p["fastcgi_cache_enabled"]:
            # Each environment has its own zone and directory: purging one site never touches
            # another's pages, and removing the environment removes its cache.
            cache_zone = (
                "fastcgi_cache_path %s levels=1:2 keys_zone=%s:10m max_size=256m inactive=%ds "
                "use_temp_path=off;\n" % (self.cache_dir, "pl_" + self.env_id.replace("-", ""), self.cache_ttl))
        ipv6 = os.path.exists("/proc/net/if_inet6")
        listen80 = "    listen 80;\n" + ("    listen [::]:80;\n" if ipv6 else "")
        out = ["""# nginx server block of Pressluft environment {env} (site {site}), preview host.
# {managed}
{cache_zone}server {{
{listen80}    server_name {host};
{body}}}
""".format(env=self.env_id, site=self.site_id, managed=MANAGED, cache_zone=cache_zone,
           listen80=listen80, host=self.preview_host, body=self.render_site_body())]
        if not self.domains:
            return "".join(out)
        # nginx 1.25.1 replaced `listen ... http2` with the `http2` directive
        new_http2 = nginx_version() >= (1, 25, 1)
        flag = "" if new_http2 else " http2"
        listen443 = ("    listen 443 ssl%s;\n" % flag + ("    listen [::]:443 ssl%s;\n" % flag if ipv6 else "")
                     + ("    http2 on;\n" if new_http2 else ""))
        acme = ("    location ^~ /.well-known/acme-challenge/ {\n"
                "        root %s;\n"
                "        default_type text/plain;\n"
                "        try_files $uri =404;\n"
                "    }\n" % ACME_WEBROOT)

        def block(comment, names, listen, inner):
            return "\n# %s\nserver {\n%s    server_name %s;\n%s}\n" % (comment, listen, " ".join(names), inner)

        def redirect80(target):
            return acme + "    location / {\n        return 301 %s$request_uri;\n    }\n" % target

        def tls(d):
            return ("    ssl_certificate %s;\n"
                    "    ssl_certificate_key %s;\n"
                    "    ssl_protocols TLSv1.2 TLSv1.3;\n"
                    "    ssl_prefer_server_ciphers off;\n"
                    "    ssl_session_cache shared:pressluft_tls:10m;\n"
                    "    ssl_session_timeout 1d;\n"
                    "    ssl_session_tickets off;\n"
                    "    %s\n" % (d["cert"], d["key"], HSTS))

        for d in self.domains:
            host = d["hostname"]
            www = "www." + host
            # a wildcard redirects to the name that was asked for
            canonical = "$host" if host.startswith("*.") else host
            label = "domain %s %s%s" % (d["id"], host, " (primary)" if d["primary"] else "")
            if d["tls"] and d["has_cert"]:
                out.append(block(label + ": HTTP -> HTTPS", [host] + ([www] if d["www_redirect"] else []),
                                 listen80, redirect80("https://" + canonical)))
                if d["primary"]:
                    out.append(block(label + ": HTTPS, serves the site", [host], listen443,
                                     tls(d) + self.render_site_body()))
                else:
                    out.append(block(label + ": HTTPS -> site URL", [host], listen443,
                                     tls(d) + "    return 301 %s$request_uri;\n" % self.site_url))
                if d["www_redirect"]:
                    out.append(block(label + ": HTTPS www -> HTTPS", [www], listen443,
                                     tls(d) + "    return 301 https://%s$request_uri;\n" % host))
                continue
            note = " (certificate missing: HTTP only)" if d["tls"] else ""
            if d["primary"]:
                out.append(block(label + ": HTTP, serves the site" + note, [host], listen80,
                                 self.render_site_body()))
            else:
                out.append(block(label + ": HTTP -> site URL" + note, [host], listen80,
                                 redirect80(self.site_url)))
            if d["www_redirect"]:
                out.append(block(label + ": HTTP www -> HTTP", [www], listen80, redirect80("http://" + host)))
        return "".join(out)

    def render_site_body(self):
        p = self.p
        cache = ""
        if p["fastcgi_cache_enabled"]:
            cache = """
    # FastCGI page cache (fastcgi_cache_enabled = 1); anonymous GET/HEAD only
    set $skip_cache 0;
    if ($request_method = POST) { set $skip_cache 1; }
    if ($query_string != "") { set $skip_cache 1; }
    if ($http_cookie ~* "wordpress_logged_in|comment_author|wp-postpass") { set $skip_cache 1; }
    if ($http_cookie ~* "woocommerce_items_in_cart|woocommerce_cart_hash|wp_woocommerce_session") { set $skip_cache 1; }
    if ($request_uri ~* "/wp-admin|/wp-login|/wp-cron|/xmlrpc|/wp-json|/cart|/checkout|/my-account") { set $skip_cache 1; }
    fastcgi_cache %s;
    fastcgi_cache_key "$scheme$request_method$host$request_uri";
    fastcgi_cache_valid 200 301 302 %ds;
    fastcgi_cache_bypass $skip_cache;
    fastcgi_no_cache $skip_cache;
    add_header X-FastCGI-Cache $upstream_cache_status always;
""" % ("pl_" + self.env_id.replace("-", ""), self.cache_ttl)
        return """    root {root}/current;
    index index.php index.html;
    client_max_body_size {mb}m;

    # 7G WAF: rules, operator exclusions, then enforcement
    include /etc/nginx/pressluft/7g-firewall.conf;
    include /etc/nginx/pressluft/7g-exclusions.conf;
    if ($pressluft_7g_block) {{ return 403; }}

    # add_header here stops inheritance from the http block: repeat the security headers
    include /etc/nginx/pressluft/security-headers.conf;
{cache}
    location ^~ /.well-known/acme-challenge/ {{
        root {acme};
        default_type text/plain;
        try_files $uri =404;
    }}
    # dotfiles (.git, .env, .htaccess, ...)
    location ~ /\. {{
        deny all;
    }}
    # never execute PHP from uploads
    location ~* ^/wp-content/uploads/.*\.(?:php[0-9]?|phtml|phar|pht)$ {{
        deny all;
    }}
    location ~* ^/(?:wp-config\.php|readme\.html|license\.txt)$ {{
        deny all;
    }}
    location ~* \.(?:sql|bak|old|orig|swp|log)$ {{
        deny all;
    }}
    location / {{
        try_files $uri $uri/ /index.php?$args;
    }}
    location ~ \.php$ {{
        try_files $uri =404;
        include fastcgi_params;
        fastcgi_param SCRIPT_FILENAME $realpath_root$fastcgi_script_name;
        fastcgi_param DOCUMENT_ROOT $realpath_root;
        fastcgi_param HTTP_PROXY "";
        fastcgi_pass unix:{sock};
        fastcgi_read_timeout 120s;
    }}
    location ~* \.(?:css|js|mjs|gif|jpe?g|png|webp|avif|svg|ico|woff2?|ttf)$ {{
        expires 7d;
        access_log off;
        try_files $uri =404;
    }}
""".format(root=self.root, mb=p["client_max_body_size_mb"], cache=cache, acme=ACME_WEBROOT,
           sock=self.fpm_socket)

    def converge_config(self, pool, nginx):
        # One writer at a time per node: a concurrent run must not test (and roll back) its own
        # file while another run's new file is on disk.
        with open(CONFIG_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._converge_config(pool, nginx)
            if not self.check:
                carry_pending_reloads(self)
                self.pending_carried = True
                if self.p["reload"]:
                    # under the lock: no other run's untested file is on disk now
                    started = time.monotonic()
                    self.reload_now()
                    self.timings["reload"] = int((time.monotonic() - started) * 1000)

    def reload_now(self):
        """Reloads what this run (or an interrupted one) changed; clears the pending markers."""
        if self.reload_nginx:
            if not self.nginx_tested:
                proc = self.run(["nginx", "-t", "-q"], check=False)
                if proc.returncode != 0:
                    raise Failure("nginx configuration invalid, not reloaded: %s" % proc.stderr.strip()[-1000:])
            # SIGHUP to the master = `nginx -s reload` without parsing the configuration again
            pid = master_pid("/run/nginx.pid", b"nginx: master process")
            if pid:
                os.kill(pid, signal.SIGHUP)
            else:
                self.run(["service", "nginx", "start"])
            clear_pending("nginx", self.env_id)
            self.reload_nginx = False
            self.reloaded.append("nginx")
            self.change("nginx reloaded")
        if self.reload_php_fpm:
            # SIGUSR2 to the master = `service phpX.Y-fpm reload` (what its init script and systemd
            # unit send); a master that is not running is started
            pid = master_pid("/run/php/php%s-fpm.pid" % self.php, b"php-fpm: master process")
            if pid:
                os.kill(pid, signal.SIGUSR2)
            else:
                self.run(["service", "php%s-fpm" % self.php, "start"])
            clear_pending("php-fpm", self.env_id)
            self.reload_php_fpm = False
            self.reloaded.append("php-fpm")
            self.change("PHP-FPM reloaded")

    # ------------------------------------------------------------------ WordPress install -----
    def install_wordpress(self):
        """The helper's install as the environment's user; its JSON result (never fails the task)."""
        p = self.p
        if self.wordpress_installed:
            return {"ok": True, "installed": True, "changed": False, "skipped": True}
        if self.check:
            return {"ok": True, "installed": False, "changed": True, "check_mode": True}
        argv = ["runuser", "-u", self.user, "--", "php%s" % self.php, p["helper"],
                "--path=%s/current" % self.root, "install",
                "--title=%s" % (p["site_title"] or ""), "--admin-user=%s" % (p["wp_admin_login"] or ""),
                "--admin-email=%s" % (p["wp_admin_email"] or ""), "--url=%s" % self.site_url]
        try:
            proc = subprocess.run(argv, input=p["wp_admin_password"] or "", capture_output=True, text=True,
                                  cwd="/", timeout=600)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "the helper's install timed out"}
        result = last_json_line(proc.stdout)
        if result is None:
            return {"ok": False, "error": "no JSON result from the helper"}
        if result.get("changed") is True:
            self.change("WordPress installed")
        return result

    def warm_up(self):
        """One request to the new pool (see main); errors are ignored, the health check judges."""
        started = time.monotonic()
        try:
            if "nginx" in self.reloaded:
                wait_for_nginx(self.preview_url, "127.0.0.1", 5.0)
            deadline = time.monotonic() + 5
            while not os.path.exists(self.fpm_socket) and time.monotonic() < deadline:
                time.sleep(0.02)
            http_get(self.preview_url, "127.0.0.1", 10, False)
        except Exception:  # pylint: disable=broad-except
            pass
        self.timings["warm_up"] = int((time.monotonic() - started) * 1000)

    def warm_opcache(self, release):
        """Compiles the release's WordPress core (nothing is executed) into the OPcache of this
        environment's new pool,
        through its socket (pressluft_fastcgi.warm_opcache): the health check's first request then
        does not compile them. Runs beside the clone's URL rewrite; a request through WordPress
        instead could write the source's URL back (its options are not rewritten yet) or call the
        source's wp-cron. Errors are ignored: the health check judges."""
        started = time.monotonic()
        deadline = time.monotonic() + 5
        while not os.path.exists(self.fpm_socket) and time.monotonic() < deadline:
            time.sleep(0.02)
        files = fastcgi.warm_opcache(self.fpm_socket, os.path.realpath(release), os.path.join(self.root, "tmp"),
                                     os.path.join(self.root, "current"), 20)
        if files is not None:
            self.timings["opcache_files"] = files
        self.timings["opcache_warm"] = int((time.monotonic() - started) * 1000)

    # ------------------------------------------------------------------ health ----------------
    def health(self, url):
        """The checks of pressluft_health (spec §10), run right after this run's changes."""
        p = self.p
        timeout = p["health_timeout"]
        if "nginx" in self.reloaded:
            # nginx applies a reload asynchronously: until it does, the host meets the default
            # server, which closes the connection. Wait (bounded) for any answer for the host.
            wait_for_nginx(url, "127.0.0.1", 5.0)
        if os.path.exists(self.pool_conf):
            # a PHP-FPM reload brings the pool's socket up asynchronously
            deadline = time.monotonic() + 5
            while not os.path.exists(self.fpm_socket) and time.monotonic() < deadline:
                time.sleep(0.02)
        php = "php%s" % self.php
        if not shutil.which(php):
            php = "php"
        current = os.path.join(self.root, "current")
        # through this node's nginx with the URL's Host / SNI; the chain is not verified (a
        # certificate from a test CA, or one not trusted by this node, still serves the site)
        return wordpress_checks(url, "127.0.0.1", timeout, False, p["health_retries"],
                                lambda command: run_helper(self.user, php, p["helper"], current, command, timeout))

    def _converge_config(self, pool, nginx):
        # stale pools of this environment under other PHP versions
        for other in glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % self.user):
            if other != self.pool_conf and self.remove_path(other):
                self.change("removed stale pool %s" % other)
                self.reload_php_fpm = True
        pool_changed, pool_old = self.write_file(self.pool_conf, pool, 0o644)
        nginx_changed, nginx_old = self.write_file(self.nginx_conf, nginx, 0o644)
        if self.check:
            self.reload_php_fpm |= pool_changed
            self.reload_nginx |= nginx_changed
            if pool_changed:
                self.change("PHP-FPM pool %s" % self.pool_conf)
            if nginx_changed:
                self.change("nginx server block %s" % self.nginx_conf)
            return
        # both configuration tests side by side
        tests = {}
        if pool_changed:
            fpm = shutil.which("php-fpm%s" % self.php) or "/usr/sbin/php-fpm%s" % self.php
            tests["php-fpm"] = start([fpm, "-t"])
        if nginx_changed:
            tests["nginx"] = start(["nginx", "-t", "-q"])
        results = {name: finish(proc) for name, proc in tests.items()}
        if pool_changed:
            rc, out, err = results["php-fpm"]
            if rc != 0:
                self.restore_file(self.pool_conf, pool_old)
                if nginx_changed:
                    self.restore_file(self.nginx_conf, nginx_old)
                raise Failure("PHP-FPM rejected the pool (rolled back): %s" % (err or out).strip()[-1000:])
            self.change("PHP-FPM pool %s" % self.pool_conf)
            self.reload_php_fpm = True
        if nginx_changed:
            rc, out, err = results["nginx"]
            if rc != 0:
                self.restore_file(self.nginx_conf, nginx_old)
                raise Failure("nginx rejected the server block (rolled back): %s" % err.strip()[-1000:])
            self.nginx_tested = True
            self.change("nginx server block %s" % self.nginx_conf)
            self.reload_nginx = True

    # ------------------------------------------------------------------ absent --------------
    def absent(self):
        try:
            self.php = self.php_version()
        except Failure:
            self.php = None
        # 1. traffic: server blocks (preview and any per-domain ones of this environment)
        for path in sorted(set(glob.glob(os.path.join(NGINX_DIR, "pressluft-env-%s.conf" % self.env_id))
                               + glob.glob(os.path.join(NGINX_DIR, "pressluft-env-%s-*.conf" % self.env_id)))):
            if self.remove_path(path):
                self.change("removed %s" % path)
                self.reload_nginx = True
        # 2. PHP: pool files under every PHP version
        for path in glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % self.user):
            if self.remove_path(path):
                self.change("removed %s" % path)
                self.reload_php_fpm = True
        # 3. database and database user
        self.timed("database", self.drop_database)
        # 4. object cache keys with the environment's prefix (never FLUSHDB/FLUSHALL)
        self.timed("redis", self.drop_redis_keys)
        # 5. files (and the environment's page cache)
        if os.path.lexists(self.cache_dir):
            self.remove_path(self.cache_dir)
            self.change("removed %s" % self.cache_dir)
        if os.path.lexists(self.root):
            self.timed("files", self.remove_path, self.root)
            self.change("removed %s" % self.root)
        if os.path.isdir(self.site_dir) and not os.listdir(self.site_dir):
            if not self.check:
                os.rmdir(self.site_dir)
            self.change("removed empty site directory %s" % self.site_dir)
        # 6. PHP-FPM keeps (and respawns) the workers of a removed pool until it is reloaded, and
        #    the user cannot be removed while they run: reload here, not in a handler.
        if pool_processes(self.user) and not self.check:
            self.timed("php_fpm_reload", self.reload_fpm_now)
        # 7. Linux user
        self.timed("user", self.drop_user)

    def reload_fpm_now(self):
        versions = [self.php] if self.php else []
        versions += [d.split("/")[3] for d in glob.glob("/etc/php/*/fpm") if d.split("/")[3] not in versions]
        for ver in versions:
            proc = self.run(["service", "php%s-fpm" % ver, "reload"], check=False)
            if proc.returncode != 0:
                pidfile = "/run/php/php%s-fpm.pid" % ver
                try:
                    with open(pidfile, "r", encoding="ascii") as fh:
                        os.kill(int(fh.read().strip()), signal.SIGUSR2)
                except (OSError, ValueError):
                    continue
        deadline = time.time() + 15
        while pool_processes(self.user) and time.time() < deadline:
            time.sleep(0.1)
        self.change("reloaded PHP-FPM to stop the removed pool's workers")
        self.reload_php_fpm = False

    def drop_database(self):
        out = self.mariadb(
            "SELECT (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s),"
            " (SELECT COUNT(*) FROM mysql.user WHERE User=%s AND Host='localhost');\n"
            % (sql_str(self.db_name), sql_str(self.db_user)))
        db_exists, user_exists = [int(x) for x in out.split()]
        stmts = []
        if db_exists:
            stmts.append("DROP DATABASE IF EXISTS `%s`;" % self.db_name)
            self.change("dropped database %s" % self.db_name)
        if user_exists:
            stmts.append("DROP USER IF EXISTS %s@'localhost';" % sql_str(self.db_user))
            self.change("dropped database user %s" % self.db_user)
        if stmts and not self.check:
            self.mariadb("\n".join(stmts) + "\n")

    def drop_redis_keys(self):
        cli = shutil.which("redis-cli")
        if not cli:
            return
        base = [cli, "-h", "127.0.0.1", "-p", "6379", "-n", "0"]
        proc = self.run(base + ["--scan", "--pattern", self.redis_prefix + "*"], check=False)
        if proc.returncode != 0:
            return  # Redis down: nothing is cached there any more either
        keys = [k for k in proc.stdout.splitlines() if k.startswith(self.redis_prefix)]
        if not keys:
            return
        self.change("deleted %d Redis keys with prefix %s" % (len(keys), self.redis_prefix))
        if self.check:
            return
        for i in range(0, len(keys), 500):
            self.run(base + ["UNLINK"] + keys[i:i + 500], check=False)

    def drop_user(self):
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            return
        if pw.pw_gecos != self.gecos:
            raise Failure("user %s does not belong to environment %s (gecos %r); not removed"
                          % (self.user, self.env_id, pw.pw_gecos))
        self.change("removed user %s" % self.user)
        if self.check:
            return
        kill_user_processes(pw.pw_uid)
        self.run(["userdel", self.user])
        try:
            grp.getgrnam(self.user)
            self.run(["groupdel", self.user], check=False)
        except KeyError:
            pass


def normalize_url(url, name):
    """scheme://host[:port] (lower-case host, no path, query or credentials): safe inside nginx
    configuration (`return 301 <url>$request_uri`), PHP and SQL."""
    if not isinstance(url, str) or re.search(r"[\s\"'<>\\;{}$`]", url):
        raise Failure("%s must be an http(s) URL, got %r" % (name, url))
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise Failure("%s has an invalid port: %r" % (name, url))
    host = (parts.hostname or "").lower()
    if (parts.scheme not in ("http", "https") or not HOST_RE.match(host) or parts.username
            or parts.password or parts.query or parts.fragment or parts.path not in ("", "/")):
        raise Failure("%s must be scheme://host[:port] (http or https, no path), got %r" % (name, url))
    return "%s://%s%s" % (parts.scheme, host, "" if port is None else ":%d" % port)


def nginx_version():
    try:
        proc = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    except OSError:
        return (0, 0, 0)
    m = re.search(r"nginx/([0-9]+)\.([0-9]+)\.([0-9]+)", proc.stderr + proc.stdout)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def detect_php_version():
    versions = sorted((d.split("/")[3] for d in glob.glob("/etc/php/*/fpm/pool.d")
                       if PHP_VERSION_RE.match(d.split("/")[3])),
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


def pool_processes(user):
    """PIDs of processes titled 'php-fpm: pool <user>'."""
    pids = []
    needle = ("pool %s" % user).encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if cmd.startswith(b"php-fpm: pool ") and cmd.rstrip(b"\0 ").endswith(needle):
            pids.append(int(pid))
    return pids


def kill_user_processes(uid):
    def pids():
        out = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.stat("/proc/%s" % pid).st_uid == uid:
                        out.append(int(pid))
                except OSError:
                    pass
        return out
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 1.0)):
        found = pids()
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and pids():
            time.sleep(0.05)


def wordpress_version(release_dir):
    try:
        with open(os.path.join(release_dir, "wp-includes", "version.php"), "r", encoding="utf-8") as fh:
            m = re.search(r"\$wp_version\s*=\s*'([^']+)'", fh.read())
            return m.group(1) if m else None
    except OSError:
        return None


def start_copy(src, dst):
    """Starts copying the WordPress source to dst like `rsync -a --copy-links` with RELEASE_EXCLUDE
    (links dereferenced, times kept; owner and modes are set afterwards by own_tree), in the
    background: `cp -rL` in COPY_WORKERS threads side by side over the source's second-level
    entries, balanced by size (in WordPress wp-includes/js alone is half of it) - several times
    faster than rsync here. finish_copy() waits for it."""
    src = src.rstrip("/")
    os.mkdir(dst, 0o700)
    state = {"errors": []}

    def size(path):
        total = 0
        for root, dirs, files in os.walk(path, followlinks=True):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total

    def collect(rel, depth, items):
        for name in sorted(os.listdir(os.path.join(src, rel) if rel else src)):
            r = os.path.join(rel, name) if rel else name
            if r in RELEASE_EXCLUDE:
                continue
            path = os.path.join(src, r)
            if os.path.isdir(path) and (depth < 1 or any(e.startswith(r + "/") for e in RELEASE_EXCLUDE)):
                os.mkdir(os.path.join(dst, r), 0o700)
                collect(r, depth + 1, items)
                continue
            items.append((size(path) if os.path.isdir(path) else os.stat(path).st_size, path,
                          os.path.join(dst, rel) if rel else dst))

    def copy(batch):
        by_target = {}
        for _, path, target in batch:
            by_target.setdefault(target, []).append(path)
        for target, paths in sorted(by_target.items()):
            proc = subprocess.run(["cp", "-rL", "--preserve=timestamps", "-t", target, "--"] + paths,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            if proc.returncode != 0:
                state["errors"].append((proc.stderr or "cp failed").strip()[-1000:])
                return

    def run():
        started = time.monotonic()
        try:
            items = []
            collect("", 0, items)
            state["plan_ms"] = int((time.monotonic() - started) * 1000)
            bins = [[0, []] for _ in range(COPY_WORKERS)]
            for item in sorted(items, key=lambda i: -i[0]):
                smallest = min(bins, key=lambda b: b[0])
                smallest[0] += item[0]
                smallest[1].append(item)
            with concurrent.futures.ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
                list(pool.map(copy, [b[1] for b in bins if b[1]]))
        except Exception as exc:  # reported by finish_copy
            state["errors"].append("%s: %s" % (type(exc).__name__, exc))
        state["copy_ms"] = int((time.monotonic() - started) * 1000)

    state["thread"] = threading.Thread(target=run, name="pressluft-copy", daemon=True)
    state["thread"].start()
    return state


def finish_copy(state):
    """Waits for start_copy(); the copy errors (empty when all went well)."""
    state["thread"].join()
    return state["errors"]


def own_tree(top, uid, gid):
    """Owner uid:gid, directories 2750, files 0640; links are owned, not followed (the release
    has none: cp -L; a clone's uploads may)."""
    for root, dirs, files in os.walk(top):
        os.lchown(root, uid, gid)
        os.chmod(root, 0o2750)
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):  # os.walk lists links to directories here
                os.lchown(os.path.join(root, name), uid, gid)
        for name in files:
            path = os.path.join(root, name)
            os.lchown(path, uid, gid)
            if not os.path.islink(path):
                os.chmod(path, 0o640)


def master_pid(pidfile, title):
    """The PID in pidfile when that process is the master (its title starts with `title`)."""
    try:
        with open(pidfile, "r", encoding="ascii") as fh:
            pid = int(fh.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return pid if fh.read().startswith(title) else None
    except (OSError, ValueError):
        return None


def start(argv):
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate()
    return proc.returncode, out or "", err or ""


def pending_marker(name, env_id):
    return os.path.join(PENDING_DIR, "reload-%s-%s" % (name, env_id))


def clear_pending(name, env_id):
    try:
        os.unlink(pending_marker(name, env_id))
    except FileNotFoundError:
        pass




def carry_pending_reloads(env):
    for name, attr in (("nginx", "reload_nginx"), ("php-fpm", "reload_php_fpm")):
        # Per environment: another environment's pending reload is that environment's business.
        marker = pending_marker(name, env.env_id)
        if getattr(env, attr):
            os.makedirs(PENDING_DIR, mode=0o700, exist_ok=True)
            with open(marker, "a"):
                pass
        elif os.path.exists(marker):
            setattr(env, attr, True)
            env.change("%s reload left pending by an interrupted run" % name)


def process_age_ms():
    """Milliseconds since this process started (diagnostics: the module's start-up before main)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            started = int(fh.read().rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime", "rb") as fh:
            return int((float(fh.read().split()[0]) - started) * 1000)
    except (OSError, ValueError, IndexError):
        return None


def main():
    started_ms = process_age_ms()
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            site_id=dict(type="str", required=True),
            environment_id=dict(type="str", required=True),
            environment_root=dict(type="str"),
            sites_root=dict(type="str", default="/var/www/sites"),
            environment_type=dict(type="str", default="production"),
            preview_url=dict(type="str"),
            preview_host=dict(type="str"),
            php_version=dict(type="str"),
            db_name=dict(type="str"),
            db_user=dict(type="str"),
            db_password=dict(type="str", no_log=True),
            redis_prefix=dict(type="str"),
            fastcgi_cache_enabled=dict(type="bool", default=False),
            redis_cache_enabled=dict(type="bool", default=False),
            site_url=dict(type="str"),
            domains=dict(type="list", elements="dict", default=[], options=dict(
                id=dict(type="str", required=True),
                hostname=dict(type="str", required=True),
                primary=dict(type="bool", default=False),
                www_redirect=dict(type="bool", default=False),
                tls=dict(type="bool", default=False),
            )),
            fastcgi_cache_ttl_seconds=dict(type="int", default=3600),
            object_cache_src=dict(type="str", default="/usr/local/lib/pressluft/pressluft-object-cache.php"),
            tls_dir=dict(type="str", default="/etc/pressluft/tls"),
            wordpress_source_dir=dict(type="str", default="/usr/share/wordpress"),
            login_plugin_src=dict(type="str", default="/usr/local/lib/pressluft/pressluft-login.php"),
            table_prefix=dict(type="str", default="wp_"),
            fpm_max_children=dict(type="int", default=5),
            client_max_body_size_mb=dict(type="int", default=64),
            reload=dict(type="bool", default=False),
            install=dict(type="bool", default=False),
            site_title=dict(type="str"),
            wp_admin_login=dict(type="str"),
            wp_admin_email=dict(type="str"),
            wp_admin_password=dict(type="str", no_log=True),
            health_check=dict(type="bool", default=False),
            health_url=dict(type="str"),
            health_timeout=dict(type="float", default=10.0),
            health_retries=dict(type="int", default=1),
            helper=dict(type="str", default="/usr/local/lib/pressluft/pressluft-helper.php"),
            source_environment_id=dict(type="str"),
            source_environment_root=dict(type="str"),
            source_db_name=dict(type="str"),
            source_site_url=dict(type="str"),
            clone_tablespace_max_bytes=dict(type="int", default=dbcopy.DEFAULT_TABLESPACE_MAX_BYTES),
            drift_baseline_preset=dict(type="str", choices=["content-protect", "commerce-protect"]),
        ),
        supports_check_mode=True,
    )
    env = None
    try:
        env = Env(module)
        facts = {
            "environment_id": env.env_id,
            "site_id": env.site_id,
            "linux_user": env.user,
            "environment_root": env.root,
            "db_name": env.db_name,
            "db_user": env.db_user,
            "redis_prefix": env.redis_prefix,
        }
        if module.params["state"] == "present":
            release = env.present()
            release_dir = os.path.join(env.root, "releases", release)
            facts.update({
                "environment_present": True,
                "release": release,
                "releases": env.releases(),
                "php_version": env.php,
                "fpm_pool": env.pool_conf,
                "fpm_socket": env.fpm_socket,
                "nginx_server_block": env.nginx_conf,
                "preview_host": env.preview_host,
                "preview_url": env.preview_url,
                "fastcgi_cache_enabled": module.params["fastcgi_cache_enabled"],
                "fastcgi_cache_ttl_seconds": env.cache_ttl,
                "redis_cache_enabled": module.params["redis_cache_enabled"],
                "object_cache_dropin": env.dropin_present,
                "domains": [{k: d[k] for k in ("id", "hostname", "primary", "www_redirect", "tls", "has_cert")}
                            for d in env.domains],
                "domains_without_certificate": env.domains_without_certificate,
                "wordpress_version": wordpress_version(release_dir),
                "wordpress_installed": env.wordpress_installed,
            })
            try:
                facts["linux_uid"] = pwd.getpwnam(env.user).pw_uid
            except KeyError:
                pass
            # a clone of a source environment instead of a fresh install (only when not installed)
            facts.update(env.timed("clone", env.clone_source))
            if module.params["install"]:
                for key in ("wp_admin_login", "wp_admin_email", "wp_admin_password"):
                    if not module.params[key]:
                        raise Failure("%s is required with install=true" % key)
                warmup = None
                if (module.params["health_check"] and not module.check_mode
                        and not env.wordpress_installed and "php-fpm" in env.reloaded):
                    # The first request of a new pool compiles WordPress (~0.4 s). Do that while
                    # the install runs on the other core: the request before the install only
                    # reads (WordPress answers "not installed"), and the health check after it
                    # meets a warm pool. Its answer does not matter.
                    warmup = threading.Thread(target=env.warm_up, daemon=True)
                    warmup.start()
                facts["wordpress_install"] = env.timed("install", env.install_wordpress)
                if warmup is not None:
                    warmup.join(10)
            # after the install: WordPress' home / siteurl = site_url (search-replace when not)
            facts.update(env.timed("site_url", env.converge_site_url))
            facts["config_hash"] = env.config_hash()
        else:
            env.absent()
            facts["environment_present"] = False
        if not module.check_mode and not env.pending_carried:
            carry_pending_reloads(env)
        result = {}
        if module.params["state"] == "present" and module.params["health_check"]:
            url = module.params["health_url"] or env.site_url
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise Failure("health_url must be an http(s) URL")
            checks = env.timed("health", env.health, url)
            healthy = all(c["ok"] for c in checks.values())
            facts.update({
                "healthy": healthy,
                "health_url": url,
                "health_checks": checks,
                "health_checked_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            })
            result["healthy"] = healthy
            if not healthy:
                result["health_error"] = ", ".join(
                    "%s: %s" % (k, v["detail"]) for k, v in checks.items() if not v["ok"])
        facts["environment_changes"] = env.changes
        env.timings["module_start"] = started_ms
        env.timings["module_total"] = process_age_ms()
        facts["environment_timings_ms"] = env.timings
        if env.release_core:
            facts["release_core"] = env.release_core
        env.fill_spare()
        module.exit_json(
            changed=bool(env.changes),
            reload_nginx=env.reload_nginx,
            reload_php_fpm=env.reload_php_fpm,
            php_version=getattr(env, "php", None) or (module.params["php_version"] or None),
            linux_user=env.user,
            timings_ms=env.timings,
            pressluft_facts=facts,
            **result
        )
    except Failure as exc:
        if env is not None:
            env.fill_spare()
        # The task usually runs with no_log (it carries the DB password), which censors `msg`
        # but keeps warnings: repeat the (secret-free) reason there so operators can see it.
        module.warn("pressluft_environment failed: %s" % exc)
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
