"""Unit tests of the pre-import backup taken by the import's job (module_utils/pressluft_prebackup):
its parameters, a stored backup becoming the rollback point with its facts reported, and a backup
that could not be stored failing the import before anything changed (IMPORT_FAILED). The backup
itself (pressluft_backup_lib.Backup) is replaced by a fake; the real one runs in the import
end-to-end test. Run by ansible/tests/run.sh --static with the Ansible virtualenv's python."""
import os
import types
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
mu.__path__.append(os.path.join(os.path.dirname(HERE), "module_utils"))

from ansible.module_utils import pressluft_prebackup as pre  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.pressluft_backup_lib import Invalid, Known  # noqa: E402  pylint: disable=wrong-import-position

BACKUP_ID = "01a249b2-c013-7119-89cc-5a512ff6e526"


class FakeBackup:
    outcome = None  # set per test: a dict of facts, or an exception to raise
    seen = None

    def __init__(self, module):
        FakeBackup.seen = module.params
        self.facts = {"backup_id": module.params["backup_id"], "backup_storage_type": "local",
                      "backup_storage_path": module.params["storage_path"]}
        self.storage = "the storage"
        self.timer = types.SimpleNamespace(done=lambda: {"total": 1})

    def create(self):
        if isinstance(FakeBackup.outcome, Exception):
            raise FakeBackup.outcome
        return True, dict(FakeBackup.outcome)


def module(**params):
    base = {"pre_backup_id": BACKUP_ID, "pre_backup_storage_path": "/var/backups/pressluft/x",
            "storage_type": "local", "site_id": "s", "environment_id": "e"}
    base.update(params)
    return types.SimpleNamespace(params=base, check_mode=False)


class PreBackupTest(unittest.TestCase):
    def setUp(self):
        self.real = pre.Backup
        pre.Backup = FakeBackup

    def tearDown(self):
        pre.Backup = self.real

    def test_parameters(self):
        with self.assertRaises(Invalid):
            pre.PreBackup(module(pre_backup_id="not-a-uuid"))
        with self.assertRaises(Invalid):
            pre.PreBackup(module(pre_backup_storage_path=None))
        FakeBackup.outcome = {"backup_checksum": "c", "backup_manifest": {"artifacts": []}}
        pre.PreBackup(module()).start().result()
        self.assertEqual(FakeBackup.seen["backup_id"], BACKUP_ID)
        self.assertEqual(FakeBackup.seen["storage_path"], "/var/backups/pressluft/x")
        self.assertEqual(FakeBackup.seen["backup_scope"], "full")

    def test_stored_backup_is_the_rollback_point_and_reported(self):
        manifest = {"artifacts": [{"name": "database.sql.zst"}]}
        FakeBackup.outcome = {"backup_checksum": "abc", "backup_manifest": manifest, "backup_size_bytes": 7}
        job = pre.PreBackup(module()).start()
        storage, got = job.result()
        self.assertEqual((storage, got), ("the storage", manifest))
        report = job.report()
        self.assertEqual(report["backup_id"], BACKUP_ID)
        self.assertEqual(report["backup_checksum"], "abc")
        self.assertEqual(report["backup_size_bytes"], 7)
        self.assertTrue(report["backup_created"])

    def test_a_backup_not_stored_fails_the_import_before_any_change(self):
        for outcome in (Known("BACKUP_STORAGE_FAILED", "disk full"), RuntimeError("boom"),
                        {"backup_checksum": None, "backup_manifest": None}):
            FakeBackup.outcome = outcome
            job = pre.PreBackup(module()).start()
            with self.assertRaises(Known) as ctx:
                job.result()
            self.assertEqual(ctx.exception.code, "IMPORT_FAILED")
            self.assertIn("nothing was changed", str(ctx.exception))
            self.assertIsNone(job.report())


if __name__ == "__main__":
    unittest.main()
