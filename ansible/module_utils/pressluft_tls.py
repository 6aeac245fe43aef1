"""TLS certificates shared by the pressluft_domain module (custom domains) and the pressluft_panel
module (the control plane's own domain): certbot against an ACME directory (HTTP-01 through the
node's /var/www/acme), certificate facts, certbot's output classified into Pressluft error codes.
Private keys never appear in messages."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess

PEM_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")
CERTBOT_LOCK = "/run/lock/pressluft-certbot.lock"


class Failure(Exception):
    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code




def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def split_certs(pem):
    return [m.group(0) + b"\n" for m in PEM_CERT_RE.finditer(pem)]


def covers(pattern, name):
    """Whether a certificate name covers a host name (RFC 6125: a wildcard is one whole left-most
    label and matches exactly one label; a wildcard host name needs the same wildcard)."""
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if pattern == name:
        return True
    if pattern.startswith("*.") and not name.startswith("*."):
        suffix = pattern[1:]
        if name.endswith(suffix):
            label = name[:-len(suffix)]
            return label != "" and "." not in label
    return False


def crypto():
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import ExtensionOID, NameOID
    except ImportError:
        raise Failure("python3-cryptography is missing on the node (installed with certbot: run node-provision)")
    return x509, serialization, ExtensionOID, NameOID


def cert_names(cert):
    x509, _, ExtensionOID, NameOID = crypto()
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        names = san.value.get_values_for_type(x509.DNSName)
        if names:
            return [n.lower() for n in names]
    except x509.ExtensionNotFound:
        pass
    return [a.value.lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def cert_facts(chain_pem):
    """Facts of the leaf (first) certificate of a PEM chain."""
    x509, _, _, NameOID = crypto()
    certs = split_certs(chain_pem)
    if not certs:
        raise Failure("no certificate in the PEM data")
    cert = x509.load_pem_x509_certificate(certs[0])
    parts = []
    for oid, label in ((NameOID.COMMON_NAME, "CN"), (NameOID.ORGANIZATION_NAME, "O")):
        for attr in cert.issuer.get_attributes_for_oid(oid):
            parts.append("%s=%s" % (label, attr.value))
    return {
        "certificate_issuer": ", ".join(parts) or cert.issuer.rfc4514_string(),
        "certificate_serial": format(cert.serial_number, "x"),
        "certificate_not_before": rfc3339(cert.not_valid_before),
        "certificate_not_after": rfc3339(cert.not_valid_after),
        "certificate_names": cert_names(cert),
    }


def empty_cert_facts():
    return {"certificate_issuer": None, "certificate_serial": None, "certificate_not_before": None,
            "certificate_not_after": None, "certificate_names": []}


def classify_certbot(output):
    text = output or ""
    low = text.lower()
    if "ratelimited" in low or "too many" in low or "rate limit" in low:
        return "ACME_RATE_LIMITED"
    challenge = ("challenge failed", "some challenges have failed", "error:unauthorized", "error:connection",
                 "error:dns", "invalid response from", "certificate authority failed to verify",
                 "error:rejectedidentifier", "error:caa")
    if any(c in low for c in challenge):
        return "ACME_CHALLENGE_FAILED"
    unavailable = ("failed to connect", "connection refused", "timed out", "timeout", "max retries exceeded",
                   "unable to reach", "could not get directory", "error retrieving", "newconnectionerror",
                   "name or service not known", "temporary failure in name resolution", "certificate_verify_failed",
                   "sslerror", "connection reset", "network is unreachable", "service unavailable",
                   "bad gateway", "gateway timeout", "no route to host")
    if any(u in low for u in unavailable):
        return "ACME_UNAVAILABLE"
    return "ACME_CHALLENGE_FAILED"


CERTBOT_NOISE = ("Ask for help", "See the logfile", "Saving debug log", "Hint:", "If you like Certbot",
                 " * Donating", "- - -", "Requesting a certificate", "Renewing an existing certificate")


def last_lines(text, n=12, limit=1500):
    """certbot's report without its boilerplate (log file, forum, donations): the last n lines."""
    lines = [l.rstrip() for l in (text or "").splitlines() if l.strip()]
    lines = [l for l in lines if not l.lstrip().startswith(CERTBOT_NOISE) and not l.startswith(CERTBOT_NOISE)]
    out = "\n".join(lines[-n:])
    return out[-limit:]


def master_pid(pidfile, title):
    try:
        with open(pidfile, "r", encoding="ascii") as fh:
            pid = int(fh.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return pid if fh.read().startswith(title) else None
    except (OSError, ValueError):
        return None



def account_unknown(logs_dir):
    try:
        with open(os.path.join(logs_dir, "letsencrypt.log"), "r", errors="replace") as fh:
            return "accountDoesNotExist" in fh.read()[-20000:]
    except OSError:
        return False


def lineage_serial(live):
    try:
        with open(os.path.join(live, "cert.pem"), "rb") as fh:
            return cert_facts(fh.read())["certificate_serial"]
    except Exception:  # pylint: disable=broad-except
        return None


def certbot_certonly(cert_name, names, acme_directory_url, acme_email="", acme_ca_file="",
                     force_renew=False, webroot="/var/www/acme",
                     config_dir="/etc/pressluft/letsencrypt",
                     work_dir="/var/lib/pressluft/letsencrypt/work",
                     logs_dir="/var/log/pressluft/letsencrypt", timeout=600, changes=None):
    """`certbot certonly --webroot` for `names` into the lineage `cert_name`; returns the lineage's
    (fullchain, privkey) bytes. Known failures raise Failure with an ACME_* code. One certbot at a
    time per node (a lock); an account the ACME server forgot is registered again, once."""
    changes = changes if changes is not None else []
    exe = shutil.which("certbot")
    if not exe:
        raise Failure("certbot is not installed: run node-provision")
    url = acme_directory_url or ""
    if not re.match(r"^https?://[^\s]+$", url):
        raise Failure("acme_directory_url must be an http(s) URL")
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    if acme_ca_file:
        if not os.path.isfile(acme_ca_file):
            raise Failure("acme_ca_file %s does not exist on the node" % acme_ca_file, "ACME_UNAVAILABLE")
        env["REQUESTS_CA_BUNDLE"] = acme_ca_file
    dirs = (os.path.normpath(config_dir), work_dir, logs_dir)
    for d in dirs + (webroot,):
        if not os.path.isdir(d):
            os.makedirs(d, 0o700 if d != webroot else 0o755, exist_ok=True)
    argv = [exe, "certonly", "--non-interactive", "--agree-tos", "--webroot", "-w", webroot,
            "--preferred-challenges", "http", "--cert-name", cert_name]
    for name in names:
        argv += ["-d", name]
    argv += ["--server", url, "--config-dir", dirs[0], "--work-dir", dirs[1], "--logs-dir", dirs[2],
             "--max-log-backups", "20"]
    argv.append("--force-renewal" if force_renew else "--keep-until-expiring")
    if acme_email:
        argv += ["--email", acme_email, "--no-eff-email"]
    else:
        argv.append("--register-unsafely-without-email")
    live = os.path.join(dirs[0], "live", cert_name)
    with open(CERTBOT_LOCK, "a") as lock:  # certbot refuses to run twice on the same dirs
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = lineage_serial(live)
        for attempt in (1, 2):
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/",
                                      stdin=subprocess.DEVNULL, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise Failure("certbot did not finish within %d s" % timeout, "ACME_UNAVAILABLE")
            # The ACME server forgot the account certbot kept (a test server restarted, an
            # account deactivated): forget it too and register again, once.
            if proc.returncode == 0 or attempt == 2 or not account_unknown(dirs[2]):
                break
            accounts = os.path.join(dirs[0], "accounts")
            if os.path.isdir(accounts):
                shutil.rmtree(accounts)
            changes.append("forgot the ACME account the server no longer knows")
    output = (proc.stdout or "") + "\n" + (proc.stderr or "")
    if proc.returncode != 0:
        raise Failure("certbot failed (rc=%d): %s" % (proc.returncode, last_lines(output)),
                      classify_certbot(output))
    try:
        with open(os.path.join(live, "fullchain.pem"), "rb") as fh:
            chain = fh.read()
        with open(os.path.join(live, "privkey.pem"), "rb") as fh:
            key = fh.read()
    except OSError as exc:
        raise Failure("certbot succeeded but %s is unreadable: %s" % (live, exc))
    if lineage_serial(live) != before:
        changes.append("certificate issued by %s" % url)
    return chain, key


def remove_lineage(config_dir, cert_name):
    """Removes certbot's lineage `cert_name` (live, archive, renewal configuration); returns the
    removed paths."""
    removed = []
    for path in (os.path.join(config_dir, "live", cert_name),
                 os.path.join(config_dir, "archive", cert_name),
                 os.path.join(config_dir, "renewal", cert_name + ".conf")):
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed.append(path)
    return removed
