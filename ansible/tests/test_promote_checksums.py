"""Unit tests of the drift checksums' format (module_utils/pressluft_promote): new baselines use
v2 (columns length-prefixed instead of QUOTE()d, ~3x cheaper), and a drift check compares in the
format its baseline was taken with, so baselines recorded before v2 stay valid. The queries run
against MariaDB in the promotion end-to-end test. Run by ansible/tests/run.sh --static."""
import os
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
mu.__path__.append(os.path.join(os.path.dirname(HERE), "module_utils"))

from ansible.module_utils import pressluft_promote as promote  # noqa: E402  pylint: disable=wrong-import-position


class ChecksumFormat(unittest.TestCase):
    def test_the_format_of_a_baseline(self):
        self.assertEqual(promote.checksum_algo({"options": [3, "v2:123"], "posts": [0, "0"]}), 2)
        self.assertEqual(promote.checksum_algo({"options": [3, "98765"], "posts": [0, "0"]}), 1)
        # empty tables are "0" in both formats; no baseline yet: the current format
        self.assertEqual(promote.checksum_algo({"posts": [0, "0"]}), 2)
        self.assertEqual(promote.checksum_algo({}), 2)
        self.assertEqual(promote.checksum_algo(None), 2)

    def test_queries(self):
        v2 = promote.checksum_sql("db", "wp_options", ["option_id", "option_name", "option_value"], True)
        self.assertIn("CONCAT(LENGTH(`option_value`), ':', `option_value`)", v2)
        self.assertIn("IF(COUNT(*) = 0, '0', CONCAT('v2:'", v2)
        self.assertNotIn("QUOTE(", v2)
        self.assertIn("WHERE NOT", v2)  # volatile options left out in both formats
        v1 = promote.checksum_sql("db", "wp_options", ["option_id", "option_name", "option_value"], True, algo=1)
        self.assertIn("QUOTE(`option_value`)", v1)
        self.assertNotIn("v2:", v1)
        self.assertIn("WHERE NOT", v1)


if __name__ == "__main__":
    unittest.main()
