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
  - "Database: a query with the credentials of wp-config.php - C(is-installed) reads the options
    table with them, so it passes with it; when it fails, the helper's C(db-ping) (SELECT 1) names
    the cause."
  - Each check has a timeout (default 10 s) and one retry; the HTTP check runs beside the helper's.
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

import glob
import os
import re
import shutil
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pressluft_checks import run_helper, wordpress_checks

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


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

    checks = wordpress_checks(p["url"], p["connect_address"], timeout, p["validate_certs"], p["retries"],
                              lambda command: run_helper(user, php, p["helper"], current, command, timeout))
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
