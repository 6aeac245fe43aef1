"""Tests of the pressluft_report action (ansible/action_plugins/pressluft_report.py), run through
ansible-playbook (local connection, Pressluft's ansible.cfg and facts callback): the facts reach the
facts file; the run fails with "CODE: error" when the facts carry an error (the default code when
they carry none), with fail_msg when given, and not otherwise; facts that are not a dict are
refused. Run by ansible/tests/run.sh --static (needs ansible-playbook on PATH)."""
import json
import os
import subprocess
import tempfile
import unittest

ANSIBLE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLAYBOOK = """
- name: Report
  hosts: all
  gather_facts: false
  tasks:
    - name: Report the facts
      pressluft_report:
        facts: "{{ facts }}"
        default_error_code: "{{ default_code | default(omit) }}"
        fail_msg: "{{ fail_msg | default('') }}"
    - name: Runs only when the report did not fail
      ansible.builtin.debug:
        msg: after
"""


def run(extra):
    with tempfile.TemporaryDirectory() as tmp:
        book = os.path.join(tmp, "play.yml")
        with open(book, "w", encoding="utf-8") as fh:
            fh.write(PLAYBOOK)
        vars_file = os.path.join(tmp, "vars.json")
        with open(vars_file, "w", encoding="utf-8") as fh:
            json.dump(extra, fh)
        facts_file = os.path.join(tmp, "facts.json")
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ANSIBLE_DIR, "ansible.cfg"),
                   PRESSLUFT_FACTS_FILE=facts_file)
        proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "@" + vars_file, book],
                              cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=120)
        with open(facts_file, encoding="utf-8") as fh:
            return proc.returncode, json.load(fh)


class ReportTest(unittest.TestCase):
    def test_facts_reported_and_run_goes_on(self):
        rc, out = run({"facts": {"backup_id": "b1", "nested": {"n": 1}}})
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["backup_id"], "b1")
        self.assertEqual(out["nested"], {"n": 1})
        self.assertEqual([t["status"] for t in out["_tasks"]], ["ok", "ok"])
        self.assertNotIn("_errors", out)

    def test_error_fails_with_code_and_message_after_reporting(self):
        rc, out = run({"facts": {"error_code": "BACKUP_DUMP_FAILED", "error": "dump failed", "backup_id": "b2"}})
        self.assertEqual(rc, 2)
        self.assertEqual(out["backup_id"], "b2")
        self.assertEqual(out["_errors"][0]["msg"], "BACKUP_DUMP_FAILED: dump failed")
        self.assertEqual(len(out["_tasks"]), 1, "the run stops at the failed report")

    def test_error_without_code_takes_the_default_code(self):
        rc, out = run({"facts": {"error": "checks failed"}, "default_code": "RELEASE_FAILED"})
        self.assertEqual(rc, 2)
        self.assertEqual(out["_errors"][0]["msg"], "RELEASE_FAILED: checks failed")
        rc, out = run({"facts": {"error": "no code"}})
        self.assertEqual(out["_errors"][0]["msg"], "ERROR: no code")

    def test_fail_msg_fails_the_run(self):
        rc, out = run({"facts": {"healthy": False}, "fail_msg": "environment unhealthy (http: 500)"})
        self.assertEqual(rc, 2)
        self.assertFalse(out["healthy"])
        self.assertEqual(out["_errors"][0]["msg"], "environment unhealthy (http: 500)")

    def test_empty_error_fields_do_not_fail(self):
        rc, out = run({"facts": {"error": "", "error_code": None, "ok": True}})
        self.assertEqual(rc, 0, out)
        self.assertTrue(out["ok"])

    def test_facts_must_be_a_dict(self):
        rc, out = run({"facts": ["not", "a", "dict"]})
        self.assertEqual(rc, 2)
        self.assertIn("facts must be a dict", out["_errors"][0]["msg"])


if __name__ == "__main__":
    unittest.main()
