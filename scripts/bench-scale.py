#!/usr/bin/env python3
"""Scale benchmark (issue 11 item 3): time to converge N sites with 1 and with 2 replicas of
`pressluft serve` on one PostgreSQL database, and the per-site cost as N grows (10, 30, 60).

Default: a scripted node. tests/fixtures/fake-node.sh stands in for ansible-playbook (each run
sleeps JOB_SECS, default 1 s) and the nodes are 127.0.0.2 ... 127.0.0.(1+NODES), distinct SSH
endpoints of this machine's sshd (only their host keys are fetched). This measures the control
plane: scheduling, leases, the node slot limit, the playbook bound, database writes.

--real: the real playbooks over real SSH. The endpoints 127.0.0.2 ... are this machine (sshd
listens on 0.0.0.0, so every 127/8 address reaches it); every node's node_provision converges
the same machine (idempotent), and every site is a real WordPress site on it. The control key of
the benchmark's database is authorized for root while it runs and removed afterwards; every site
it created is deleted (and waited for) before it ends. Run it under the node lock:

    flock -o /tmp/pressluft-node.lock scripts/bench-scale.sh --real --counts 10 --nodes 3

Per run it prints: converge seconds (sites declared -> every environment active and no job
queued or running), seconds per site, CPU seconds per site of the pressluft processes and of
their children (ansible-playbook or the scripted node), and the p50 / max time from a site's
declaration to its environment's first successful site_create (how evenly the sites were served).
Nodes are declared and converged before the clock starts.

    BIN=target/release/pressluft scripts/bench-scale.sh [--real] [--counts 10,30,60]
        [--replicas 1,2] [--nodes 10] [--job-secs 1] [--max-playbooks 8] [--node-job-limit 4]
"""
import argparse
import random
import http.cookiejar
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("chaos", os.path.join(HERE, "replicas-chaos.py"))
chaos = importlib.util.module_from_spec(spec)
spec.loader.exec_module(chaos)
REPO = chaos.REPO
TICK = os.sysconf("SC_CLK_TCK")
VENV_PLAYBOOK = "/var/lib/pressluft/ansible-venv/bin/ansible-playbook"
AUTHORIZED = "/root/.ssh/authorized_keys"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu(pid):
    """(own, children) CPU seconds of a process (children: the ones it has waited for)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


class Replica(chaos.Replica):
    """chaos.Replica with a longer start-up allowance; `local_node` (the real mode's first replica)
    registers this machine as a node, which authorizes the control key for root: what the real
    mode needs to reach 127.0.0.2 ..."""

    up_timeout = 60


def authorized_keys():
    try:
        with open(AUTHORIZED) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait(what, cond, timeout):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v is True:
            return
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}: {v}")
        time.sleep(0.2)


def run(args, n_replicas, n_sites, tag):
    db = f"pl_bench_{os.getpid()}_{tag}"
    chaos.psql("postgres", f"CREATE DATABASE {db}")
    work = tempfile.mkdtemp(prefix="pressluft-bench-")
    env = dict(
        os.environ,
        PRESSLUFT_DATABASE_URL=f"postgres://pressluft_test:{chaos.PG_PASSWORD}@127.0.0.1:{chaos.PG_PORT}/{db}",
        PRESSLUFT_ADMIN_EMAIL=chaos.EMAIL,
        PRESSLUFT_ADMIN_PASSWORD=chaos.PASSWORD,
        PRESSLUFT_LEASE_TTL="10s",
        PRESSLUFT_RESYNC_INTERVAL="10m",
        PRESSLUFT_PROBE_INTERVAL="1h",
        PRESSLUFT_RETRY_BACKOFF_BASE="2s",
        PRESSLUFT_RETRY_BACKOFF_MAX="10s",
        PRESSLUFT_NODE_JOB_LIMIT=str(args.node_job_limit),
        PRESSLUFT_MAX_PLAYBOOKS=str(args.max_playbooks),
        RUST_LOG=os.environ.get("RUST_LOG", "warn"),
    )
    if args.real:
        env["PRESSLUFT_ANSIBLE_PLAYBOOK"] = VENV_PLAYBOOK
        env["PATH"] = os.path.dirname(VENV_PLAYBOOK) + ":" + env.get("PATH", "")
    else:
        fake = os.path.join(work, "fake")
        os.makedirs(fake)
        with open(os.path.join(fake, "sleep"), "w") as f:
            f.write(str(args.job_secs))
        env["PRESSLUFT_ANSIBLE_PLAYBOOK"] = os.path.join(REPO, "tests/fixtures/fake-node.sh")
        env["PRESSLUFT_FAKE_NODE_DIR"] = fake
    replicas = [Replica(chr(ord("a") + i), chaos.BASE_PORT + i, work, env) for i in range(n_replicas)]
    keys_before = authorized_keys()
    # real: the first replica registers this machine as its local node, which authorizes the
    # control key for root (removed again at the end); that node gets no site
    replicas[0].local_node = args.real
    for r in replicas:
        r.forkserver = args.real and args.kills > 0
    n_nodes = args.nodes + (1 if args.real else 0)
    apis = []
    site_ids = []
    ok = False
    try:
        replicas[0].start()
        for r in replicas[1:]:
            shutil.copy(os.path.join(replicas[0].data, "secret.key"), os.path.join(r.data, "secret.key"))
            r.start()
        apis = [chaos.Api(r.port) for r in replicas]
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        st, _ = apis[0].call("POST", "/api/login", {"email": chaos.EMAIL, "password": chaos.PASSWORD}, opener=opener)
        assert st == 200, st
        st, tok = apis[0].call("POST", "/api/tokens", {"name": "bench"}, {"x-pressluft-csrf": "1"}, opener=opener)
        assert st == 200, (st, tok)
        for a in apis:
            a.token = tok["token"]

        node_ids = []
        for i in range(args.nodes):
            st, n = apis[i % len(apis)].call("POST", "/api/nodes", {"name": f"b{i}", "hostname": f"127.0.0.{2 + i}"})
            assert st == 202, (st, n)
            node_ids.append(n["id"])
        t_nodes = time.time()

        def nodes_active():
            active = int(chaos.psql(db, "SELECT count(*) FROM nodes WHERE status = 'active'")[0][0])
            failed = chaos.psql(db, "SELECT job_type, error_code, left(error_message, 200) FROM jobs "
                                    "WHERE status = 'failed' LIMIT 3")
            return True if active == n_nodes else f"{active}/{n_nodes} nodes active; failed jobs: {failed}"

        wait("nodes", nodes_active, 1800 if args.real else 120)
        node_secs = time.time() - t_nodes
        log(f"{n_replicas} replica(s): {n_nodes} nodes active in {node_secs:.1f} s")

        cpu0 = [cpu(r.proc.pid) for r in replicas]
        t0 = time.time()
        prefix = f"b{os.getpid() % 10000}{tag}x"
        for i in range(n_sites):
            st, s = apis[i % len(apis)].call(
                "POST", "/api/sites", {"name": f"Bench {i}", "slug": f"{prefix}{i}", "node_id": node_ids[i % args.nodes]})
            assert st == 202, (st, s)
            site_ids.append(s["id"])

        def converged():
            envs, done = (int(x) for x in chaos.psql(
                db, "SELECT count(*), count(*) FILTER (WHERE status = 'active' AND observed_generation = generation) "
                    "FROM environments")[0])
            busy = int(chaos.psql(db, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")[0][0])
            if envs == n_sites and done == n_sites and busy == 0:
                return True
            failed = chaos.psql(db, "SELECT job_type, error_code, left(error_message, 200) FROM jobs "
                                    "WHERE status = 'failed' LIMIT 3")
            return f"{done}/{envs} environments active, {busy} jobs busy; failed jobs: {failed}"

        kills = 0
        if args.kills:
            # kill -9 of a random replica (restarted at once) while jobs run, args.kills times
            deadline = time.time() + (3600 if args.real else 600)
            while kills < args.kills and time.time() < deadline:
                time.sleep(random.uniform(2, 6))
                busy = int(chaos.psql(db, "SELECT count(*) FROM jobs WHERE status = 'running'")[0][0])
                if busy == 0 and converged() is True:
                    break
                victim = random.choice(replicas)
                kills += 1
                log(f"kill -9 {victim.name} ({kills}/{args.kills}; {busy} jobs running)")
                victim.kill9()
                victim.start()
        wait("convergence", converged, 3600 if args.real else 600)
        took = time.time() - t0
        statuses, interrupted, _, problems = chaos.check_job_log(db)
        if args.kills:
            log(f"{kills} kills; jobs by status: {statuses}; JobInterrupted events: {interrupted}")
        if problems:
            raise SystemExit("FAILED: " + "; ".join(problems))
        cpu1 = [cpu(r.proc.pid) for r in replicas]
        own = sum(b[0] - a[0] for a, b in zip(cpu0, cpu1))
        children = sum(b[1] - a[1] for a, b in zip(cpu0, cpu1))
        # declaration -> first successful site_create, per site
        lat = sorted(float(r[0]) for r in chaos.psql(
            db, "SELECT EXTRACT(EPOCH FROM (min(j.finished_at)::timestamptz - e.created_at::timestamptz)) "
                "FROM environments e JOIN jobs j ON j.resource_id = e.id "
                "WHERE j.job_type = 'site_create' AND j.status = 'succeeded' GROUP BY e.id, e.created_at"))
        jobs = dict(chaos.psql(db, "SELECT status, count(*) FROM jobs GROUP BY status ORDER BY 1"))
        workers = int(chaos.psql(db, "SELECT count(DISTINCT locked_by) FROM jobs WHERE locked_by IS NOT NULL")[0][0])
        most = chaos.psql(db, "SELECT max(c) FROM (SELECT count(*) AS c FROM jobs a JOIN jobs b "
                              "ON a.node_id = b.node_id AND b.started_at <= a.started_at "
                              "AND COALESCE(b.finished_at, '9999') > a.started_at "
                              "WHERE a.started_at IS NOT NULL GROUP BY a.id) x")[0][0]
        result = {
            "mode": "real" if args.real else f"scripted node ({args.job_secs} s jobs)",
            "replicas": n_replicas, "sites": n_sites, "nodes": args.nodes,
            "converge_s": round(took, 2), "s_per_site": round(took / n_sites, 3),
            "cpu_s_per_site": round(own / n_sites, 4), "child_cpu_s_per_site": round(children / n_sites, 3),
            "site_latency_p50_s": round(lat[len(lat) // 2], 2) if lat else None,
            "site_latency_max_s": round(lat[-1], 2) if lat else None,
            "jobs": jobs, "replicas_that_ran_jobs": workers, "max_jobs_at_once_per_node": int(most or 0),
            "node_converge_s": round(node_secs, 1), "kills": kills, "interrupted": int(interrupted),
            "invariants": "ok (no overlap in the job log, no duplicates, nothing running)",
        }
        log(json.dumps(result))
        ok = True
        return result
    finally:
        if args.real and site_ids and apis:
            log(f"cleanup: deleting the {len(site_ids)} sites")
            for i, sid in enumerate(site_ids):
                api = apis[i % len(apis)]
                st, site = api.call("GET", f"/api/sites/{sid}")
                if st == 200:
                    st, body = api.call("DELETE", f"/api/sites/{sid}?state_version={site['state_version']}")
                    if st != 202:
                        log(f"cleanup: DELETE site {sid}: {st} {body}")
            try:
                wait("site deletion",
                     lambda: True if int(chaos.psql(db, "SELECT count(*) FROM environments")[0][0]) == 0
                     else chaos.psql(db, "SELECT count(*) FROM environments")[0][0] + " environments left", 1800)
                log("cleanup: every site deleted")
            except SystemExit as e:
                log(f"cleanup FAILED: {e}; database {db} and {work} kept")
                ok = False
                os.environ["KEEP"] = "1"
        for r in replicas:
            r.stop()
        if args.real:
            # the control key this run authorized (lines that were not there before it started)
            before = set(keys_before)
            added = [l for l in authorized_keys() if l not in before and l.endswith(" pressluft")]
            if added:
                kept = [l for l in authorized_keys() if l not in added]
                with open(AUTHORIZED, "w") as f:
                    f.write("".join(l + "\n" for l in kept))
                log(f"cleanup: removed the {len(added)} key line(s) this run authorized")
        if not os.environ.get("KEEP"):
            try:
                chaos.psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            except subprocess.CalledProcessError:
                pass
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs kept in {work}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", action="store_true", help="real playbooks on this machine (run under the node lock)")
    p.add_argument("--counts", default=None, help="site counts (default 10,30,60; --real: 10)")
    p.add_argument("--replicas", default=None, help="replica counts (default 1,2; --real: 1)")
    p.add_argument("--nodes", type=int, default=None, help="nodes 127.0.0.2... (default 10; --real: 3)")
    p.add_argument("--job-secs", type=float, default=1.0, help="scripted node: seconds per job")
    p.add_argument("--max-playbooks", type=int, default=8)
    p.add_argument("--kills", type=int, default=0, help="kill -9 a random replica this many times while converging")
    p.add_argument("--node-job-limit", type=int, default=4)
    args = p.parse_args()
    counts = [int(x) for x in (args.counts or ("10" if args.real else "10,30,60")).split(",")]
    reps = [int(x) for x in (args.replicas or ("1" if args.real else "1,2")).split(",")]
    args.nodes = args.nodes or (3 if args.real else 10)
    if not os.path.exists(chaos.BIN):
        raise SystemExit(f"{chaos.BIN} missing: cargo build first (or set BIN)")
    if args.real and not os.path.exists(VENV_PLAYBOOK):
        raise SystemExit(f"{VENV_PLAYBOOK} missing: scripts/ansible-venv.sh")
    mode = "REAL playbooks over SSH on this machine" if args.real else \
        f"scripted node (tests/fixtures/fake-node.sh, {args.job_secs:g} s per job; no playbook runs)"
    print(f"pressluft scale benchmark: {mode}; {args.nodes} nodes (127.0.0.2-{1 + args.nodes}); "
          f"--max-playbooks {args.max_playbooks} per replica, --node-job-limit {args.node_job_limit}; "
          f"PostgreSQL; binary {chaos.BIN}", flush=True)
    results = []
    for r in reps:
        for n in counts:
            results.append(run(args, r, n, f"r{r}n{n}"))
    cols = [("replicas", "replicas"), ("sites", "sites"), ("converge_s", "converge s"),
            ("s_per_site", "s/site"), ("cpu_s_per_site", "CPU s/site"),
            ("child_cpu_s_per_site", "child CPU s/site"), ("site_latency_p50_s", "site p50 s"),
            ("site_latency_max_s", "site max s"), ("max_jobs_at_once_per_node", "max jobs/node"),
            ("replicas_that_ran_jobs", "replicas used")]
    print()
    print("| " + " | ".join(h for _, h in cols) + " |")
    print("|" + "---|" * len(cols))
    for res in results:
        print("| " + " | ".join(str(res[k]) for k, _ in cols) + " |")
    print()
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
