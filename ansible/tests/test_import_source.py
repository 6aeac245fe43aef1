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
    """entries: (name, bytes | ('dir',) | ('sym', target) | ('lnk', target))"""
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data == ("dir",):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
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


# hard links too: (name, ('lnk', target))
tar_entries = tar_of


class FakeDump:
    """DumpLoad's interface for stream_archive, without a database."""

    def __init__(self):
        self.started = False
        self.aborted = False
        self.path = None
        self.read = b""

    def start(self, path, gz, growing):
        self.started, self.path, self.growing = True, path, growing

    def abort(self):
        self.aborted = True


class Streaming(unittest.TestCase):
    """The one-pass read of Import.stage_import: members checked while they are extracted into a
    staging directory; nothing is ever written outside it or through a link."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.job = imp.Import.__new__(imp.Import)
        self.job.p = {"import_max_bytes": 10 ** 9}
        self.job.facts = {}
        self.job.timer = imp.Timer()

    def stream(self, entries, sha256=None, **lay_attrs):
        path = os.path.join(self.dir, "a.tgz")
        tar_entries(path, entries)
        stage = tempfile.mkdtemp(dir=self.dir)
        lay = imp.Layout()
        lay.content_tar = path
        lay.hashed = imp.HashedFile(path, sha256, "the archive")
        for k, v in lay_attrs.items():
            setattr(lay, k, v)
        dump = FakeDump()
        checks = self.job.stream_archive(lay, stage, dump)
        return lay, checks, stage, dump

    def refused(self, entries, code="IMPORT_UNSAFE_ARCHIVE", **kw):
        with self.assertRaises(imp.ArchiveError) as cm:
            self.stream(entries, **kw)
        self.assertEqual(cm.exception.code, code, entries)
        return cm.exception

    def test_good_archive_is_staged_once_and_laid_out(self):
        entries = [("site", ("dir",)), ("site/db.sql", DUMP), ("site/files/themes/t/style.css", b"css"),
                   ("site/files/uploads/a.png", b"png"), ("site/files/themes/t/link", ("sym", "style.css")),
                   ("site/files/themes/t/hard", ("lnk", "site/files/themes/t/style.css")),
                   ("site/meta.json", b'{"source_url": "http://old.example"}')]
        lay, checks, stage, dump = self.stream(entries)
        self.assertEqual(dump.path, os.path.join(stage, "site/db.sql"))  # loading began when it was seen
        self.assertIsNotNone(dump.growing)
        with open(dump.path, "rb") as fh:
            self.assertEqual(fh.read(), DUMP)

        def read_meta(m):
            with open(os.path.join(stage, imp.norm(m.name)), "rb") as fh:
                return fh.read()

        imp.archive_layout(lay, checks.names, checks.links, read_meta)
        self.assertEqual((lay.base, lay.content, lay.dump.name), ("site/", "site/files", "site/db.sql"))
        self.assertEqual(lay.meta["source_url"], "http://old.example")
        self.assertEqual(os.readlink(os.path.join(stage, "site/files/themes/t/link")), "style.css")
        self.assertEqual(os.stat(os.path.join(stage, "site/files/themes/t/hard")).st_nlink, 2)
        self.assertIn("import_sha256", self.job.facts)

    def test_unsafe_members_are_refused_while_streaming(self):
        cases = [
            [("../evil.php", b"x")],
            [("/etc/passwd", b"x")],
            [("files/themes/t", ("sym", "../../../etc"))],
            [("files/x", ("sym", "/etc/passwd"))],
            # a member behind an EARLIER symlink, and one behind a LATER symlink
            [("files/t", ("sym", "themes")), ("files/t/x.php", b"x")],
            [("files/t/x.php", b"x"), ("files/t", ("sym", "themes"))],
            # a symlink over an already extracted directory, a file over one
            [("files/themes", ("dir",)), ("files/themes", ("sym", "plugins"))],
            [("files/themes/a.php", b"x"), ("files/themes", b"not a dir")],
            # a symlink replacing an earlier file (the dump being loaded, say)
            [("db.sql", DUMP), ("db.sql", ("sym", "files/x"))],
            # hard links: to a later member, to a directory, to a symlink
            [("files/h", ("lnk", "files/later")), ("files/later", b"x")],
            [("files/d", ("dir",)), ("files/h", ("lnk", "files/d"))],
            [("files/l", ("sym", "x")), ("files/h", ("lnk", "files/l"))],
            # a member below a file
            [("files/a", b"x"), ("files/a/b", b"y")],
        ]
        for entries in cases:
            self.refused(entries)
        # nothing escaped the staging directories
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.dir), "evil.php")))

    def test_device_and_truncated_archives(self):
        path = os.path.join(self.dir, "dev.tgz")
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("files/fifo")
            info.type = tarfile.FIFOTYPE
            tar.addfile(info)
        lay = imp.Layout()
        lay.content_tar = path
        with self.assertRaises(imp.ArchiveError) as cm:
            self.job.stream_archive(lay, tempfile.mkdtemp(dir=self.dir), FakeDump())
        self.assertEqual(cm.exception.code, "IMPORT_UNSAFE_ARCHIVE")
        tar_entries(path, [("db.sql", DUMP * 3000), ("files/x", os.urandom(300000))])
        with open(path, "rb") as fh:
            data = fh.read()
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
        with self.assertRaises(imp.ArchiveError) as cm:
            self.job.stream_archive(lay, tempfile.mkdtemp(dir=self.dir), FakeDump())
        self.assertEqual(cm.exception.code, "IMPORT_INVALID_ARCHIVE")
        with open(path, "wb") as fh:
            fh.write(b"plain text, not a tar")
        with self.assertRaises(imp.ArchiveError) as cm:
            self.job.stream_archive(lay, tempfile.mkdtemp(dir=self.dir), FakeDump())
        self.assertEqual(cm.exception.code, "IMPORT_INVALID_ARCHIVE")

    def test_checksum_is_checked_in_the_same_read_and_comes_first(self):
        entries = [("db.sql", DUMP), ("files/index.php", b"<?php")]
        self.refused(entries, code="IMPORT_CHECKSUM_MISMATCH", sha256="0" * 64)
        # an unsafe archive with a wrong checksum: the checksum mismatch is reported
        self.refused([("db.sql", DUMP), ("../evil", b"x")], code="IMPORT_CHECKSUM_MISMATCH", sha256="0" * 64)
        path = os.path.join(self.dir, "a.tgz")
        tar_entries(path, entries)
        import hashlib
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        self.stream(entries, sha256=digest)
        self.assertEqual(self.job.facts["import_sha256"], digest)
        self.job.p["import_max_bytes"] = 10
        self.refused(entries, code="IMPORT_TOO_LARGE")

    def test_layout_refusals(self):
        # no dump, two dumps, no files/ directory
        for entries, code in (([("files/index.php", b"x")], "IMPORT_MISSING_DUMP"),
                              ([("a.sql", DUMP), ("b.sql", DUMP), ("files/index.php", b"x")], "IMPORT_MISSING_DUMP"),
                              ([("db.sql", DUMP), ("other/index.php", b"x")], "IMPORT_INVALID_ARCHIVE")):
            lay, checks, stage, _ = self.stream(entries)
            with self.assertRaises(imp.ArchiveError) as cm:
                imp.archive_layout(lay, checks.names, checks.links, lambda m: b"{}")
            self.assertEqual(cm.exception.code, code, entries)
        # a content link out of uploads/
        lay, checks, stage, _ = self.stream([("db.sql", DUMP), ("files/uploads/l", ("sym", "../themes/t.css"))])
        with self.assertRaises(imp.ArchiveError) as cm:
            imp.archive_layout(lay, checks.names, checks.links, lambda m: b"{}")
        self.assertEqual(cm.exception.code, "IMPORT_UNSAFE_ARCHIVE")

    def test_dump_candidates(self):
        self.assertTrue(imp.dump_candidate("db.sql"))
        self.assertTrue(imp.dump_candidate("site/site.sql.gz"))
        self.assertFalse(imp.dump_candidate("files/x.sql"))
        self.assertFalse(imp.dump_candidate("site/files/x.sql"))
        self.assertFalse(imp.dump_candidate("db.sql.txt"))


FAKE_CLIENT = r"""
import re, sys
out = open(sys.argv[1] + "." + str(__import__("os").getpid()), "wb")
for line in sys.stdin.buffer:
    out.write(line)
    m = re.match(rb"SELECT '(pressluft-mark-[0-9]+)';", line)
    if m:
        out.flush()
        sys.stdout.buffer.write(m.group(1) + b"\n")
        sys.stdout.buffer.flush()
    if line.startswith(b"BOOM"):
        sys.stderr.write("ERROR 1064 (42000) at line 3: syntax error\n")
        sys.exit(1)
out.close()
"""

MYSQLDUMP = b"""/*M!999999\\- enable the sandbox mode */ 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
--
/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `src`;
USE `src`;

DROP TABLE IF EXISTS `wp_options`;
CREATE TABLE `wp_options` (
  `id` int NOT NULL
) ENGINE=InnoDB;
LOCK TABLES `wp_options` WRITE;
/*!40000 ALTER TABLE `wp_options` DISABLE KEYS */;
INSERT INTO `wp_options` VALUES
(1,'a;'),
(2,'b');
INSERT INTO `wp_options` VALUES (3,'c\\nINSERT INTO x VALUES (1);');
/*!40000 ALTER TABLE `wp_options` ENABLE KEYS */;
UNLOCK TABLES;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER trg AFTER INSERT ON wp_options FOR EACH ROW BEGIN
INSERT INTO log VALUES (1);
END */;;
DELIMITER ;
CREATE TABLE `wp_posts` (`ID` int);
INSERT INTO `wp_posts` VALUES (1);
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
"""


class DumpLoader(unittest.TestCase):
    """pressluft_dumpload.Loader with a fake client (it records what it is sent and answers the
    barrier marks): INSERTs spread over the workers, everything else on worker 0 in order."""

    def setUp(self):
        from ansible.module_utils import pressluft_dumpload as dl
        self.dl = dl
        self.dir = tempfile.mkdtemp()
        self.client = os.path.join(self.dir, "client.py")
        with open(self.client, "w") as fh:
            fh.write(FAKE_CLIENT)

    def load(self, data, workers=2):
        out = os.path.join(self.dir, "out%d" % len(os.listdir(self.dir)))
        loader = self.dl.Loader([sys.executable, self.client, out], workers, self.dir)
        tables = loader.load(io.BufferedReader(io.BytesIO(data)))
        sent = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith(os.path.basename(out) + "."):
                with open(os.path.join(self.dir, name), "rb") as fh:
                    sent.append(fh.read())
        return loader, tables, sent

    def test_mysqldump_stream_is_split(self):
        loader, tables, sent = self.load(MYSQLDUMP)
        self.assertTrue(loader.parallel)
        self.assertEqual(tables, ["wp_options", "wp_posts"])
        self.assertEqual(len(sent), 2)
        every = b"".join(sent)
        for gone in (b"LOCK TABLES", b"UNLOCK TABLES", b"DISABLE KEYS", b"CREATE DATABASE", b"USE `"):
            self.assertNotIn(gone, every)
        # every statement arrived exactly once; the session settings on every worker
        for stmt in (b"INSERT INTO `wp_options` VALUES\n(1,'a;'),\n(2,'b');\n",
                     b"INSERT INTO `wp_options` VALUES (3,'c\\nINSERT INTO x VALUES (1);');\n",
                     b"INSERT INTO `wp_posts` VALUES (1);\n", b"CREATE TABLE `wp_posts` (`ID` int);\n",
                     b"INSERT INTO log VALUES (1);\nEND */;;\nDELIMITER ;\n"):
            self.assertEqual(every.count(stmt), 1, stmt)
        for w in sent:
            self.assertIn(b"SET NAMES utf8mb4", w)
            self.assertIn(b"enable the sandbox mode", w)
        ddl = [w for w in sent if b"CREATE TABLE `wp_options`" in w]
        self.assertEqual(len(ddl), 1)
        self.assertIn(b"TRIGGER trg", ddl[0])
        self.assertIn(b"CREATE TABLE `wp_posts`", ddl[0])
        self.assertGreater(loader.stats["barriers"], 0)

    def test_overlong_statements_fall_back_to_one_connection_in_order(self):
        limit = self.dl.LINE_LIMIT
        self.dl.LINE_LIMIT = 60
        try:
            loader, tables, sent = self.load(MYSQLDUMP)
        finally:
            self.dl.LINE_LIMIT = limit
        every = b"".join(sent)
        for stmt in (b"(1,'a;'),\n(2,'b');\n", b"INSERT INTO `wp_posts` VALUES (1);\n",
                     b"CREATE TABLE `wp_posts` (`ID` int);\n", b"INSERT INTO log VALUES (1);\n"):
            self.assertEqual(every.count(stmt), 1, stmt)
        self.assertNotIn(b"USE `src`", every)

    def test_other_dumps_go_to_one_connection(self):
        data = b"CREATE TABLE `wp_options` (id int);\nINSERT INTO `wp_options` VALUES (1);\nUSE `x`;\n"
        loader, tables, sent = self.load(data)
        self.assertFalse(loader.parallel)
        self.assertEqual(tables, ["wp_options"])
        self.assertEqual(sent, [data.replace(b"USE `x`;\n", b"")])

    def test_a_failing_statement_is_a_load_error(self):
        with self.assertRaises(self.dl.LoadError) as cm:
            self.load(MYSQLDUMP.replace(b"CREATE TABLE `wp_posts`", b"BOOM\nCREATE TABLE `wp_posts`"))
        self.assertIn("ERROR 1064", str(cm.exception))


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
