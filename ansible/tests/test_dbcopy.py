"""Unit tests of the clone's database copy decision (module_utils/pressluft_dbcopy.py): when the
InnoDB tablespace copy applies and why it does not. No node needed (the copy itself runs in
ansible/tests/e2e-clones.sh and the Rust end-to-end clone test). Run by ansible/tests/run.sh
--static with the Ansible virtualenv's python."""
import os
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
mu.__path__.append(os.path.join(os.path.dirname(HERE), "module_utils"))

from ansible.module_utils import pressluft_dbcopy as dbcopy  # noqa: E402  pylint: disable=wrong-import-position

MIB = 1 << 20


def table(name, engine="InnoDB", kind="BASE TABLE", options="", size=MIB, file=True):
    return {"name": name, "type": kind, "engine": engine, "options": options, "bytes": size, "file": file}


def survey(*tables, **kw):
    info = {"file_per_table": True, "datadir": "/var/lib/mysql/", "datadir_local": True,
            "tables": list(tables) or [table("wp_options"), table("wp_posts")], "fulltext": []}
    info.update(kw)
    return info


class Refusal(unittest.TestCase):
    def refusal(self, info, limit=dbcopy.DEFAULT_TABLESPACE_MAX_BYTES):
        return dbcopy.tablespace_refusal(info, limit)

    def test_plain_wordpress_tables_are_copied_as_tablespaces(self):
        self.assertIsNone(self.refusal(survey()))

    def test_what_needs_the_dump(self):
        cases = [
            (survey(table("wp_options"), table("wp_legacy", engine="MyISAM")), "wp_legacy uses the MyISAM engine"),
            (survey(table("wp_seq", kind="SEQUENCE")), "wp_seq is a sequence"),
            (survey(table("wp_log", options="partitioned")), "wp_log is partitioned"),
            (survey(table("wp_secret", options="`ENCRYPTED`='YES'")), "wp_secret is encrypted"),
            (survey(table("wp-odd")), "table name 'wp-odd' is not a plain identifier"),
            (survey(table("wp_shared", file=False)), "wp_shared has no tablespace file of its own"),
            (survey(fulltext=["wp_posts"]), "FULLTEXT indexes (wp_posts)"),
            (survey(file_per_table=False), "innodb_file_per_table is off"),
            (survey(datadir_local=False), "the MariaDB data directory is not on this machine"),
            (survey(tables=[]), "the source has no tables"),
        ]
        for info, reason in cases:
            self.assertEqual(self.refusal(info), reason)

    def test_the_size_limit_bounds_the_write_stall(self):
        info = survey(table("wp_options", size=600 * MIB), table("wp_posts", size=600 * MIB))
        self.assertIn("more than the tablespace copy's limit", self.refusal(info, 1 << 30))
        self.assertIsNone(self.refusal(info, 2 << 30))
        self.assertEqual(self.refusal(survey(), 0), "disabled (max_bytes 0)")

    def test_unencrypted_option_is_not_a_refusal(self):
        self.assertIsNone(self.refusal(survey(table("wp_posts", options="`encrypted`=no"))))


if __name__ == "__main__":
    unittest.main()
