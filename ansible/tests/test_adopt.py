"""Unit tests of the adoption module's source side (no SSH needed): wp-config.php parsing, the
client defaults file, plugin/theme headers, the SSH location checks, the module's arguments.
Run by ansible/tests/run.sh --static with the Ansible virtualenv's python. The real adoption over
SSH is the e2e test `adopt_a_wordpress_site_over_ssh` (tests/e2e.rs)."""
import os
import shutil
import tempfile
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
mu.__path__.append(os.path.join(os.path.dirname(HERE), "module_utils"))

from ansible.module_utils import pressluft_adopt as adopt  # noqa: E402  pylint: disable=wrong-import-position

CONFIG = r"""<?php
// define('MULTISITE', true);
/* define('WP_ALLOW_MULTISITE', true); */
define( 'DB_NAME', 'shop_db' );
define('DB_USER', "shop");
define( 'DB_PASSWORD', 'it\'s "a" \\secret#1' );
define( 'DB_HOST', 'db.internal:3307' );
$table_prefix  = 'shop_';
require_once ABSPATH . 'wp-settings.php';
"""


class WpConfig(unittest.TestCase):
    def test_settings_and_commented_flags(self):
        cfg = adopt.parse_wp_config(CONFIG)
        self.assertEqual(cfg["DB_NAME"], "shop_db")
        self.assertEqual(cfg["DB_USER"], "shop")
        self.assertEqual(cfg["DB_PASSWORD"], 'it\'s "a" \\secret#1')
        self.assertEqual(cfg["table_prefix"], "shop_")
        self.assertFalse(cfg["MULTISITE"])
        self.assertFalse(cfg["WP_ALLOW_MULTISITE"])
        multi = adopt.parse_wp_config(CONFIG + "define( 'MULTISITE', true );\n")
        self.assertTrue(multi["MULTISITE"])

    def test_defaults_file(self):
        cfg = adopt.parse_wp_config(CONFIG)
        opts = adopt.client_options(cfg).decode()
        self.assertIn('password="it\'s \\"a\\" \\\\secret#1"', opts)
        self.assertIn('host="db.internal"', opts)
        self.assertIn("port=3307", opts)
        sock = adopt.client_options(dict(cfg, DB_HOST="localhost:/run/mysqld/other.sock")).decode()
        self.assertIn('socket="/run/mysqld/other.sock"', sock)
        self.assertIn('host="localhost"', sock)
        v6 = adopt.client_options(dict(cfg, DB_HOST="[::1]:3306")).decode()
        self.assertIn('host="::1"', v6)
        with self.assertRaises(adopt.ArchiveError):
            adopt.client_options(dict(cfg, DB_PASSWORD="a\nb"))

    def test_headers(self):
        h = adopt.headers(" * Plugin Name: Shop Tools\n * Version: 2.0.1 */\n")
        self.assertEqual(h, {"name": "Shop Tools", "version": "2.0.1"})
        self.assertEqual(adopt.headers("Theme Name: Dark\nVersion: 1")["name"], "Dark")

    def test_locations(self):
        adopt.check_location("old.example.test", 22, "wp", "/home/wp/www")
        adopt.check_location("::1", 2222, "_wp-1", "/")
        for bad in [("-oProxyCommand=x", 22, "wp", "/w"), ("h", 0, "wp", "/w"), ("h", 22, "Wp", "/w"),
                    ("h", 22, "wp", "w"), ("h", 22, "wp", "/a/../b"), ("h", 22, "wp", "/a\nb")]:
            with self.assertRaises(adopt.Invalid, msg=repr(bad)):
                adopt.check_location(*bad)

    def test_fingerprint(self):
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        self.assertTrue(adopt.fingerprint(key).startswith("SHA256:"))
        self.assertTrue(adopt.HOST_KEY_RE.match(key))

    def test_ssh_failures_are_named(self):
        tmp = tempfile.mkdtemp()
        try:
            src = adopt.Source("127.0.0.1", 22, "wp", "/w", "KEY", None, tmp)
            self.assertEqual(oct(os.stat(src.key).st_mode & 0o777), "0o600")
            argv = src.argv("true")
            self.assertIn("StrictHostKeyChecking=accept-new", argv)
            self.assertNotIn("KEY", " ".join(argv))
            pinned = adopt.Source("127.0.0.1", 22, "wp", "/w", "KEY", "ssh-ed25519 AAAA", tmp)
            self.assertIn("StrictHostKeyChecking=yes", pinned.argv("true"))
            self.assertEqual(pinned.failure(255, b"Host key verification failed.\n").code, "ADOPT_HOST_KEY_MISMATCH")
            denied = pinned.failure(255, b"wp@127.0.0.1: Permission denied (publickey).\n")
            self.assertEqual(denied.code, "ADOPT_SOURCE_UNREACHABLE")
            self.assertIn("authorized_keys", str(denied))
            self.assertEqual(pinned.failure(255, b"connect to host: Connection refused").code, "ADOPT_SOURCE_UNREACHABLE")
            self.assertIsNone(pinned.failure(1, b"Host key verification failed."))
        finally:
            shutil.rmtree(tmp)

    def test_module_arguments(self):
        spec = adopt.ARGUMENT_SPEC
        self.assertNotIn("archive_url", spec)
        self.assertTrue(spec["adopt_private_key"]["no_log"])
        for k in ("ssh_host", "ssh_user", "source_path", "source_host_key", "import_id", "site_url"):
            self.assertIn(k, spec)
        self.assertTrue(issubclass(adopt.Adopt, adopt.Import))


if __name__ == "__main__":
    unittest.main()
