"""Unit tests of the shared health checks (module_utils/pressluft_checks.wordpress_checks) against
a local HTTP server and a fake PHP helper: the three checks of spec section 10 are reported;
is-installed passing proves the database (db-ping not run), its failure runs db-ping to name the
cause; an HTTP answer without WordPress content fails; with cli_on_http_failure the helper runs
only when the HTTP check fails. The helper's --lean commands run under PHP without php.ini and
again with it when that PHP has no mysqli. Run by ansible/tests/run.sh --static."""
import http.server
import json
import os
import tempfile
import threading
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
mu.__path__.append(os.path.join(os.path.dirname(HERE), "module_utils"))

from ansible.module_utils import pressluft_checks as checks  # noqa: E402  pylint: disable=wrong-import-position

BODY = {"/": b'<link rel="stylesheet" href="/wp-content/themes/t/style.css">', "/plain": b"hello"}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = BODY.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


class FakeHelper:
    def __init__(self, **results):
        self.results = results
        self.calls = []

    def __call__(self, command):
        self.calls.append(command)
        return self.results[command]


class WordPressChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = "http://pressluft.test:%d" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def run_checks(self, helper, path="/", **kw):
        return checks.wordpress_checks(self.url + path, "127.0.0.1", 5, False, 0, helper, **kw)

    def test_installed_proves_the_database(self):
        helper = FakeHelper(**{"is-installed": (True, {"installed": True})})
        res = self.run_checks(helper)
        self.assertEqual(list(res), ["http", "wordpress_installed", "database"])
        self.assertTrue(all(c["ok"] for c in res.values()), res)
        self.assertEqual(helper.calls, ["is-installed"])
        self.assertIn("is-installed", res["database"]["detail"])

    def test_failed_install_check_asks_the_database(self):
        helper = FakeHelper(**{"is-installed": (False, "WordPress is not installed"),
                               "db-ping": (False, "Access denied for user")})
        res = self.run_checks(helper)
        self.assertEqual(sorted(helper.calls), ["db-ping", "is-installed"])
        self.assertFalse(res["wordpress_installed"]["ok"])
        self.assertEqual(res["database"], dict(res["database"], ok=False, detail="Access denied for user"))
        helper = FakeHelper(**{"is-installed": (False, "WordPress is not installed"), "db-ping": (True, {})})
        res = self.run_checks(helper)
        self.assertTrue(res["database"]["ok"])
        self.assertEqual(res["database"]["detail"], "reachable")

    def test_http_without_wordpress_content_fails(self):
        helper = FakeHelper(**{"is-installed": (True, {})})
        res = self.run_checks(helper, "/plain")
        self.assertFalse(res["http"]["ok"])
        res = self.run_checks(helper, "/missing")
        self.assertFalse(res["http"]["ok"])
        self.assertIn("404", res["http"]["detail"])

    def test_helper_only_when_http_fails(self):
        helper = FakeHelper(**{"is-installed": (True, {})})
        res = self.run_checks(helper, cli_on_http_failure=True)
        self.assertEqual(list(res), ["http"])
        self.assertEqual(helper.calls, [])
        res = self.run_checks(helper, "/plain", cli_on_http_failure=True)
        self.assertEqual(list(res), ["http", "wordpress_installed", "database"])
        self.assertEqual(helper.calls, ["is-installed"])


FAKE_PHP = """#!/bin/sh
echo "$*" >> "$CALLS"
case " $* " in
  *" -n "*) [ "$LEAN_OK" = 1 ] && echo '{"ok": true, "lean": true}' && exit 0
            echo '{"ok": false, "error": "--lean: this PHP has no mysqli", "no_mysqli": true}'; exit 3 ;;
esac
echo '{"ok": true, "lean": false}'
"""


class LeanHelper(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.php = os.path.join(self.tmp.name, "php")
        with open(self.php, "w", encoding="utf-8") as fh:
            fh.write(FAKE_PHP)
        os.chmod(self.php, 0o755)
        self.calls = os.path.join(self.tmp.name, "calls")
        os.environ["CALLS"] = self.calls
        self.helper_user_argv = checks.helper_user_argv
        checks.helper_user_argv = lambda user: []

    def tearDown(self):
        checks.helper_user_argv = self.helper_user_argv
        os.environ.pop("LEAN_OK", None)
        self.tmp.cleanup()

    def run_lean(self):
        proc = checks.run_lean_helper("u", self.php, "/helper.php", "/wp", ["search-replace", "--lean"], 10)
        with open(self.calls, encoding="utf-8") as fh:
            return json.loads(proc.stdout.strip().splitlines()[-1]), fh.read().splitlines()

    def test_lean_php_without_ini(self):
        os.environ["LEAN_OK"] = "1"
        result, calls = self.run_lean()
        self.assertTrue(result["lean"])
        self.assertEqual(len(calls), 1)
        self.assertTrue(calls[0].startswith("-n -d extension=mysqlnd -d extension=mysqli"), calls[0])
        self.assertTrue(calls[0].endswith("/helper.php --path=/wp search-replace --lean"), calls[0])

    def test_full_php_when_the_lean_one_has_no_mysqli(self):
        result, calls = self.run_lean()
        self.assertEqual(result, {"ok": True, "lean": False})
        self.assertEqual(len(calls), 2)
        self.assertEqual(calls[1], "/helper.php --path=/wp search-replace --lean")


if __name__ == "__main__":
    unittest.main()
