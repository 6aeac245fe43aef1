#!/usr/bin/env python3
"""Two `pressluft serve` replicas on one PostgreSQL database (issue 11), against scripted nodes:
tests/fixtures/fake-node.sh stands in for ansible-playbook (each run takes JOB_SECS), and the
nodes are 127.0.0.2 ... 127.0.0.(1+NODES), distinct SSH endpoints of this machine's sshd (only
their host keys are fetched). SITES sites are created through both replicas. While they converge,
one replica at a time gets SIGKILL at a random moment and is restarted, KILLS times. Then:

- every environment converged (active, observed generation = generation),
- no job is left queued or running,
- the job log never shows two jobs of one site (or one node) running at once, whichever replica
  ran them,
- no duplicate nodes, one environment per site, and no work done twice (two succeeded jobs of
  one resource, job type and generation).

It also reports the convergence time with the given number of replicas (REPLICAS=1 for the
baseline). LOAD_SECS=60 then runs an open-loop mixed API load of LOAD_RATE (1000) requests/s
against the replicas (reads of sites, environments, lists, events; 10% name changes) and fails
when p99 > LOAD_P99_MS (50) or any request fails (a 409 of a concurrent name change excepted). Needs PostgreSQL as scripts/test-postgres.sh sets it up (run that once as root), and
a built binary (BIN, default target/debug/pressluft). Touches no node: nothing runs on them.

    BIN=target/debug/pressluft SITES=60 NODES=10 KILLS=10 python3 scripts/replicas-chaos.py
"""
import http.cookiejar
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(REPO, "target/debug/pressluft")))
SITES = int(os.environ.get("SITES", "60"))
NODES = int(os.environ.get("NODES", "10"))
KILLS = int(os.environ.get("KILLS", "10"))
REPLICAS = int(os.environ.get("REPLICAS", "2"))
JOB_SECS = os.environ.get("JOB_SECS", "1")
LEASE_TTL = os.environ.get("LEASE_TTL", "4s")
PG_PORT = os.environ.get("PG_PORT", "5432")
PG_PASSWORD = f"pressluft-test-{os.getuid()}"
EMAIL, PASSWORD = "admin@example.com", "correct horse battery staple"
BASE_PORT = int(os.environ.get("BASE_PORT", "18281"))


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def psql(db, sql):
    env = dict(os.environ, PGPASSWORD=PG_PASSWORD)
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", PG_PORT, "-U", "pressluft_test", "-d", db, "-qtAF", "\t", "-c", sql],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


class Api:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.token = None

    def call(self, method, path, body=None, headers=None, opener=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with (opener or urllib.request.build_opener()).open(req, timeout=10) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")


class Replica:
    # register this machine as a local node (authorizes the control key for root)
    local_node = False
    # run playbooks through the forkserver (it ends a killed replica's runs when its pipe closes;
    # the scripted node is a shell script: run directly)
    forkserver = False
    up_timeout = 30

    def __init__(self, name, port, work, env):
        self.name, self.port, self.env = name, port, env
        self.data = os.path.join(work, name)
        self.logf = os.path.join(work, f"{name}.log")
        os.makedirs(self.data, exist_ok=True)
        self.proc = None

    def start(self):
        cmd = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data]
        if not self.forkserver:
            cmd.append("--no-ansible-forkserver")
        if not self.local_node:
            cmd.append("--no-local-node")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=open(self.logf, "a"), stderr=subprocess.STDOUT)
        api = Api(self.port)
        deadline = time.time() + self.up_timeout
        while time.time() < deadline:
            try:
                if api.call("GET", "/api/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not come up; see {self.logf}")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def load_phase(ports, token, site_ids, env_ids, rate, secs, conns=48):
    """Open-loop mixed API load: `rate` requests/s for `secs` seconds spread over the replicas,
    each request's latency measured from its scheduled start (no coordinated omission). Mix:
    35% GET a site, 20% GET an environment, 20% list sites, 15% list events, 10% PATCH a site's
    name (each connection owns its own sites, tracking their state_version)."""
    import asyncio

    results = []  # (kind, status, latency seconds)
    queue = asyncio.Queue()
    t_start = time.perf_counter() + 0.5

    async def connection(i):
        port = ports[i % len(ports)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        mine = site_ids[i::conns] or site_ids[:1]
        versions = {}
        rnd = random.Random(i)
        while True:
            item = await queue.get()
            if item is None:
                break
            due = item
            x = rnd.random()
            body = None
            if x < 0.35:
                kind, method, path = "get_site", "GET", f"/api/sites/{rnd.choice(site_ids)}"
            elif x < 0.55:
                kind, method, path = "get_env", "GET", f"/api/environments/{rnd.choice(env_ids)}"
            elif x < 0.75:
                kind, method, path = "list_sites", "GET", "/api/sites?limit=20"
            elif x < 0.90:
                kind, method, path = "list_events", "GET", "/api/events?limit=20"
            else:
                sid = rnd.choice(mine)
                if sid not in versions:
                    kind, method, path = "get_site", "GET", f"/api/sites/{sid}"
                else:
                    kind, method, path = "patch_site", "PATCH", f"/api/sites/{sid}"
                    body = json.dumps({"state_version": versions[sid], "name": f"Load {rnd.random():.6f}"}).encode()
            head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body) if body else 0}\r\n\r\n").encode()
            writer.write(head + (body or b""))
            await writer.drain()
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            chunked = False
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b""):
                    break
                k, _, v = h.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v.strip())
                elif k.lower() == "transfer-encoding" and "chunked" in v:
                    chunked = True
            if chunked:
                data = b""
                while True:
                    n = int((await reader.readline()).strip(), 16)
                    if n == 0:
                        await reader.readline()
                        break
                    data += await reader.readexactly(n)
                    await reader.readline()
            else:
                data = await reader.readexactly(length) if length else b""
            lat = time.perf_counter() - due
            results.append((kind, status, lat))
            if path.startswith("/api/sites/") and status in (200, 202):
                try:
                    v = json.loads(data)
                    if v.get("id") in mine:
                        versions[v["id"]] = v["state_version"]
                except ValueError:
                    pass
        writer.close()

    workers = [asyncio.create_task(connection(i)) for i in range(conns)]
    n = int(rate * secs)
    for k in range(n):
        due = t_start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return results


def check_job_log(db):
    """The invariants of a run with replicas, from the database: never two jobs of one site (or
    node) running at once whichever replica ran them, no duplicate nodes, one environment per
    site, no work done twice, nothing left running. (statuses, interrupted, workers, problems)."""
    rows = psql(db, "SELECT COALESCE(site_id, node_id), started_at, COALESCE(finished_at, '9999'), "
                    "COALESCE(locked_by, ''), status, job_type FROM jobs WHERE started_at IS NOT NULL "
                    "ORDER BY 1, 2")
    overlaps = []
    last = {}
    for scope, started, finished, by, status, job_type in rows:
        prev = last.get(scope)
        if prev and started < prev[1]:
            overlaps.append((scope, prev, (started, finished, by, status, job_type)))
        if not prev or finished > prev[1]:
            last[scope] = (started, finished, by, status, job_type)
    workers = sorted({r[3] for r in rows})
    statuses = psql(db, "SELECT status, count(*) FROM jobs GROUP BY status ORDER BY 1")
    interrupted = psql(db, "SELECT count(*) FROM events WHERE reason = 'JobInterrupted'")[0][0]
    dup_nodes = psql(db, "SELECT hostname FROM nodes GROUP BY hostname HAVING count(*) > 1")
    dup_envs = psql(db, "SELECT site_id FROM environments GROUP BY site_id HAVING count(*) > 1")
    running = psql(db, "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0]
    # the same work done twice (two succeeded jobs for one resource, job type and generation)
    twice = psql(db, "SELECT resource_id, job_type, generation FROM jobs WHERE status = 'succeeded' "
                     "GROUP BY 1, 2, 3 HAVING count(*) > 1")
    problems = []
    if overlaps:
        problems.append(f"{len(overlaps)} overlapping jobs, e.g. {overlaps[:3]}")
    if dup_nodes:
        problems.append(f"duplicate nodes: {dup_nodes}")
    if dup_envs:
        problems.append(f"sites with several environments: {dup_envs}")
    if twice:
        problems.append(f"work done twice: {twice[:5]}")
    if running != "0":
        problems.append(f"{running} jobs running")
    return statuses, interrupted, workers, problems


def report_load(results, secs):
    lat = sorted(r[2] for r in results)
    failures = [r for r in results if r[1] >= 400 and not (r[0] == "patch_site" and r[1] == 409)]
    conflicts = sum(1 for r in results if r[0] == "patch_site" and r[1] == 409)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    by_kind = {}
    for k, st, l in results:
        by_kind.setdefault(k, []).append(l)
    out = {
        "requests": len(results), "rps": round(len(results) / secs, 1),
        "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2), "max_ms": round(lat[-1] * 1000, 2),
        "failures": len(failures), "patch_conflicts_409": conflicts,
        "p99_ms_by_kind": {k: round(sorted(v)[min(len(v) - 1, int(0.99 * len(v)))] * 1000, 2) for k, v in by_kind.items()},
    }
    return out, failures


def main():
    if not os.path.exists(BIN):
        raise SystemExit(f"{BIN} missing: cargo build first")
    db = f"pl_chaos_{os.getpid()}"
    psql("postgres", f"CREATE DATABASE {db}")
    work = tempfile.mkdtemp(prefix="pressluft-chaos-")
    fake = os.path.join(work, "fake")
    os.makedirs(fake)
    with open(os.path.join(fake, "sleep"), "w") as f:
        f.write(JOB_SECS)
    env = dict(
        os.environ,
        PRESSLUFT_DATABASE_URL=f"postgres://pressluft_test:{PG_PASSWORD}@127.0.0.1:{PG_PORT}/{db}",
        PRESSLUFT_ADMIN_EMAIL=EMAIL,
        PRESSLUFT_ADMIN_PASSWORD=PASSWORD,
        PRESSLUFT_ANSIBLE_PLAYBOOK=os.path.join(REPO, "tests/fixtures/fake-node.sh"),
        PRESSLUFT_FAKE_NODE_DIR=fake,
        PRESSLUFT_LEASE_TTL=LEASE_TTL,
        PRESSLUFT_RESYNC_INTERVAL=os.environ.get("RESYNC", "60s"),
        PRESSLUFT_PROBE_INTERVAL="1h",
        PRESSLUFT_RETRY_BACKOFF_BASE="1s",
        PRESSLUFT_RETRY_BACKOFF_MAX="2s",
        PRESSLUFT_NODE_JOB_LIMIT="4",
        RUST_LOG=os.environ.get("RUST_LOG", "info"),
    )
    replicas = [Replica(chr(ord("a") + i), BASE_PORT + i, work, env) for i in range(REPLICAS)]
    ok = False
    try:
        replicas[0].start()
        for r in replicas[1:]:
            shutil.copy(os.path.join(replicas[0].data, "secret.key"), os.path.join(r.data, "secret.key"))
            r.start()
        log(f"{REPLICAS} replica(s) up on {db}; work dir {work}")
        apis = [Api(r.port) for r in replicas]
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        st, _ = apis[0].call("POST", "/api/login", {"email": EMAIL, "password": PASSWORD}, opener=opener)
        assert st == 200, st
        st, tok = apis[0].call("POST", "/api/tokens", {"name": "chaos"}, {"x-pressluft-csrf": "1"}, opener=opener)
        assert st == 200, (st, tok)
        for a in apis:
            a.token = tok["token"]

        t0 = time.time()
        node_ids = []
        for i in range(NODES):
            st, n = apis[i % len(apis)].call("POST", "/api/nodes", {"name": f"n{i}", "hostname": f"127.0.0.{2 + i}"})
            assert st == 202, (st, n)
            node_ids.append(n["id"])
        for i in range(SITES):
            st, s = apis[i % len(apis)].call(
                "POST", "/api/sites", {"name": f"Chaos {i}", "slug": f"chaos{i}", "node_id": node_ids[i % NODES]})
            assert st == 202, (st, s)
        log(f"{NODES} nodes and {SITES} sites declared")

        kills = 0
        while kills < KILLS and REPLICAS > 1:
            time.sleep(random.uniform(0.5, 3.0))
            r = random.choice(replicas)
            running = psql(db, "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0]
            r.kill9()
            kills += 1
            log(f"kill -9 {r.name} ({kills}/{KILLS}; {running} jobs running)")
            time.sleep(random.uniform(0.2, 2.0))
            r.start()

        def converged():
            envs = psql(db, "SELECT count(*) FROM environments")[0][0]
            done = psql(db, "SELECT count(*) FROM environments WHERE status = 'active' "
                            "AND observed_generation = generation")[0][0]
            busy = psql(db, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0]
            nodes = psql(db, "SELECT count(*) FROM nodes WHERE status = 'active'")[0][0]
            return int(envs), int(done), int(busy), int(nodes)

        deadline = time.time() + 600
        while True:
            envs, done, busy, nodes = converged()
            if envs == SITES and done == SITES and busy == 0 and nodes == NODES:
                break
            if time.time() > deadline:
                raise SystemExit(f"not converged: {done}/{envs} environments, {busy} jobs busy, {nodes} nodes active")
            time.sleep(0.25)
        took = time.time() - t0
        log(f"converged: {SITES} sites on {NODES} nodes in {took:.1f} s with {REPLICAS} replica(s), {kills} kills")

        statuses, interrupted, workers, problems = check_job_log(db)
        log(f"jobs by status: {statuses}; JobInterrupted events: {interrupted}; workers: {len(workers)}")
        if problems:
            raise SystemExit("FAILED: " + "; ".join(problems))
        print(json.dumps({"replicas": REPLICAS, "sites": SITES, "nodes": NODES, "kills": kills,
                          "converge_seconds": round(took, 1), "jobs": dict(statuses),
                          "interrupted": int(interrupted), "workers": len(workers)}))
        log("OK: converged, no job running, no overlap in the job log, no duplicates")
        load_secs = int(os.environ.get("LOAD_SECS", "0"))
        if load_secs:
            import asyncio
            rate = float(os.environ.get("LOAD_RATE", "1000"))
            sites = [r[0] for r in psql(db, "SELECT id FROM sites")]
            envs = [r[0] for r in psql(db, "SELECT id FROM environments")]
            log(f"load: {rate:.0f} req/s for {load_secs} s over {REPLICAS} replica(s)")
            results = asyncio.run(load_phase([r.port for r in replicas], tok["token"], sites, envs, rate, load_secs))
            out, failures = report_load(results, load_secs)
            print(json.dumps({"load": out}))
            if failures or out["p99_ms"] > float(os.environ.get("LOAD_P99_MS", "50")):
                ok = False
                raise SystemExit(f"load FAILED: p99 {out['p99_ms']} ms, {len(failures)} failures, e.g. {failures[:3]}")
            log("load OK")
        ok = True
    finally:
        for r in replicas:
            r.stop()
        try:
            if os.environ.get("KEEP"):
                log(f"database {db} kept")
            else:
                psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError:
            pass
        if ok and not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            log(f"logs kept in {work}")


if __name__ == "__main__":
    sys.exit(main())
