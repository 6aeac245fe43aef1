"""Health checks shared by Pressluft's modules (spec
node-runtime section 10): the HTTP check through the node's nginx (redirects followed on the same
host, WordPress content required) and the PHP helper's checks as the environment's user."""
from __future__ import annotations

import concurrent.futures
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
from urllib.parse import urljoin, urlsplit

WP_LINK = 'rel="https://api.w.org/"'
MAX_REDIRECTS = 5


def last_json_line(text):
    for line in reversed((text or "").strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address with the SNI / certificate name of the URL's host."""

    def __init__(self, address, port, server_name, context, timeout):
        super().__init__(address, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._ctx = context

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)


def http_get(url, address, timeout, validate_certs, method="GET"):
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
        conn.request(method, path, headers={"Host": host_header, "User-Agent": "Pressluft-Health/1",
                                            "Accept": "text/html,*/*", "Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(2 * 1024 * 1024)
        return resp.status, resp.headers, body
    finally:
        conn.close()


def wait_for_nginx(url, address, limit):
    """Until nginx answers for the URL's host at all (a static path, no PHP), at most `limit` s."""
    parts = urlsplit(url)
    probe = "%s://%s/.well-known/acme-challenge/pressluft-reload-probe" % (parts.scheme, parts.netloc)
    deadline = time.monotonic() + limit
    while True:
        try:
            http_get(probe, address, 2, False, method="HEAD")
            return True
        except (OSError, http.client.HTTPException, ssl.SSLError):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


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


def helper_user_argv(user):
    return ["runuser", "-u", user, "--"] if shutil.which("runuser") else ["sudo", "-n", "-u", user, "--"]


# PHP for the helper's --lean commands: no php.ini, only the extensions they use (mysqli over
# mysqlnd). Debian's CLI loads ~34 extensions at every start (~40 ms, more on a busy node);
# memory_limit as Debian's CLI has it.
LEAN_PHP_OPTIONS = ("-n", "-d", "extension=mysqlnd", "-d", "extension=mysqli", "-d", "memory_limit=-1")


def run_lean_helper(user, php, helper, path, args, timeout):
    """The helper's `args` (a --lean command) as `user` under the lean PHP, and again under the
    full one when that PHP has no mysqli (its extensions built or named otherwise: the helper
    says so before it touches anything). The CompletedProcess (subprocess.TimeoutExpired)."""
    def run(options):
        return subprocess.run(helper_user_argv(user) + [php] + list(options) + [helper, "--path=" + path] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/", timeout=timeout,
                              check=False)

    proc = run(LEAN_PHP_OPTIONS)
    if proc.returncode == 3 and (last_json_line(proc.stdout) or {}).get("no_mysqli") is True:
        proc = run(())
    return proc


def run_helper(user, php, helper, path, command, timeout):
    argv = helper_user_argv(user) + [php, helper, "--path=" + path, command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/",
                          stdin=subprocess.DEVNULL)
    result = last_json_line(proc.stdout)
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


def wordpress_checks(url, address, timeout, validate_certs, retries, run_cli, cli_on_http_failure=False):
    """The three checks of spec section 10 - "http", "wordpress_installed", "database" - each
    {ok, detail, attempts, elapsed_ms}. `run_cli(command)` runs the PHP helper's command
    (`is-installed`, `db-ping`) as the environment's user and returns (ok, result).

    The HTTP request runs beside `is-installed`: one PHP process, not two, competes with the
    request for the CPU. `is-installed` reads the options table with the environment's own
    database credentials, so when it passes the database check (a simple query with those
    credentials) has passed with it; `db-ping` runs only when it fails, to name the cause.
    With cli_on_http_failure the helper runs only when the HTTP check fails (a 200 with
    WordPress content already proves both; used where the first request meets a cold release),
    and only the HTTP check is reported when it passes."""

    def http_check():
        return check_http(url, address, timeout, validate_certs)

    def installed_check():
        ok, res = run_cli("is-installed")
        return (ok, "installed" if ok else res)

    def db_check():
        ok, res = run_cli("db-ping")
        return (ok, "reachable" if ok else res)

    def cli_checks():
        installed = with_retry(installed_check, retries)
        if installed["ok"]:
            database = dict(installed, detail="reachable (is-installed queried it)")
        else:
            database = with_retry(db_check, retries)
        return {"wordpress_installed": installed, "database": database}

    if cli_on_http_failure:
        checks = {"http": with_retry(http_check, retries)}
        if not checks["http"]["ok"]:
            checks.update(cli_checks())
        return checks
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        cli = pool.submit(cli_checks)
        checks = {"http": with_retry(http_check, retries)}
        checks.update(cli.result())
    return checks
