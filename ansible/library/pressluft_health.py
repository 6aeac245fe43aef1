#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: the health checks of spec node-runtime §10, run on the node in one module run.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_health
short_description: Health checks of one Pressluft environment (HTTP, WordPress installed, database)
description:
  - "HTTP: GET I(url) through the node's own nginx (connects to I(connect_address), sends the URL's
    Host header and SNI), following at most 5 redirects; the final answer must be 200 on the URL's
    scheme and host, with WordPress content (a Link header with rel=\"https://api.w.org/\", or a
    body referencing /wp-content/ or /wp-includes/)."
  - "WordPress installed: the PHP helper's C(is-installed), run as the environment's Linux user."
  - "Database: the PHP helper's C(db-ping) (SELECT 1 with the credentials of wp-config.php)."
  - Each check has a timeout (default 10 s) and one retry; the checks run in parallel.
    C(pressluft_facts.healthy) is true when all three pass. Never changes anything.
options:
  site_id: {type: str, required: true}
  environment_id: {type: str, required: true}
  sites_root: {type: str, default: /var/www/sites}
  url: {type: str, required: true, description: primary URL (custom domain) or preview URL}
  connect_address: {type: str, default: 127.0.0.1}
  validate_certs: {type: bool, default: true}
  timeout: {type: float, default: 10}
  retries: {type: int, default: 1}
  helper: {type: str, default: /usr/local/lib/pressluft/pressluft-helper.php}
  php: {type: str, description: "PHP CLI; default: php<X.Y> of the environment's pool, else php"}
  fail_unhealthy: {type: bool, default: false, description: fail the task when unhealthy (facts are still returned)}
  extra_facts: {type: dict, default: {}, description: facts merged into the reported pressluft_facts first}
"""

import concurrent.futures
import glob
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

from ansible.module_utils.basic import AnsibleModule

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
WP_LINK = 'rel="https://api.w.org/"'
MAX_REDIRECTS = 5


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address with the SNI / certificate name of the URL's host."""

    def __init__(self, address, port, server_name, context, timeout):
        super().__init__(address, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._ctx = context

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)


def http_get(url, address, timeout, validate_certs):
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_header = parts.hostname + ("" if parts.port is None else ":%d" % parts.port)
    if parts.scheme == "https":
        ctx = ssl.create_default_context()
        if not validate_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        conn = _SNIConnection(address, port, parts.hostname, ctx, timeout)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("GET", path, headers={"Host": host_header, "User-Agent": "Pressluft-Health/1",
                                           "Accept": "text/html,*/*", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(2 * 1024 * 1024)
        return resp.status, resp.headers, body
    finally:
        conn.close()


def check_http(url, address, timeout, validate_certs):
    start = urlsplit(url)
    current = url
    hops = []
    for _ in range(MAX_REDIRECTS + 1):
        status, headers, body = http_get(current, address, timeout, validate_certs)
        hops.append({"url": current, "status": status})
        if status in (301, 302, 303, 307, 308):
            location = headers.get("Location")
            if not location:
                return False, "redirect without Location from %s" % current, hops
            nxt = urljoin(current, location)
            n = urlsplit(nxt)
            if (n.hostname or "").lower() != (start.hostname or "").lower():
                return False, "redirected to another host: %s" % nxt, hops
            current = nxt
            continue
        final = urlsplit(current)
        if status != 200:
            return False, "HTTP %d from %s" % (status, current), hops
        if final.scheme != start.scheme:
            return False, "final URL %s is not on the scheme of %s" % (current, url), hops
        links = " ".join(headers.get_all("Link") or [])
        text = body.decode("utf-8", errors="replace")
        if WP_LINK in links or "/wp-content/" in text or "/wp-includes/" in text:
            return True, "HTTP 200 with WordPress content", hops
        return False, "HTTP 200 without WordPress content at %s" % current, hops
    return False, "more than %d redirects" % MAX_REDIRECTS, hops


def run_helper(user, php, helper, path, command, timeout):
    if shutil.which("runuser"):
        argv = ["runuser", "-u", user, "--"]
    else:
        argv = ["sudo", "-n", "-u", user, "--"]
    argv += [php, helper, "--path=" + path, command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/",
                          stdin=subprocess.DEVNULL)
    result = None
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if not isinstance(result, dict):
        return False, "no JSON result (rc=%d): %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()[-300:])
    if proc.returncode != 0 or result.get("ok") is not True:
        return False, result.get("error") or "helper failed (rc=%d)" % proc.returncode
    return True, result


def with_retry(fn, retries, delay=1.0):
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            ok, detail, *extra = fn()
        except subprocess.TimeoutExpired:
            ok, detail, extra = False, "timed out", []
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            ok, detail, extra = False, "%s: %s" % (type(exc).__name__, exc), []
        if ok or attempts > retries:
            out = {"ok": ok, "detail": detail, "attempts": attempts,
                   "elapsed_ms": int((time.monotonic() - started) * 1000)}
            if extra:
                out["hops"] = extra[0]
            return out
        time.sleep(delay)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            site_id=dict(type="str", required=True),
            environment_id=dict(type="str", required=True),
            sites_root=dict(type="str", default="/var/www/sites"),
            url=dict(type="str", required=True),
            connect_address=dict(type="str", default="127.0.0.1"),
            validate_certs=dict(type="bool", default=True),
            timeout=dict(type="float", default=10.0),
            retries=dict(type="int", default=1),
            helper=dict(type="str", default="/usr/local/lib/pressluft/pressluft-helper.php"),
            php=dict(type="str"),
            fail_unhealthy=dict(type="bool", default=False),
            extra_facts=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for key in ("site_id", "environment_id"):
        if not UUID_RE.match(p[key] or ""):
            module.fail_json(msg="%s must be a UUID" % key)
    url = urlsplit(p["url"])
    if url.scheme not in ("http", "https") or not url.hostname:
        module.fail_json(msg="url must be an http(s) URL")
    env_id = p["environment_id"].lower()
    # same derivation as pressluft_environment: pl_ + last 16 hex digits of the environment id
    user = "pl_" + env_id.replace("-", "")[-16:]
    root = os.path.join(os.path.normpath(p["sites_root"]), p["site_id"].lower(), env_id)
    current = os.path.join(root, "current")
    timeout = p["timeout"]

    # A PHP-FPM reload (handler just before) brings the pool's socket up asynchronously.
    socket_path = "/run/php/pressluft-%s.sock" % user
    pools = glob.glob("/etc/php/*/fpm/pool.d/%s.conf" % user)
    php = p["php"]
    if not php:
        php = "php"
        if pools and shutil.which("php" + pools[0].split("/")[3]):
            php = "php" + pools[0].split("/")[3]
    if pools:
        deadline = time.monotonic() + 5
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.1)

    def http_check():
        return check_http(p["url"], p["connect_address"], timeout, p["validate_certs"])

    def installed_check():
        ok, res = run_helper(user, php, p["helper"], current, "is-installed", timeout)
        return (ok, "installed" if ok else res)

    def db_check():
        ok, res = run_helper(user, php, p["helper"], current, "db-ping", timeout)
        return (ok, "reachable" if ok else res)

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            "http": pool.submit(with_retry, http_check, p["retries"]),
            "wordpress_installed": pool.submit(with_retry, installed_check, p["retries"]),
            "database": pool.submit(with_retry, db_check, p["retries"]),
        }
        checks = {name: f.result() for name, f in futures.items()}
    healthy = all(c["ok"] for c in checks.values())
    facts = dict(p["extra_facts"] or {})
    facts.update({
        "healthy": healthy,
        "health_url": p["url"],
        "health_checks": checks,
        "health_checked_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    if not healthy and p["fail_unhealthy"]:
        failed = ", ".join("%s: %s" % (k, v["detail"]) for k, v in checks.items() if not v["ok"])
        module.fail_json(msg="environment unhealthy (%s)" % failed, healthy=False, pressluft_facts=facts)
    module.exit_json(changed=False, healthy=healthy, pressluft_facts=facts)


if __name__ == "__main__":
    main()
