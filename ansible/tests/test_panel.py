"""Unit tests of the control plane's server block (pressluft_panel, no node needed): what it
renders without a domain, while the domain's certificate is obtained, and with it; input checks.
Run by ansible/tests/run.sh --static with the Ansible virtualenv's python."""
import importlib.util
import os
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
mu.__path__.append(os.path.join(ROOT, "module_utils"))

_spec = importlib.util.spec_from_file_location("pressluft_panel", os.path.join(ROOT, "library", "pressluft_panel.py"))
panel_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(panel_mod)


class FakeModule:
    check_mode = True

    def __init__(self, **params):
        self.params = dict(upstream="127.0.0.1:8080", server_names=["203.0.113.5", "::1"], domain="",
                           acme_directory_url="https://acme.example/dir", acme_email="", acme_ca_file="",
                           force_renew=False, digest="d", conf_path="/nonexistent/panel.conf",
                           tls_dir="/etc/pressluft/tls", webroot="/var/www/acme",
                           certbot_config_dir="/etc/pressluft/letsencrypt", certbot_work_dir="/tmp/w",
                           certbot_logs_dir="/tmp/l", certbot_timeout=60)
        self.params.update(params)


class PanelRender(unittest.TestCase):
    def test_address_block_proxies_with_forwarded_headers(self):
        p = panel_mod.Panel(FakeModule())
        conf = p.render(tls=False)
        self.assertIn("server_name 203.0.113.5 [::1];", conf)
        self.assertIn("proxy_pass http://127.0.0.1:8080;", conf)
        for h in ("X-Forwarded-Proto $scheme", "X-Forwarded-For $remote_addr", "X-Forwarded-Host $host"):
            self.assertIn("proxy_set_header %s;" % h, conf)
        self.assertIn("proxy_buffering off;", conf)
        self.assertNotIn("listen 443", conf)
        self.assertNotIn("Strict-Transport-Security", conf)

    def test_domain_before_its_certificate_is_served_over_http_too(self):
        p = panel_mod.Panel(FakeModule(domain="panel.example.com"))
        conf = p.render(tls=False)
        self.assertIn("server_name 203.0.113.5 [::1] panel.example.com;", conf)
        self.assertIn("/.well-known/acme-challenge/", conf)

    def test_domain_with_certificate_https_hsts_redirect_and_no_address(self):
        p = panel_mod.Panel(FakeModule(domain="panel.example.com"))
        conf = p.render(tls=True)
        self.assertIn("return 301 https://panel.example.com$request_uri;", conf)
        self.assertIn("listen 443 ssl", conf)
        self.assertIn('add_header Strict-Transport-Security "max-age=31536000" always;', conf)
        self.assertNotIn("includeSubDomains", conf)
        self.assertIn("include /etc/nginx/pressluft/security-headers.conf;", conf)
        self.assertIn("ssl_certificate_key /etc/pressluft/tls/panel/privkey.pem;", conf)
        self.assertNotIn("203.0.113.5", conf)

    def test_inputs_are_checked(self):
        for bad in ("example.com:80", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:8080; evil"):
            with self.assertRaises(panel_mod.Failure, msg=bad):
                panel_mod.Panel(FakeModule(upstream=bad))
        with self.assertRaises(panel_mod.Failure):
            panel_mod.Panel(FakeModule(server_names=["panel.example.com"]))
        for bad in ("*.example.com", "panel", "a b.example.com", "x.example.com;"):
            with self.assertRaises(panel_mod.Failure, msg=bad):
                panel_mod.Panel(FakeModule(domain=bad))
        self.assertEqual(panel_mod.Panel(FakeModule(upstream="[::1]:9000")).upstream, "[::1]:9000")


if __name__ == "__main__":
    unittest.main()
