"""Pre-started ansible-playbook: one Python process imports ansible-core once, then forks a fresh
child per run that executes `ansible.cli.playbook.main()` - the code of the `ansible-playbook`
script - with the caller's stdio, arguments and environment.

Starting ansible-playbook costs ~0.7 s on a small machine, most of it importing ansible-core;
a site creation is one short playbook, so that start-up is a large part of it. The Pressluft
runner starts `serve` once (it ends when its stdin closes) and runs every playbook through
`run`, a small client that passes its stdin/stdout/stderr to the server over a Unix socket and
exits with the child's status. Without the server (not started, gone, or started under another
Ansible configuration) `run` executes the real ansible-playbook instead: same result, slower.

    python forkserver.py serve SOCKET
    python forkserver.py run SOCKET ANSIBLE_PLAYBOOK [ansible-playbook arguments...]

Nothing here interprets playbooks; the child is an ordinary ansible-playbook run.
"""
import array
import json
import os
import signal
import socket
import sys

MAX_REQUEST = 1 << 20


def ansible_env(env):
    """The part of the environment ansible-core reads once, at import time."""
    return {k: v for k, v in env.items() if k.startswith("ANSIBLE_")}


# --------------------------------------------------------------------------------------- client
def run(sock_path, playbook_bin, args):
    def fallback():
        os.execv(playbook_bin, [playbook_bin] + args)

    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(sock_path)
        request = json.dumps({
            "argv": [playbook_bin] + args,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "executable": os.path.realpath(playbook_bin),
        }).encode() + b"\n"
        conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        reader = conn.makefile("rb")
        first = reader.readline().decode().split()
    except OSError:
        fallback()
    if not first or first[0] != "pid":
        conn.close()
        fallback()
    child = int(first[1])

    def forward(signum, _frame):
        try:
            os.killpg(child, signum)
        except OSError:
            pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    # SIGKILL cannot be forwarded: the server kills the child when this connection closes.
    line = reader.readline().decode().split()
    if len(line) != 2 or line[0] != "exit":
        sys.exit(255)
    code = int(line[1])
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        sys.exit(128 - code)
    sys.exit(code)


# --------------------------------------------------------------------------------------- server
def serve(sock_path):
    import hashlib
    import selectors

    # Everything ansible-playbook imports before it looks at its arguments.
    from ansible.cli import playbook as playbook_cli
    import ansible.executor.playbook_executor  # noqa: F401
    import ansible.executor.task_queue_manager  # noqa: F401
    import ansible.executor.process.worker  # noqa: F401
    from ansible import constants as C

    startup_env = ansible_env(os.environ)
    executable = os.path.realpath(os.environ.get("PRESSLUFT_FORKSERVER_EXECUTABLE", ""))
    from ansible.release import __version__ as ansible_version
    import glob
    import shutil

    # What every run loads alike, loaded once here and inherited by each fork: the collection
    # loader, and the plugins a Pressluft run uses with their documentation parsed into the
    # configuration (~40 YAML documents, ansible.builtin's routing table among them: ~0.15 s of
    # each run). A run's own init_plugin_loader() then finds it configured (the same arguments:
    # Pressluft's runs pass no collections path). Best effort: the runs load what is missing.
    def warm_plugins():
        from ansible.plugins import loader as pl
        from ansible.utils.collection_loader._collection_finder import _get_collection_metadata
        pl.init_plugin_loader([])
        _get_collection_metadata("ansible.builtin")
        pl.callback_loader.all(class_only=True)
        pl.connection_loader.get("ssh", class_only=True)
        pl.shell_loader.get("sh")
        pl.become_loader.get("sudo")
        pl.strategy_loader.get("linear", class_only=True)
        for name in ("ini", "host_list"):
            pl.inventory_loader.get(name)
        for name in ("normal", "pressluft_report", "set_fact", "fail", "command"):
            pl.action_loader.get(name, class_only=True)

    warmed = False
    try:
        warm_plugins()
        warmed = True
    except Exception:  # pylint: disable=broad-except
        pass

    # ansible-core made the server a private temporary directory at import; runs get their own.
    local_tmp_root = os.path.dirname(C.DEFAULT_LOCAL_TMP)
    shutil.rmtree(C.DEFAULT_LOCAL_TMP, ignore_errors=True)

    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    old_umask = os.umask(0o177)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    os.umask(old_umask)
    listener.listen(64)
    listener.setblocking(False)

    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin, selectors.EVENT_READ, "parent")
    # A run's end wakes the loop at once (SIGCHLD through a wakeup pipe) instead of a short poll:
    # the caller hears "exit N" as soon as the run is over.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    children = {}  # pid -> connection

    def child_main(conn, request, fds):
        # A fresh ansible-playbook: the caller's stdio, arguments, directory and environment.
        listener.close()
        conn.close()
        # before the descriptors go: the interpreter would write signal numbers into whatever file
        # later gets the wakeup pipe's descriptor number
        signal.set_wakeup_fd(-1)
        os.setpgid(0, 0)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        # Nothing of the server (listener, other runs' connections, the selector) leaks into
        # the run: like an exec'd process, it starts with its stdio only.
        os.closerange(3, min(os.sysconf("SC_OPEN_MAX"), 65536))
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["PRESSLUFT_FORKSERVER"] = "1"  # marks runs that came this way (tests check it)
        if warmed:
            import warnings
            warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been configured")
        os.chdir(request["cwd"])
        sys.argv = list(request["argv"])
        # The server's private temporary directory (and the exit handler removing it) is not
        # this run's: each run gets its own, removed when it ends.
        import atexit
        import tempfile
        atexit._clear()
        C.DEFAULT_LOCAL_TMP = tempfile.mkdtemp(prefix="ansible-local-%d-" % os.getpid(), dir=local_tmp_root)
        share_module_cache(C.DEFAULT_LOCAL_TMP)
        code = 0
        try:
            playbook_cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # pylint: disable=broad-except
            import traceback
            traceback.print_exc()
            code = 250
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:  # pylint: disable=broad-except
                pass
            shutil.rmtree(C.DEFAULT_LOCAL_TMP, ignore_errors=True)
            os._exit(code)

    def share_module_cache(local_tmp):
        # ansible-core caches each module's assembled payload (AnsiballZ) in the run's private
        # temporary directory, keyed by module name only. Runs forked from this server share one
        # cache per version of the custom modules (size, mtime of ansible/library/* and module_utils/*), so a
        # payload is assembled once instead of in every run; ansible-core itself does not change
        # while the server runs. Written atomically (temp file + rename) under a lock by ansible.
        base = os.path.dirname(os.environ.get("ANSIBLE_CONFIG", ""))
        key = hashlib.sha256(("%s\0%s\0%s" % (ansible_version, sys.executable, base)).encode())
        try:
            for sub in ("library", "module_utils"):
                d = os.path.join(base, sub)
                for name in sorted(os.listdir(d)) if os.path.isdir(d) else ():
                    st = os.stat(os.path.join(d, name))
                    key.update(("%s/%s:%d:%d;" % (sub, name, st.st_size, st.st_mtime_ns)).encode())
        except OSError:
            return
        shared = os.path.join(local_tmp_root, "pressluft-ansiballz-" + key.hexdigest()[:20])
        try:
            os.makedirs(shared, mode=0o700, exist_ok=True)
            os.symlink(shared, os.path.join(local_tmp, "ansiballz_cache"))
        except OSError:
            pass

    def accept():
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        conn.settimeout(5)
        fds = []
        try:
            msg, ancdata, _flags, _addr = conn.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(16 * 4))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", data[: len(data) - (len(data) % 4)]))
            while not msg.endswith(b"\n") and len(msg) < MAX_REQUEST:
                more = conn.recv(MAX_REQUEST)
                if not more:
                    break
                msg += more
            request = json.loads(msg)
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        acceptable = (
            len(fds) >= 3
            and ansible_env(request.get("env", {})) == startup_env
            and request.get("executable") == executable
        )
        if not acceptable:
            for fd in fds:
                os.close(fd)
            conn.sendall(b"refused\n")
            conn.close()
            return
        pid = os.fork()
        if pid == 0:
            child_main(conn, request, fds)
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(b"pid %d\n" % pid)
        except OSError:
            pass
        conn.settimeout(None)
        conn.setblocking(False)
        children[pid] = conn
        sel.register(conn, selectors.EVENT_READ, pid)

    def reap():
        for pid in list(children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            conn = children.pop(pid)
            # a run that was killed could not remove its temporary directory
            for leftover in glob.glob(os.path.join(local_tmp_root, "ansible-local-%d-*" % pid)):
                shutil.rmtree(leftover, ignore_errors=True)
            try:
                sel.unregister(conn)
            except (KeyError, ValueError):
                pass
            code = os.waitstatus_to_exitcode(status)
            try:
                conn.setblocking(True)
                conn.sendall(b"exit %d\n" % code)
            except OSError:
                pass
            conn.close()

    while True:
        for key, _ in sel.select(timeout=1.0):
            if key.data == "wake":
                try:
                    while os.read(wake_r, 4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            elif key.data == "accept":
                accept()
            elif key.data == "parent":
                if not os.read(sys.stdin.fileno(), 4096):
                    # The runner is gone: end the runs it started, then stop.
                    for pid in children:
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    try:
                        os.unlink(sock_path)
                    except OSError:
                        pass
                    os._exit(0)
            else:
                # The client went away before its run ended (it was killed): end the run.
                try:
                    data = key.fileobj.recv(1)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(key.fileobj)
                    try:
                        os.killpg(key.data, signal.SIGKILL)
                    except OSError:
                        pass
        reap()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
