"""Unit tests of the node's bytecode cache for Ansible module payloads
(ansible/files/node/pressluft_bytecode.py, installed by node-provision): payload zips get the
caching importer, the cache is consulted and filled by the hash of the source, a changed source is
compiled again, a broken entry is ignored, code reports the zip it was loaded from, and the hook
stands aside for other zips and for a cache directory others may write to. Each import runs in a
fresh interpreter (the way a module runs). Run by ansible/tests/run.sh --static."""
import hashlib
import importlib.util
import json
import marshal
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_FILES = os.path.join(os.path.dirname(HERE), "files", "node")

MODULE_UTIL = b"""
VALUE = "compiled from the zip"

def where():
    return where.__code__.co_filename

class Nested:
    def method(self):
        return self.method.__code__.co_filename
"""

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import pressluft_bytecode
pressluft_bytecode.CACHE_DIR = sys.argv[2]
sys.path.insert(0, sys.argv[3])
from ansible.module_utils import plutil
print(json.dumps({"value": plutil.VALUE, "loader": type(plutil.__loader__).__name__,
                  "file": plutil.__file__, "where": plutil.where(), "nested": plutil.Nested().method()}))
"""


def key(fullname, source):
    return hashlib.sha256(importlib.util.MAGIC_NUMBER + fullname.encode() + b"\0" + source).hexdigest()


@unittest.skipUnless(os.geteuid() == 0, "the cache is used by root only")
class BytecodeCacheTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()  # pylint: disable=consider-using-with
        self.cache = os.path.join(self.tmp.name, "cache")
        os.mkdir(self.cache, 0o700)

    def tearDown(self):
        self.tmp.cleanup()

    def payload(self, run, source=MODULE_UTIL, name="ansible_pressluft_environment_payload.zip"):
        """A payload zip as AnsiballZ writes it: a new temp directory per run."""
        d = os.path.join(self.tmp.name, run)
        os.mkdir(d)
        path = os.path.join(d, name)
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("ansible/__init__.py", "")
            z.writestr("ansible/module_utils/__init__.py", "")
            z.writestr("ansible/module_utils/plutil.py", source)
        return path

    def probe(self, zip_path):
        out = subprocess.run([sys.executable, "-S", "-c", PROBE, NODE_FILES, self.cache, zip_path],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def test_filled_then_used_and_code_names_its_zip(self):
        first = self.payload("run1")
        got = self.probe(first)
        self.assertEqual(got["loader"], "CachedZipImporter")
        self.assertEqual(got["value"], "compiled from the zip")
        self.assertEqual(got["file"], first + "/ansible/module_utils/plutil.py")
        self.assertEqual(got["where"], got["file"])
        self.assertEqual(got["nested"], got["file"])
        entry = os.path.join(self.cache, key("ansible.module_utils.plutil", MODULE_UTIL))
        self.assertTrue(os.path.isfile(entry), os.listdir(self.cache))
        # the next run (another temp directory) takes the code from the cache: an entry that says
        # something else for the same source shows it is read, and refiled to the new zip
        with open(entry, "wb") as fh:
            fh.write(marshal.dumps(compile(MODULE_UTIL.replace(b"compiled from the zip", b"from the cache"),
                                           "/elsewhere/plutil.py", "exec")))
        second = self.payload("run2")
        got = self.probe(second)
        self.assertEqual(got["value"], "from the cache")
        self.assertEqual(got["where"], second + "/ansible/module_utils/plutil.py")
        self.assertEqual(got["nested"], second + "/ansible/module_utils/plutil.py")

    def test_changed_source_is_compiled_again(self):
        self.probe(self.payload("run1"))
        changed = MODULE_UTIL.replace(b"compiled from the zip", b"a new version")
        got = self.probe(self.payload("run2", changed))
        self.assertEqual(got["value"], "a new version")
        self.assertTrue(os.path.isfile(os.path.join(self.cache, key("ansible.module_utils.plutil", changed))))

    def test_broken_entry_is_ignored(self):
        with open(os.path.join(self.cache, key("ansible.module_utils.plutil", MODULE_UTIL)), "wb") as fh:
            fh.write(b"\x00not marshal")
        got = self.probe(self.payload("run1"))
        self.assertEqual(got["value"], "compiled from the zip")
        self.assertEqual(got["loader"], "CachedZipImporter")

    def test_other_zips_and_an_unsafe_cache_are_left_alone(self):
        got = self.probe(self.payload("run1", name="library.zip"))
        self.assertEqual(got["loader"], "zipimporter")
        os.chmod(self.cache, 0o777)
        got = self.probe(self.payload("run2"))
        self.assertEqual(got["loader"], "zipimporter")
        self.assertEqual(got["value"], "compiled from the zip")
        self.assertEqual(os.listdir(self.cache), [])


if __name__ == "__main__":
    unittest.main()
