"""A SQL dump loaded into a database over several `mariadb` client connections (the import's
scratch database, issue 12): a mariadb-dump / mysqldump stream is split into statements and its
INSERTs go to N worker connections side by side, everything else stays in order.

The split relies on what mariadb-dump and mysqldump write: one statement per line for INSERTs
(newlines inside strings are escaped), a ";\\n" after every statement, DELIMITER blocks around
triggers and routines. A stream that does not start with their header (another tool's dump) is
fed whole to one connection, as `mariadb < dump` would; so is the rest of a stream from the first
line that is not what those tools write (a line longer than LINE_LIMIT).

  INSERT ... ;               -> batched, to the least busy worker
  LOCK TABLES / UNLOCK TABLES, /*!40000 ALTER TABLE ... DISABLE/ENABLE KEYS */;
                             -> dropped (they would serialize the workers)
  session SET lines, the sandbox-mode line
                             -> every worker (each keeps the session state the dump sets up)
  CREATE DATABASE / USE      -> dropped (the target database is the client's)
  comments, blank lines      -> dropped
  anything else (DROP/CREATE TABLE, views, triggers, DELIMITER blocks ...)
                             -> worker 0, after a barrier: every worker finished what it was
                                sent; the next INSERT waits until worker 0 finished it
A failing statement ends its client (--batch without --force): LoadError with its message."""
from __future__ import annotations

import queue
import re
import subprocess
import tempfile
import threading
import zlib

CHUNK = 1024 * 1024
LINE_LIMIT = 64 * 1024 * 1024
BATCH_BYTES = 1024 * 1024
HEADER_RE = re.compile(rb"^-- (?:MariaDB|MySQL) dump ")
SANDBOX = b"/*M!999999\\- enable the sandbox mode */"
SET_RE = re.compile(rb"^(?:/\*M?!\d+ SET [^\n]*\*/ ?|SET [^\n]*);\s*\Z")
KEYS_RE = re.compile(rb"^/\*!40000 ALTER TABLE `(?:[^`]|``)+` (?:DISABLE|ENABLE) KEYS \*/;\s*\Z")
CREATE_RE = re.compile(rb"CREATE TABLE (?:IF NOT EXISTS )?`([^`]{1,64})`")


class LoadError(Exception):
    """The dump could not be loaded (the client's message, or a read error of the stream)."""


def skipped_line(line):
    """CREATE DATABASE / USE lines (a dump made with --databases): the client's database is used."""
    return line.startswith(b"CREATE DATABASE") or line.startswith(b"USE `")


class Worker:
    """One `mariadb` client: a writer thread feeding its stdin from a bounded queue, a reader
    thread watching its stdout for barrier marks."""

    def __init__(self, argv, index, tmpdir):
        self.index = index
        self.err = tempfile.TemporaryFile(dir=tmpdir)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     cwd="/")
        self.queue = queue.Queue(maxsize=8)
        self.marks = queue.Queue()
        self.write_error = None
        self.killed = False
        self.pending = 0  # bytes queued and not yet written (an estimate of how busy it is)
        self.lock = threading.Lock()
        self.writer = threading.Thread(target=self._write, name="dump-writer-%d" % index, daemon=True)
        self.reader = threading.Thread(target=self._read, name="dump-reader-%d" % index, daemon=True)
        self.writer.start()
        self.reader.start()

    def _write(self):
        stdin = self.proc.stdin
        while True:
            item = self.queue.get()
            if item is None:
                break
            if self.write_error is None:
                try:
                    stdin.write(item)
                    stdin.flush()
                except (BrokenPipeError, OSError, ValueError) as exc:
                    self.write_error = exc
            with self.lock:
                self.pending -= len(item)
        try:
            stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(b"pressluft-mark-"):
                self.marks.put(line.strip())
        self.marks.put(None)

    def send(self, data):
        if self.killed:
            return
        with self.lock:
            self.pending += len(data)
        self.queue.put(data)

    def mark(self, n):
        self.send(b"SELECT 'pressluft-mark-%d';\n" % n)

    def wait_mark(self, n):
        want = b"pressluft-mark-%d" % n
        while True:
            got = self.marks.get()
            if got is None:
                self.marks.put(None)  # stays at EOF
                return False
            if got == want:
                return True

    def close(self):
        if not self.killed:
            self.queue.put(None)

    def kill(self):
        self.killed = True
        try:
            self.proc.kill()
        except OSError:
            pass
        # unblock the writer whatever the queue holds
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.queue.put(None)

    def error_text(self):
        """The client's ERROR lines (not the statement it may echo: the dump's data)."""
        self.err.seek(0)
        text = self.err.read().decode("utf-8", "replace")
        errors = [x for x in text.splitlines() if x.startswith("ERROR")]
        return ("\n".join(errors) if errors else text.strip())[-600:]


class Loader:
    """load(fh): the dump (a binary file object, decompressed) into the database the client argv
    names, over `workers` connections when the stream is a mariadb-dump / mysqldump one. Returns
    the names of the tables the dump creates (CREATE TABLE), in order; LoadError on failure."""

    def __init__(self, argv, workers=2, tmpdir=None):
        self.argv = list(argv) + ["--skip-column-names", "--unbuffered"]
        self.nworkers = max(1, int(workers))
        self.tmpdir = tmpdir
        self.workers = []
        self.tables = []
        self.marks = 0
        self.parallel = False
        self.stats = {"statements_parallel": 0, "statements_serial": 0, "barriers": 0}
        self._killed = False

    # ------------------------------------------------------------------ workers
    def _start(self, n):
        while len(self.workers) < n:
            if self._killed:
                raise LoadError("aborted")
            self.workers.append(Worker(self.argv, len(self.workers), self.tmpdir))

    def kill(self):
        self._killed = True
        for w in self.workers:
            w.kill()

    def _failed(self):
        for w in self.workers:
            if w.proc.poll() not in (None, 0) or w.write_error is not None:
                return w
        return None

    def _fail(self, detail=None):
        for w in self.workers:
            w.close()
        texts = []
        for w in self.workers:
            try:
                rc = w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
                rc = w.proc.wait()
            if rc != 0:
                texts.append(w.error_text() or "the client exited with %d" % rc)
        raise LoadError("; ".join(t for t in texts if t) or detail or "the client went away")

    def _barrier(self, workers):
        self.stats["barriers"] += 1
        self.marks += 1
        n = self.marks
        for w in workers:
            w.mark(n)
        for w in workers:
            if not w.wait_mark(n):
                self._fail()

    def _scan(self, data):
        for m in CREATE_RE.finditer(data):
            name = m.group(1).decode("utf-8", "replace")
            if name not in self.tables:
                self.tables.append(name)

    # ------------------------------------------------------------------ load
    def load(self, fh):
        try:
            self._load(fh)
            for w in self.workers:
                w.close()
            rcs = []
            for w in self.workers:
                w.writer.join()
                rcs.append(w.proc.wait())
                w.reader.join()
            if any(rcs) or any(w.write_error for w in self.workers):
                self._fail()
            return self.tables
        except BaseException:
            self.kill()
            for w in self.workers:
                try:
                    w.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            raise
        finally:
            for w in self.workers:
                w.err.close()
                w.reader.join(5)
                if not w.reader.is_alive():
                    w.proc.stdout.close()

    def _readline(self, fh):
        try:
            return fh.readline(LINE_LIMIT)
        except (OSError, EOFError, zlib.error) as exc:
            raise LoadError("the dump is truncated or corrupt: %s" % exc)

    def _load(self, fh):
        self._start(1)
        first = self._readline(fh)
        second = b""
        head = first
        if first.rstrip().startswith(SANDBOX):
            second = self._readline(fh)
            head = second
        if self.nworkers < 2 or not HEADER_RE.match(head):
            self._serial(fh, first + second)
            return
        self.parallel = True
        self._start(self.nworkers)
        workers = self.workers
        w0 = workers[0]
        for line in (first, second):
            if line:
                for w in workers:
                    w.send(line)
        other = []          # lines of the statement being gathered
        other_bytes = 0
        other_insert = False  # ... which is a multi-line INSERT
        delimiter = False   # inside a DELIMITER block
        inserts = []        # INSERT lines not yet sent
        insert_bytes = 0
        since_barrier = False  # INSERTs were sent since the last barrier of all workers
        w0_busy = False     # worker 0 was sent statements the next INSERT must wait for

        def flush_inserts():
            nonlocal inserts, insert_bytes, since_barrier
            if not inserts:
                return
            target = min(workers, key=lambda w: w.pending)
            target.send(b"".join(inserts))
            self.stats["statements_parallel"] += len(inserts)
            inserts, insert_bytes = [], 0
            since_barrier = True

        def add_insert(stmt):
            nonlocal insert_bytes, w0_busy
            if w0_busy:
                flush_inserts()
                self._barrier([w0])
                w0_busy = False
            inserts.append(stmt)
            insert_bytes += len(stmt)
            if insert_bytes >= BATCH_BYTES:
                flush_inserts()

        def flush_other():
            nonlocal other, since_barrier, w0_busy
            flush_inserts()
            if since_barrier:
                self._barrier(workers)
                since_barrier = False
            data = b"".join(other)
            self._scan(data)
            w0.send(data)
            self.stats["statements_serial"] += 1
            other = []
            w0_busy = True

        while True:
            line = self._readline(fh)
            if not line:
                break
            if not other:
                other_bytes = 0
            if not line.endswith(b"\n"):
                if len(line) >= LINE_LIMIT:
                    # not what mariadb-dump writes: from here on, everything goes to worker 0 in
                    # order (after the other workers finished what they were sent)
                    flush_inserts()
                    if since_barrier:
                        self._barrier(workers)
                    self._feed(fh, w0, b"".join(other) + line)
                    return
                line += b"\n"  # the last line without a newline
            if other:
                # the rest of a statement: mariadb-dump ends every statement with ";\n" and writes
                # no raw newline inside a string (INSERT rows one a line: "(...),\n")
                other.append(line)
                other_bytes += len(line)
                if other_bytes > LINE_LIMIT:
                    # a statement this long is not held in memory: from here on, everything goes
                    # to worker 0 in order, streamed
                    flush_inserts()
                    if since_barrier:
                        self._barrier(workers)
                    self._feed(fh, w0, b"".join(other))
                    return
                if delimiter:
                    if line.startswith(b"DELIMITER ") and line.strip() == b"DELIMITER ;":
                        delimiter = False
                        flush_other()
                elif line.endswith(b";\n"):
                    if other_insert:
                        other_insert = False
                        add_insert(b"".join(other))
                        other = []
                    else:
                        flush_other()
                continue
            if line.startswith(b"INSERT "):
                if line.endswith(b";\n"):
                    add_insert(line)
                else:
                    other.append(line)
                    other_insert = True
                continue
            if line == b"\n" or line.startswith(b"-- ") or line == b"--\n":
                continue
            if line.startswith(b"LOCK TABLES ") or line.startswith(b"UNLOCK TABLES;") or KEYS_RE.match(line):
                continue
            if skipped_line(line):
                continue
            if SET_RE.match(line) and b"GLOBAL" not in line.upper():
                flush_inserts()
                for w in workers:
                    w.send(line)
                continue
            other.append(line)
            if line.startswith(b"DELIMITER "):
                delimiter = line.strip() != b"DELIMITER ;"
                if not delimiter:
                    flush_other()
            elif line.endswith(b";\n"):
                flush_other()
        if other:
            if other_insert:
                add_insert(b"".join(other))
            else:
                flush_other()
        flush_inserts()

    def _serial(self, fh, head):
        """The whole stream to worker 0 (CREATE DATABASE / USE lines left out)."""
        self._feed(fh, self.workers[0], head)

    def _feed(self, fh, worker, head):
        pending = head
        tail = b""
        while True:
            try:
                chunk = fh.read(CHUNK)
            except (OSError, EOFError, zlib.error) as exc:
                raise LoadError("the dump is truncated or corrupt: %s" % exc)
            data = pending + chunk
            if chunk:
                cut = data.rfind(b"\n") + 1
                lines, pending = data[:cut], data[cut:]
            else:
                lines, pending = data, b""
            if lines:
                if b"CREATE DATABASE" in lines or b"\nUSE `" in b"\n" + lines:
                    lines = b"".join(x for x in lines.splitlines(True) if not skipped_line(x))
                scan = tail + lines
                self._scan(scan)
                tail = scan[-200:]
                worker.send(lines)
                self.stats["statements_serial"] += 1
            if not chunk:
                break
            if worker.write_error is not None or worker.proc.poll() is not None:
                self._fail()
