#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: a custom domain's certificate on a node (ACME through certbot, or an uploaded one).
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_domain
short_description: Obtain (ACME) or install (custom) one Pressluft domain's certificate, or remove it
description:
  - "I(state=present), I(tls_mode=acme): C(certbot certonly --webroot -w /var/www/acme --cert-name
    <domain_id> -d <hostname> [-d www.<hostname>]) against I(acme_directory_url), with certbot's
    state in I(certbot_config_dir) / I(certbot_work_dir) / I(certbot_logs_dir) (not
    /etc/letsencrypt: Debian's certbot timer never renews these, Pressluft decides renewal),
    C(--keep-until-expiring) unless I(force_renew) (C(--force-renewal)); C(REQUESTS_CA_BUNDLE) =
    I(acme_ca_file) when given. One certbot at a time per node (a lock)."
  - "I(state=present), I(tls_mode=custom): the uploaded certificate (chain) and private key are
    validated first (key unencrypted and parseable, matching the certificate's public key, the
    certificate valid now, its SAN (or CN) covering I(hostname) and, with I(www_redirect),
    C(www.<hostname>), wildcard semantics); any failure reports C(CERTIFICATE_INVALID) and leaves
    the installed files untouched."
  - "Then C(fullchain.pem) (0644) and C(privkey.pem) (0600) are installed into
    C(<tls_dir>/<domain_id>/) (0700), each replaced atomically and only when its bytes differ. When
    they changed and a server block in /etc/nginx/sites-enabled references them, nginx is tested
    (C(nginx -t); on failure the old files are restored) and reloaded under the node's config lock;
    a reload still to do is recorded in /var/lib/pressluft/pending/ first, so a run killed in
    between reloads on the next run."
  - "Known failures do not fail the task: they are reported as C(error_code) (C(ACME_RATE_LIMITED),
    C(ACME_UNAVAILABLE), C(ACME_CHALLENGE_FAILED), C(CERTIFICATE_INVALID)) and C(error) (certbot's
    last lines, no secrets) in C(pressluft_facts); the playbook fails the run after reporting them.
    Other problems are reported as C(error) without a code."
  - "I(state=absent): removes C(<tls_dir>/<domain_id>) and certbot's lineage C(<domain_id>) (live,
    archive, renewal configuration). Refused while a server block still references the files."
options:
  state: {type: str, choices: [present, absent], default: present}
  domain_id: {type: str, required: true, description: UUID of the domain (names the files and the certbot lineage)}
  hostname: {type: str, description: "lower-case DNS name (a leading *. only with tls_mode=custom); required for present"}
  www_redirect: {type: bool, default: false, description: the certificate covers www.<hostname> too}
  tls_mode: {type: str, choices: [acme, custom], default: acme}
  acme_directory_url: {type: str, default: "https://acme-v02.api.letsencrypt.org/directory"}
  acme_email: {type: str, default: "", description: empty registers without an e-mail address}
  acme_ca_file: {type: str, default: "", description: CA bundle on the node to trust for the ACME server's HTTPS}
  force_renew: {type: bool, default: false}
  custom_certificate_pem: {type: str, default: "", description: leaf certificate first, then the chain}
  custom_private_key_pem: {type: str, default: "", no_log: true, description: secret}
  tls_dir: {type: str, default: /etc/pressluft/tls}
  webroot: {type: str, default: /var/www/acme}
  certbot_config_dir: {type: str, default: /etc/pressluft/letsencrypt}
  certbot_work_dir: {type: str, default: /var/lib/pressluft/letsencrypt/work}
  certbot_logs_dir: {type: str, default: /var/log/pressluft/letsencrypt}
  certbot_timeout: {type: int, default: 600}
  reload: {type: bool, default: true, description: reload nginx when the installed files changed and are in use}
"""

RETURN = r"""
pressluft_facts:
  type: dict
  description: >-
    domain_id, hostname, certificate_issuer, certificate_serial (lower-case hex),
    certificate_not_before, certificate_not_after (RFC 3339 UTC), certificate_names,
    certificate_changed, certificate_present, domain_changes; on failure error_code and error
"""

import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_tls import (  # shared with pressluft_panel
    Failure, certbot_certonly, cert_facts, cert_names, covers, crypto, empty_cert_facts,
    master_pid, rfc3339, split_certs)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Same rule as pressluft_environment's domains: lower-case DNS name, at least two labels, the last
# not numeric; a leading `*.` only where wildcards are allowed.
DOMAIN_RE = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                       r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
NGINX_DIR = "/etc/nginx/sites-enabled"
CONFIG_LOCK = "/run/lock/pressluft-config.lock"
PENDING_DIR = "/var/lib/pressluft/pending"


def invalid(message):
    return Failure(message, "CERTIFICATE_INVALID")


def validate_custom(cert_pem, key_pem, names):
    """The normalized (fullchain, privkey) bytes of an uploaded pair, or CERTIFICATE_INVALID.
    Error messages never contain key material."""
    x509, serialization, _, _ = crypto()
    if not cert_pem.strip():
        raise invalid("no certificate given (custom_certificate_pem)")
    if not key_pem.strip():
        raise invalid("no private key given (custom_private_key_pem)")
    blocks = split_certs(cert_pem.encode("utf-8"))
    if not blocks:
        raise invalid("custom_certificate_pem holds no PEM certificate")
    certs = []
    for i, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise invalid("certificate %d of the chain cannot be parsed" % (i + 1))
    key_bytes = key_pem.encode("utf-8")
    if b"ENCRYPTED" in key_bytes:
        raise invalid("the private key is encrypted (a key without passphrase is needed)")
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except TypeError:
        raise invalid("the private key is encrypted (a key without passphrase is needed)")
    except Exception:  # pylint: disable=broad-except
        raise invalid("the private key cannot be parsed (PEM, unencrypted)")
    leaf = certs[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        matches = key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    except Exception:  # pylint: disable=broad-except
        matches = False
    if not matches:
        raise invalid("the private key does not match the certificate (the first one of the chain)")
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # cryptography's dates are naive UTC
    if leaf.not_valid_after <= now:
        raise invalid("the certificate expired at %s" % rfc3339(leaf.not_valid_after))
    if leaf.not_valid_before > now + timedelta(hours=1):
        raise invalid("the certificate is not valid before %s" % rfc3339(leaf.not_valid_before))
    have = cert_names(leaf)
    for name in names:
        if not any(covers(p, name) for p in have):
            raise invalid("the certificate's names (%s) do not cover %s" % (", ".join(have) or "none", name))
    chain = b"".join(blocks)
    key_out = key_pem.strip().encode("utf-8") + b"\n"
    return chain, key_out


class Domain:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.check = module.check_mode
        self.changes = []
        domain_id = (self.p["domain_id"] or "").lower()
        if not UUID_RE.match(domain_id):
            raise Failure("domain_id must be a UUID (with dashes), got %r" % self.p["domain_id"])
        self.id = domain_id
        self.tls_dir = os.path.normpath(self.p["tls_dir"])
        self.dir = os.path.join(self.tls_dir, self.id)
        self.chain_path = os.path.join(self.dir, "fullchain.pem")
        self.key_path = os.path.join(self.dir, "privkey.pem")
        self.config_dir = os.path.normpath(self.p["certbot_config_dir"])
        self.marker = os.path.join(PENDING_DIR, "reload-nginx-domain-%s" % self.id)

    # ------------------------------------------------------------------ files ---------------
    def installed(self):
        try:
            with open(self.chain_path, "rb") as fh:
                chain = fh.read()
            with open(self.key_path, "rb") as fh:
                key = fh.read()
            return chain, key
        except OSError:
            return None, None

    def installed_facts(self):
        chain, _ = self.installed()
        if chain is None:
            return empty_cert_facts()
        try:
            return cert_facts(chain)
        except Exception:  # pylint: disable=broad-except
            return empty_cert_facts()

    def referenced(self):
        """Server block files in sites-enabled that use this domain's certificate files."""
        needle = (self.dir + "/").encode()
        found = []
        try:
            names = sorted(os.listdir(NGINX_DIR))
        except OSError:
            return found
        for name in names:
            path = os.path.join(NGINX_DIR, name)
            try:
                with open(path, "rb") as fh:
                    if needle in fh.read():
                        found.append(path)
            except OSError:
                continue
        return found

    def install(self, chain, key):
        """Installs the pair (each file atomically, only when its bytes or mode differ). Returns the
        old (chain, key) bytes when something changed (for a rollback), else None."""
        old_chain, old_key = self.installed()
        want = ((self.chain_path, chain, 0o644, old_chain), (self.key_path, key, 0o600, old_key))

        def differs(path, data, mode, old):
            if old != data:
                return True
            st = os.stat(path)
            return (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (0, 0, mode)

        dir_ok = os.path.isdir(self.dir) and (os.stat(self.dir).st_mode & 0o7777) == 0o700
        todo = [w for w in want if w[3] is None or differs(*w)]
        if not todo and dir_ok:
            return None
        self.changes.append("certificate files in %s" % self.dir)
        if self.check:
            return (old_chain, old_key)
        if not os.path.isdir(self.tls_dir):
            os.makedirs(self.tls_dir, 0o700, exist_ok=True)
            os.chmod(self.tls_dir, 0o700)
        if not os.path.isdir(self.dir):
            os.mkdir(self.dir, 0o700)
        os.chown(self.dir, 0, 0)
        os.chmod(self.dir, 0o700)
        # both written first, then renamed one right after the other: a torn pair is as short-lived
        # as possible (nginx -t would fail on a mismatched pair)
        tmps = []
        try:
            for path, data, mode, _ in todo:
                fd, tmp = tempfile.mkstemp(prefix=".pressluft-", dir=self.dir)
                tmps.append((tmp, path))
                os.fchmod(fd, mode)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            for tmp, path in tmps:
                os.replace(tmp, path)
        finally:
            for tmp, _ in tmps:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return (old_chain, old_key)

    def restore(self, old):
        old_chain, old_key = old
        for path, data, mode in ((self.chain_path, old_chain, 0o644), (self.key_path, old_key, 0o600)):
            if data is None:
                if os.path.exists(path):
                    os.unlink(path)
                continue
            fd, tmp = tempfile.mkstemp(prefix=".pressluft-", dir=self.dir)
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)

    def reload_nginx(self, old):
        """nginx -t and a reload (SIGHUP to the master, or a start) when a server block uses the
        files; restores `old` when the test fails. Under the node's config lock."""
        if self.check or not self.p["reload"]:
            return
        os.makedirs(PENDING_DIR, mode=0o700, exist_ok=True)
        with open(CONFIG_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            users = self.referenced()
            if not users:
                self.clear_marker()
                return
            with open(self.marker, "a"):
                pass
            proc = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
            if proc.returncode != 0:
                if old is not None:
                    self.restore(old)
                    self.changes.append("certificate files restored: nginx rejected the new ones")
                self.clear_marker()
                raise Failure("nginx -t failed with the new certificate (old files restored): %s"
                              % proc.stderr.strip()[-800:])
            pid = master_pid("/run/nginx.pid", b"nginx: master process")
            if pid:
                os.kill(pid, signal.SIGHUP)
            else:
                start = subprocess.run(["service", "nginx", "start"], capture_output=True, text=True)
                if start.returncode != 0:
                    raise Failure("nginx is not running and did not start: %s"
                                  % (start.stderr or start.stdout).strip()[-500:])
            self.clear_marker()
            self.changes.append("nginx reloaded (%s)" % ", ".join(os.path.basename(u) for u in users))

    def clear_marker(self):
        try:
            os.unlink(self.marker)
        except FileNotFoundError:
            pass

    # ------------------------------------------------------------------ present -------------
    def names(self):
        host = self.p["hostname"] or ""
        if len(host) > 253 or not DOMAIN_RE.match(host):
            raise Failure("hostname %r is not a lower-case DNS name" % host)
        if host.startswith("*.") and self.p["www_redirect"]:
            raise Failure("a wildcard hostname cannot have www_redirect")
        return [host] + (["www." + host] if self.p["www_redirect"] else [])

    def present(self):
        names = self.names()
        if self.p["tls_mode"] == "custom":
            chain, key = validate_custom(self.p["custom_certificate_pem"] or "",
                                         self.p["custom_private_key_pem"] or "", names)
        else:
            if names[0].startswith("*."):
                raise Failure("a wildcard hostname needs a DNS-01 challenge: use tls_mode=custom")
            chain, key = self.certbot(names)
        old = self.install(chain, key)
        if old is not None or os.path.exists(self.marker):
            self.reload_nginx(old)
        return old is not None

    def certbot(self, names):
        p = self.p
        if self.check:
            chain, key = self.installed()
            if chain is None:
                self.changes.append("certificate would be requested from %s" % p["acme_directory_url"])
                return b"", b""
            return chain, key
        return certbot_certonly(self.id, names, p["acme_directory_url"], acme_email=p["acme_email"],
                                acme_ca_file=p["acme_ca_file"], force_renew=p["force_renew"],
                                webroot=p["webroot"], config_dir=self.config_dir,
                                work_dir=p["certbot_work_dir"], logs_dir=p["certbot_logs_dir"],
                                timeout=p["certbot_timeout"], changes=self.changes)

    # ------------------------------------------------------------------ absent --------------
    def absent(self):
        users = self.referenced()
        if users:
            raise Failure("the certificate of domain %s is still used by %s: remove the domain from its "
                          "environment first" % (self.id, ", ".join(users)))
        paths = [self.dir,
                 os.path.join(self.config_dir, "live", self.id),
                 os.path.join(self.config_dir, "archive", self.id),
                 os.path.join(self.config_dir, "renewal", self.id + ".conf")]
        for path in paths:
            if not os.path.lexists(path):
                continue
            self.changes.append("removed %s" % path)
            if self.check:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        self.clear_marker()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            domain_id=dict(type="str", required=True),
            hostname=dict(type="str"),
            www_redirect=dict(type="bool", default=False),
            tls_mode=dict(type="str", choices=["acme", "custom"], default="acme"),
            acme_directory_url=dict(type="str", default="https://acme-v02.api.letsencrypt.org/directory"),
            acme_email=dict(type="str", default=""),
            acme_ca_file=dict(type="str", default=""),
            force_renew=dict(type="bool", default=False),
            custom_certificate_pem=dict(type="str", default=""),
            custom_private_key_pem=dict(type="str", default="", no_log=True),
            tls_dir=dict(type="str", default="/etc/pressluft/tls"),
            webroot=dict(type="str", default="/var/www/acme"),
            certbot_config_dir=dict(type="str", default="/etc/pressluft/letsencrypt"),
            certbot_work_dir=dict(type="str", default="/var/lib/pressluft/letsencrypt/work"),
            certbot_logs_dir=dict(type="str", default="/var/log/pressluft/letsencrypt"),
            certbot_timeout=dict(type="int", default=600),
            reload=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    facts = {"domain_id": (p["domain_id"] or "").lower(), "hostname": p["hostname"]}
    started = time.monotonic()
    domain = None
    try:
        domain = Domain(module)
        if p["state"] == "present":
            changed = domain.present()
            facts.update(domain.installed_facts())
            facts["certificate_changed"] = changed
            facts["certificate_present"] = facts["certificate_serial"] is not None
        else:
            domain.absent()
            facts.update(empty_cert_facts())
            facts["certificate_changed"] = bool(domain.changes)
            facts["certificate_present"] = False
    except Failure as exc:
        if domain is not None and p["state"] == "present":
            facts.update(domain.installed_facts())
            facts["certificate_present"] = facts["certificate_serial"] is not None
        else:
            facts.update(empty_cert_facts())
        facts["certificate_changed"] = False
        if exc.code:
            facts["error_code"] = exc.code
        facts["error"] = str(exc)
        # the task runs with no_log (the private key): warnings survive the censoring
        module.warn("pressluft_domain failed: %s" % exc)
    facts["domain_changes"] = domain.changes if domain is not None else []
    facts["domain_ms"] = int((time.monotonic() - started) * 1000)
    module.exit_json(changed=bool(facts["domain_changes"]), failed_reason=facts.get("error"),
                     pressluft_facts=facts)


if __name__ == "__main__":
    main()
