"""Unit tests of the import module's source side (no node needed): archive and dump + wp-content
tarball inspection, member safety checks, the source parameters. Run by ansible/tests/run.sh
--static with the Ansible virtualenv's python."""
import gzip
import io
import os
import sys
import tarfile
import tempfile
import unittest

import ansible.module_utils as mu

HERE = os.path.dirname(os.path.abspath(__file__))
mu.__path__.append(os.path.join(os.path.dirname(HERE), "module_utils"))

from ansible.module_utils import pressluft_import as imp  # noqa: E402  pylint: disable=wrong-import-position

DUMP = b"""-- dump
CREATE TABLE `shop_options` (option_id int);
CREATE TABLE `shop_posts` (ID int);
CREATE TABLE `shop_users` (ID int);
INSERT INTO `shop_options` VALUES (1);
"""


def tar_of(path, entries, gz=True):
    """entries: (name, bytes | ('dir',) | ('sym', target))"""
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data == ("dir",):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, tuple) and data[0] == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


class Parts(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def path(self, name):
        return os.path.join(self.dir, name)

    def dump(self, data=DUMP, gz=False):
        p = self.path("dump")
        with (gzip.open(p, "wb") if gz else open(p, "wb")) as fh:
            fh.write(data)
        return p

    def test_wp_content_directory_or_its_contents(self):
        tar_of(self.path("a.tgz"), [("wp-content", ("dir",)), ("wp-content/themes/t/style.css", b"x"),
                                     ("wp-content/uploads/a.png", b"p")])
        lay = imp.inspect_parts(self.dump(), self.path("a.tgz"))
        self.assertEqual(lay.content, "wp-content")
        self.assertEqual(lay.tables, ["shop_options", "shop_posts", "shop_users"])
        self.assertFalse(lay.dump_gz)
        tar_of(self.path("b.tar"), [("./themes/t/style.css", b"x"), ("./uploads/a.png", b"p")], gz=False)
        lay = imp.inspect_parts(self.dump(gz=True), self.path("b.tar"))
        self.assertEqual(lay.content, "")
        self.assertTrue(lay.dump_gz)
        self.assertEqual(imp.source_prefix(lay.tables, None), "shop_")
        # one top-level wp-content entry is the contents, not a renamed wp-content
        tar_of(self.path("c.tgz"), [("uploads/2024/a.png", b"p")])
        self.assertEqual(imp.inspect_parts(self.dump(), self.path("c.tgz")).content, "")
        with imp.inspect_parts(self.dump(gz=True), self.path("b.tar")).open_dump() as fh:
            self.assertEqual(fh.read(), DUMP)

    def test_unsafe_members_are_refused(self):
        cases = [
            [("../evil.php", b"x")],
            [("/etc/passwd", b"x")],
            [("wp-content/themes/t", ("sym", "../../../etc"))],
            [("wp-content/x", ("sym", "/etc/passwd"))],
            [("wp-content/uploads/l", ("sym", "../themes/t/style.css"))],
        ]
        for i, entries in enumerate(cases):
            tar_of(self.path("u%d.tgz" % i), [("wp-content", ("dir",))] + entries)
            with self.assertRaises(imp.ArchiveError) as cm:
                imp.inspect_parts(self.dump(), self.path("u%d.tgz" % i))
            self.assertEqual(cm.exception.code, "IMPORT_UNSAFE_ARCHIVE", entries)

    def test_bad_dumps_and_tarballs(self):
        tar_of(self.path("ok.tgz"), [("wp-content/index.php", b"<?php")])
        # a truncated gzip dump
        full = gzip.compress(DUMP * 2000)
        with open(self.path("trunc"), "wb") as fh:
            fh.write(full[: len(full) // 2])
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.inspect_parts(self.path("trunc"), self.path("ok.tgz"))
        self.assertEqual(cm.exception.code, "IMPORT_INVALID_ARCHIVE")
        # a "dump" without WordPress tables
        lay = imp.inspect_parts(self.dump(b"hello\n"), self.path("ok.tgz"))
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.source_prefix(lay.tables, None)
        self.assertEqual(cm.exception.code, "IMPORT_MISSING_DUMP")
        # a declared prefix the dump does not use
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.source_prefix(imp.inspect_parts(self.dump(), self.path("ok.tgz")).tables, "wp_")
        self.assertEqual(cm.exception.code, "IMPORT_PREFIX_MISMATCH")
        # not a tar
        with open(self.path("no.tgz"), "wb") as fh:
            fh.write(b"plain text")
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.inspect_parts(self.dump(), self.path("no.tgz"))
        self.assertEqual(cm.exception.code, "IMPORT_INVALID_ARCHIVE")

    def test_download_limit_and_checksum(self):
        os.makedirs(self.path("imports"))
        src = os.path.join(self.path("imports"), "d.sql")
        with open(src, "wb") as fh:
            fh.write(DUMP)
        p = {"import_dir": self.path("imports"), "import_max_bytes": 10 ** 6, "download_timeout": 5}
        size, digest = imp.download(p, self.path("out"), "file://" + src, None, None, "the database dump")
        self.assertEqual(size, len(DUMP))
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.download(p, self.path("out"), "file://" + src, "0" * 64, None, "the database dump")
        self.assertEqual(cm.exception.code, "IMPORT_CHECKSUM_MISMATCH")
        self.assertIn("the database dump", str(cm.exception))
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.download(p, self.path("out"), "file://" + src, digest, 10, "the wp-content archive")
        self.assertEqual(cm.exception.code, "IMPORT_TOO_LARGE")
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.download(p, self.path("out"), "file:///etc/passwd", None, None, "the database dump")
        self.assertEqual(cm.exception.code, "IMPORT_INVALID_ARCHIVE")


class Source(unittest.TestCase):
    def check(self, **params):
        obj = imp.Import.__new__(imp.Import)
        obj.p = params
        obj.validate_source()

    def test_parameters(self):
        self.check(archive_url="http://x/a.tgz")
        self.check(database_url="http://x/d.sql", content_url="http://x/c.tgz", database_sha256="a" * 64)
        for bad in ({}, {"database_url": "http://x/d.sql"}, {"archive_url": "http://x/a", "content_url": "http://x/c"},
                    {"archive_url": "http://x/a", "archive_sha256": "xyz"}):
            with self.assertRaises(imp.Invalid):
                self.check(**bad)


if __name__ == "__main__":
    sys.exit(unittest.main())
