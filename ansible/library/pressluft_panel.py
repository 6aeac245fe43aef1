#!/usr/bin/python
# -*- coding: utf-8 -*-
# Pressluft: the control plane's own server block on the local node (the dashboard and the API
# through nginx), and its certificate when the panel has a domain.
from __future__ import annotations

DOCUMENTATION = r"""
module: pressluft_panel
short_description: Serve the Pressluft control plane through the node's nginx (HTTP on the node's address, or HTTPS on its domain)
description:
  - "Renders C(/etc/nginx/sites-enabled/pressluft-panel.conf): a reverse proxy to I(upstream)
    (the service's listen address, loopback) with C(X-Forwarded-Proto/For/Host), no response
    buffering (event and log streams), long read timeouts and no body size limit of its own (the
    service enforces its limits; imports upload archives)."
  - "Without I(domain): one plain-HTTP server for I(server_names) (the node's addresses)."
  - "With I(domain): when no installed certificate covers the name (or I(force_renew)), the HTTP
    server first serves the panel on the addresses and the name (with C(/.well-known/acme-challenge/)
    from I(webroot)), then certbot obtains the certificate (lineage C(pressluft-panel), HTTP-01,
    against I(acme_directory_url)); it is installed in C(<tls_dir>/panel/) (key 0600, directory
    0700). Then the name's HTTP server answers challenges and redirects the rest (301) to HTTPS, an
    HTTPS server (443, IPv6 too, HTTP/2, HSTS C(max-age=31536000), the node's security headers)
    serves the panel, and the addresses fall to the default server (444). When certbot fails the
    panel stays reachable over HTTP and the failure is reported as C(error_code) / C(error)."
  - "Unsetting I(domain) goes back to the address server and removes the panel's certificate and
    certbot lineage. Every change is tested with C(nginx -t) (rolled back when invalid) and nginx
    reloaded, under the node's config lock. A second run with the same input changes nothing."
options:
  upstream: {type: str, required: true, description: "host:port of the service ([v6]:port for IPv6)"}
  server_names: {type: list, elements: str, default: [], description: the node's addresses (served while no domain is set)}
  domain: {type: str, default: "", description: the control plane's domain (control_plane_domain), empty for none}
  acme_directory_url: {type: str, default: "https://acme-v02.api.letsencrypt.org/directory"}
  acme_email: {type: str, default: ""}
  acme_ca_file: {type: str, default: ""}
  force_renew: {type: bool, default: false}
  digest: {type: str, default: "", description: echoed back as panel_digest once the panel is converged}
  conf_path: {type: str, default: /etc/nginx/sites-enabled/pressluft-panel.conf}
  tls_dir: {type: str, default: /etc/pressluft/tls}
  webroot: {type: str, default: /var/www/acme}
  certbot_config_dir: {type: str, default: /etc/pressluft/letsencrypt}
  certbot_work_dir: {type: str, default: /var/lib/pressluft/letsencrypt/work}
  certbot_logs_dir: {type: str, default: /var/log/pressluft/letsencrypt}
  certbot_timeout: {type: int, default: 600}
"""

RETURN = r"""
pressluft_facts:
  type: dict
  description: >-
    panel_digest (the input digest; empty when the run did not converge), panel_domain (the name
    served over HTTPS, or null), panel_url, panel_certificate_issuer, panel_certificate_serial,
    panel_certificate_not_before, panel_certificate_not_after, panel_certificate_names,
    panel_changes; on failure error_code (ACME_CHALLENGE_FAILED, ACME_RATE_LIMITED,
    ACME_UNAVAILABLE) and error
"""

import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_tls import (
    Failure, cert_facts, certbot_certonly, covers, empty_cert_facts, master_pid, remove_lineage)

MANAGED = "Managed by Pressluft (node-provision, pressluft_panel); changes are overwritten."
CONFIG_LOCK = "/run/lock/pressluft-config.lock"
LINEAGE = "pressluft-panel"
DOMAIN_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
                       r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HSTS = 'add_header Strict-Transport-Security "max-age=31536000" always;'


def nginx_version():
    try:
        proc = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    except OSError:
        return (0,)
    m = re.search(r"nginx/([0-9.]+)", proc.stderr + proc.stdout)
    return tuple(int(x) for x in m.group(1).split(".")) if m else (0,)


class Panel:
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.check = module.check_mode
        self.changes = []
        self.upstream = self.valid_upstream(self.p["upstream"])
        self.names = []
        for n in self.p["server_names"] or []:
            try:
                ip = ipaddress.ip_address(n.strip("[]"))
            except ValueError:
                raise Failure("server_names must be IP addresses, got %r" % n)
            name = "[%s]" % ip if ip.version == 6 else str(ip)
            if name not in self.names:
                self.names.append(name)
        self.domain = (self.p["domain"] or "").strip().lower()
        if self.domain and (len(self.domain) > 253 or not DOMAIN_RE.match(self.domain)):
            raise Failure("domain %r is not a lower-case DNS name" % self.domain)
        self.dir = os.path.join(os.path.normpath(self.p["tls_dir"]), "panel")
        self.chain_path = os.path.join(self.dir, "fullchain.pem")
        self.key_path = os.path.join(self.dir, "privkey.pem")
        self.ipv6 = os.path.exists("/proc/net/if_inet6")

    @staticmethod
    def valid_upstream(value):
        m = re.match(r"^(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):([0-9]{1,5})$", value or "")
        if not m or not 0 < int(m.group(2)) < 65536:
            raise Failure("upstream must be host:port (an IP address), got %r" % value)
        return value

    # ------------------------------------------------------------------ certificate ---------
    def installed_chain(self):
        try:
            with open(self.chain_path, "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def installed_facts(self):
        chain = self.installed_chain()
        if chain is None or not os.path.exists(self.key_path):
            return empty_cert_facts()
        try:
            return cert_facts(chain)
        except Exception:  # pylint: disable=broad-except
            return empty_cert_facts()

    def cert_covers_domain(self):
        f = self.installed_facts()
        if not f["certificate_serial"] or not any(covers(n, self.domain) for n in f["certificate_names"]):
            return False
        after = datetime.strptime(f["certificate_not_after"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return after > datetime.now(timezone.utc)

    def install(self, chain, key):
        want = ((self.chain_path, chain, 0o644), (self.key_path, key, 0o600))
        same = True
        for path, data, mode in want:
            try:
                with open(path, "rb") as fh:
                    if fh.read() != data or (os.stat(path).st_mode & 0o7777) != mode:
                        same = False
            except OSError:
                same = False
        if same:
            return False
        self.changes.append("certificate files in %s" % self.dir)
        os.makedirs(self.dir, 0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        tmps = []
        try:
            for path, data, mode in want:
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
        return True

    def remove_certificate(self):
        removed = []
        if os.path.isdir(self.dir):
            removed.append(self.dir)
            if not self.check:
                shutil.rmtree(self.dir)
        config_dir = os.path.normpath(self.p["certbot_config_dir"])
        if self.check:
            removed += [p for p in (os.path.join(config_dir, "live", LINEAGE),) if os.path.lexists(p)]
        else:
            removed += remove_lineage(config_dir, LINEAGE)
        self.changes += ["removed %s" % r for r in removed]

    # ------------------------------------------------------------------ nginx ---------------
    def proxy(self):
        return """    location ^~ /.well-known/acme-challenge/ {{
        root {webroot};
        default_type text/plain;
        try_files $uri =404;
    }}
    location / {{
        proxy_pass http://{upstream};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $pressluft_panel_connection;
        # event and log streams (SSE) reach the browser as they are written
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
    }}
""".format(webroot=self.p["webroot"], upstream=self.upstream)

    def render(self, tls):
        """The panel's server block file: `tls` = the domain is served over HTTPS."""
        listen80 = "    listen 80;\n" + ("    listen [::]:80;\n" if self.ipv6 else "")
        out = ["# /etc/nginx/sites-enabled/pressluft-panel.conf - the Pressluft control plane (dashboard and\n"
               "# API) on this node. %s\n" % MANAGED,
               "map $http_upgrade $pressluft_panel_connection {\n    default upgrade;\n    '' '';\n}\n"]
        common = ("    access_log /var/log/nginx/pressluft-panel.access.log;\n"
                  "    client_max_body_size 0;  # the service enforces its own limits (import uploads)\n")
        if not tls:
            names = self.names + ([self.domain] if self.domain else [])
            if names:
                note = " (and its domain until its certificate is installed)" if self.domain else ""
                out.append("\n# HTTP on the node's address%s\nserver {\n%s    server_name %s;\n%s%s}\n"
                           % (note, listen80, " ".join(names), common, self.proxy()))
            return "".join(out)
        new_http2 = nginx_version() >= (1, 25, 1)
        flag = "" if new_http2 else " http2"
        listen443 = ("    listen 443 ssl%s;\n" % flag + ("    listen [::]:443 ssl%s;\n" % flag if self.ipv6 else "")
                     + ("    http2 on;\n" if new_http2 else ""))
        out.append("""
# {domain}: HTTP -> HTTPS (ACME challenges answered)
server {{
{listen80}    server_name {domain};
    access_log off;
    location ^~ /.well-known/acme-challenge/ {{
        root {webroot};
        default_type text/plain;
        try_files $uri =404;
    }}
    location / {{
        return 301 https://{domain}$request_uri;
    }}
}}

# {domain}: HTTPS, the control plane (the node's addresses fall to the default server)
server {{
{listen443}    server_name {domain};
{common}    ssl_certificate {chain};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:pressluft_tls:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;
    {hsts}
    include /etc/nginx/pressluft/security-headers.conf;
{proxy}}}
""".format(domain=self.domain, listen80=listen80, listen443=listen443, webroot=self.p["webroot"],
           common=common, chain=self.chain_path, key=self.key_path, hsts=HSTS, proxy=self.proxy()))
        return "".join(out)

    def apply(self, content):
        """Writes the server block file when it differs; nginx -t (rolled back when invalid) and a
        reload, under the node's config lock. Returns whether it changed."""
        path = self.p["conf_path"]
        data = content.encode("utf-8")
        try:
            with open(path, "rb") as fh:
                old = fh.read()
        except OSError:
            old = None
        if old == data:
            return False
        self.changes.append("server block %s" % path)
        if self.check:
            return True
        with open(CONFIG_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            directory = os.path.dirname(path)
            fd, tmp = tempfile.mkstemp(prefix=".pressluft-", dir=directory)
            try:
                os.fchmod(fd, 0o644)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            proc = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
            if proc.returncode != 0:
                if old is None:
                    os.unlink(path)
                else:
                    with open(path, "wb") as fh:
                        fh.write(old)
                raise Failure("nginx -t failed with the panel's server block (rolled back): %s"
                              % proc.stderr.strip()[-800:])
            pid = master_pid("/run/nginx.pid", b"nginx: master process")
            if pid:
                os.kill(pid, signal.SIGHUP)
            else:
                start = subprocess.run(["service", "nginx", "start"], capture_output=True, text=True)
                if start.returncode != 0:
                    raise Failure("nginx is not running and did not start: %s"
                                  % (start.stderr or start.stdout).strip()[-500:])
        return True

    # ------------------------------------------------------------------ converge -------------
    def converge(self):
        p = self.p
        if not self.domain:
            self.apply(self.render(tls=False))
            self.remove_certificate()
            return
        if p["force_renew"] or not self.cert_covers_domain():
            # serve the panel on the name over HTTP (and answer its challenges) while certbot runs
            self.apply(self.render(tls=False))
            if self.check:
                self.changes.append("certificate for %s would be requested from %s"
                                    % (self.domain, p["acme_directory_url"]))
                return
            if not self.cert_covers_domain():
                # a lineage for another name: a fresh one (certbot asks before changing names)
                remove_lineage(os.path.normpath(p["certbot_config_dir"]), LINEAGE)
            chain, key = certbot_certonly(
                LINEAGE, [self.domain], p["acme_directory_url"], acme_email=p["acme_email"],
                acme_ca_file=p["acme_ca_file"], force_renew=p["force_renew"], webroot=p["webroot"],
                config_dir=os.path.normpath(p["certbot_config_dir"]), work_dir=p["certbot_work_dir"],
                logs_dir=p["certbot_logs_dir"], timeout=p["certbot_timeout"], changes=self.changes)
            self.install(chain, key)
        changed_tls = self.apply(self.render(tls=True))
        if not changed_tls and self.changes and not self.check:
            # new certificate files under an unchanged server block: nginx must load them
            self.reload()

    def reload(self):
        with open(CONFIG_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            proc = subprocess.run(["nginx", "-t", "-q"], capture_output=True, text=True)
            if proc.returncode != 0:
                raise Failure("nginx -t failed: %s" % proc.stderr.strip()[-800:])
            pid = master_pid("/run/nginx.pid", b"nginx: master process")
            if pid:
                os.kill(pid, signal.SIGHUP)
                self.changes.append("nginx reloaded (new panel certificate)")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            upstream=dict(type="str", required=True),
            server_names=dict(type="list", elements="str", default=[]),
            domain=dict(type="str", default=""),
            acme_directory_url=dict(type="str", default="https://acme-v02.api.letsencrypt.org/directory"),
            acme_email=dict(type="str", default=""),
            acme_ca_file=dict(type="str", default=""),
            force_renew=dict(type="bool", default=False),
            digest=dict(type="str", default=""),
            conf_path=dict(type="str", default="/etc/nginx/sites-enabled/pressluft-panel.conf"),
            tls_dir=dict(type="str", default="/etc/pressluft/tls"),
            webroot=dict(type="str", default="/var/www/acme"),
            certbot_config_dir=dict(type="str", default="/etc/pressluft/letsencrypt"),
            certbot_work_dir=dict(type="str", default="/var/lib/pressluft/letsencrypt/work"),
            certbot_logs_dir=dict(type="str", default="/var/log/pressluft/letsencrypt"),
            certbot_timeout=dict(type="int", default=600),
        ),
        supports_check_mode=True,
    )
    facts = {"panel_digest": ""}
    panel = None
    try:
        panel = Panel(module)
        panel.converge()
        facts["panel_digest"] = module.params["digest"]
    except Failure as exc:
        if exc.code:
            facts["error_code"] = exc.code
        facts["error"] = str(exc)
        module.warn("pressluft_panel failed: %s" % exc)
    served_tls = panel is not None and bool(panel.domain) and panel.cert_covers_domain() and "error" not in facts
    cert = panel.installed_facts() if panel is not None else empty_cert_facts()
    facts.update({
        "panel_domain": panel.domain if served_tls else None,
        "panel_url": ("https://%s/" % panel.domain) if served_tls
        else ("http://%s/" % panel.names[0] if panel is not None and panel.names else None),
        "panel_certificate_issuer": cert["certificate_issuer"],
        "panel_certificate_serial": cert["certificate_serial"],
        "panel_certificate_not_before": cert["certificate_not_before"],
        "panel_certificate_not_after": cert["certificate_not_after"],
        "panel_certificate_names": cert["certificate_names"],
        "panel_changes": panel.changes if panel is not None else [],
    })
    module.exit_json(changed=bool(facts["panel_changes"]), pressluft_facts=facts)


if __name__ == "__main__":
    main()
