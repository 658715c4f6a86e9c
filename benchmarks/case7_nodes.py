"""Case 7: 1, 2 and 3 nodes on one folder and one PostgreSQL: time until every task SUCCEEDED.

Each node is a `runwatchd run -c CONFIG` process of its own, with a state dir of its own and
`[store] url` naming one PostgreSQL database (a fresh one per node count), `[store] node =
"node-K"`, `[runway] concurrency = 4` and one folder watched by polling (as on a NAS share; every
1 s, a settle time of 0.5 s, so the fixed wait before work starts is small next to the work;
each node lists the folder, so a shorter poll costs every node CPU) with an image_to_video
rule. Once every node is READY, 1,000 files of 64 KiB are renamed into the folder at once; done
is when every file's sidecar shows its task SUCCEEDED (its output downloaded).
The emulator adds 50 ms to every /v1 call (uploads' slot requests, task submits, task polls),
runs each task for 1 s with no limit on tasks at once (Runway's tier limit would measure the
tier, not runwatchd), and counts uploads and tasks: exactly one of each per file is the claim
working, more is a file uploaded or billed twice. Tasks are polled every 1 s
(RUNWATCHD_TASK_POLL_SECONDS, honoured against a loopback emulator only). Each node count runs
3 times, the counts in turns (1, 2, 3, 1, 2, 3, ...); a row is the run of median wall time, and
exactly once must hold in every run.

PostgreSQL: $RUNWATCHD_TEST_POSTGRES (a URL whose user may CREATE DATABASE), else a throwaway
server from the `pgserver` package (in the test extra, as psycopg is).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import harness as h

# RUNWATCHD_BENCH_NODES=1,3 runs only those node counts (while working on the case).
NODES = tuple(int(k) for k in os.environ.get("RUNWATCHD_BENCH_NODES", "1,2,3").split(","))
DELAY = 0.05
CONCURRENCY = 4
SIZE = 64 * 1024
TARGET_SPEEDUP = 2.2
TIMEOUT = 900.0
REPEATS = 3
RULE = {"endpoint": "image_to_video", "output_dir": "renders",
        "request": {"model": "gen4.5", "promptText": "{stem} comes to life", "ratio": "1280:720",
                    "duration": 5}}
FOLDER_SETTINGS = {"observer": "polling", "poll_interval": 1.0, "settle_seconds": 0.5}


def run(ctx: h.Context) -> h.CaseResult:
    n = 150 if ctx.quick else 1000
    d = ctx.workdir / "case7"
    staging, hot = d / "staging", d / "hot"
    staging.mkdir(parents=True)
    hot.mkdir()
    names = [f"frame_{i:05d}.jpg" for i in range(n)]
    digests = {name: h.write_media(staging / name, SIZE, f"case7-{i}")
               for i, name in enumerate(names)}
    h.flush_writes()
    # Its own emulator: no cap on tasks at once (the shared one keeps Runway's 4).
    emulator = h.EmulatorProc("--max-concurrent-tasks", str(10 * n))
    runs: dict[int, list[dict]] = {nodes: [] for nodes in NODES}
    try:
        with postgres() as server:
            # In turns, so a machine busy with other work weighs on every node count alike.
            for _ in range(1 if ctx.quick else REPEATS):
                for nodes in NODES:
                    runs[nodes].append(_one_run(emulator, server, d, nodes, names, digests))
            if ctx.profile:
                ctx.profile_dir.mkdir(parents=True, exist_ok=True)
                for nodes in sorted({min(NODES), max(NODES)}):
                    _one_run(emulator, server, d, nodes, names, digests, ctx.profile_dir)
    finally:
        emulator.stop()
    result = _result(runs, n)
    if ctx.profile:
        result.notes.append("Case 7 profiles (py-spy, separate runs, every node): "
                            "benchmarks/out/profiles/case7-*.summary.txt")
    return result


def _one_run(emulator: h.EmulatorProc, server: PostgresAdmin, d: Path, nodes: int,
             names: list[str], digests: dict[str, str], profile_dir: Path | None = None) -> dict:
    """One run of `nodes` nodes over the files; under py-spy when `profile_dir` is given."""
    staging, hot = d / "staging", d / "hot"
    _fresh(d, names)
    emulator.reset()
    emulator.faults(delay=DELAY, scope=["api"])
    database = server.create_database(f"runwatchd_bench_case7_{nodes}")
    url = server.url_of(database)
    procs: list[tuple[h.Watched, h.NotifySocket]] = []
    try:
        for k in range(1, nodes + 1):
            home = d / f"node-{k}"
            home.mkdir()
            config = h.write_config(
                home / "runwatchd.toml", state_dir=home / "state", concurrency=CONCURRENCY,
                folders=[{"path": str(hot), "recursive": False, **FOLDER_SETTINGS,
                          "rule": RULE}],
                store={"url": url, "node": f"node-{k}"})
            notify = h.NotifySocket(home)
            env = h.contender_env(emulator, home, NOTIFY_SOCKET=str(notify.path),
                                  RUNWATCHD_TASK_POLL_SECONDS="1")
            cmd = h.runwatchd_cmd("run", "-c", str(config))
            if profile_dir is not None:
                cmd = h.profiled(cmd, profile_dir / f"case7-{nodes}-nodes-node-{k}.txt")
            w = h.Watched(cmd, env=env, cwd=home, log_path=home / "stderr.log")
            procs.append((w, notify))
        for k, (w, notify) in enumerate(procs, 1):
            if not _ready(w, notify, 120):
                lines = w.log_path.read_text(errors="replace").strip().splitlines() or ["-"]
                h.log(f"case 7: node-{k} of {nodes} did not get ready: {lines[-1]}")
                return {"failed": f"node-{k} did not start: {lines[-1]}"}
        cpu0 = [w.cpu() for w, _ in procs]
        others0 = (_cpu_of(emulator.proc.pid), server.cpu())
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        for name in names:
            os.rename(staging / name, hot / name)
        t_done, succeeded, t_uploaded = _wait_succeeded(hot, names, t0)
        cpu = [w.cpu() - c for (w, _), c in zip(procs, cpu0, strict=True)]
        others = (_cpu_of(emulator.proc.pid), server.cpu())
        load = max(load0, os.getloadavg()[0])
    finally:
        # py-spy writes its profile on SIGINT (and passes it on).
        measured = [w.stop(sig=signal.SIGINT if profile_dir else signal.SIGTERM)
                    for w, _ in procs]
        for _, notify in procs:
            notify.close()
        transactions = server.transactions(database)
        server.drop_database(database)
    stats = emulator.stats()
    objects = list(emulator.objects().values())
    stored_right = {o["filename"] for o in objects if digests.get(o["filename"]) == o["sha256"]}
    logs = {k: (d / f"node-{k}" / "stderr.log").read_text(errors="replace")
            for k in range(1, nodes + 1)}
    if profile_dir is not None:
        for k in range(1, nodes + 1):
            raw = profile_dir / f"case7-{nodes}-nodes-node-{k}.txt"
            raw.with_suffix(".summary.txt").write_text(h.summarize_profile(raw) + "\n")
    wall = (t_done or time.monotonic()) - t0
    h.log(f"case 7: {nodes} node(s): {wall:.1f} s, {succeeded}/{len(names)} SUCCEEDED, "
          f"{stats['uploads_completed']} uploads, {stats['tasks_created']} tasks, "
          f"CPU {' + '.join(f'{c:.1f}' for c in cpu)} s")
    return {"wall": wall, "done": t_done is not None, "succeeded": succeeded, "cpu": cpu,
            "rss": max(m.peak_rss for m in measured), "uploads": stats["uploads_completed"],
            "tasks": stats["tasks_created"], "api_calls": stats["api_calls_total"],
            "stored_right": len(stored_right), "errors": _error_lines(logs),
            "emulator_cpu": _minus(others[0], others0[0]), "db_cpu": _minus(others[1], others0[1]),
            "load": load, "transactions": transactions,
            "uploaded": None if t_uploaded is None else t_uploaded - t0}


def _ready(w: h.Watched, notify: h.NotifySocket, timeout: float) -> bool:
    """READY=1 within `timeout`; False at once when the node exited instead."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if notify.wait_for("READY=1", 0.5) is not None:
            return True
        with contextlib.suppress(psutil.Error):
            if w.ps.status() == psutil.STATUS_ZOMBIE:
                return False
    return False


def _fresh(d: Path, names: list[str]) -> None:
    """Every file back in staging, no sidecars, outputs or node dirs (a run's leftovers)."""
    staging, hot = d / "staging", d / "hot"
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.rename(hot / name, staging / name)
    shutil.rmtree(hot)
    hot.mkdir()
    for node_dir in d.glob("node-*"):
        shutil.rmtree(node_dir)


def _wait_succeeded(hot: Path, names: list[str],
                    t0: float) -> tuple[float | None, int, float | None]:
    """When every file's sidecar shows its task SUCCEEDED (None after TIMEOUT), how many did,
    and when every file had a sidecar (was uploaded, to within 0.5 s); progress logged every
    10 s. Times are monotonic, like `t0`."""
    pending = set(names)
    t_uploaded = None
    # Done is the last SUCCEEDED sidecar's write, by its mtime: exact however seldom this loop
    # looks (it looks every 0.5 s, so as not to take CPU from the nodes).
    wall_offset = time.time() - time.monotonic()
    last = 0
    seen: dict[str, int] = {}  # sidecar mtime_ns when last read: read again only once changed
    deadline = t0 + TIMEOUT
    next_log = t0 + 10
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            sidecar = hot / f"{name}.runway.json"
            try:
                mtime = sidecar.stat().st_mtime_ns
                if seen.get(name) == mtime:
                    continue
                seen[name] = mtime
                data = json.loads(sidecar.read_text())
            except (OSError, ValueError):
                continue
            if (data.get("task") or {}).get("status") == "SUCCEEDED":
                pending.discard(name)
                last = max(last, mtime)
        if t_uploaded is None and len(seen) == len(names):
            t_uploaded = time.monotonic()
        if time.monotonic() >= next_log:
            h.log(f"case 7: {len(names) - len(pending)}/{len(names)} SUCCEEDED after "
                  f"{time.monotonic() - t0:.0f} s")
            next_log += 10
        if pending:
            time.sleep(0.5)
    done = None if pending else max(t0, last / 1e9 - wall_offset)
    if t_uploaded is not None and done is not None:
        t_uploaded = min(t_uploaded, done)  # seen in the same look as the last SUCCEEDED
    return done, len(names) - len(pending), t_uploaded


def _cpu_of(pid: int) -> float | None:
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return t.user + t.system


def _minus(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _error_lines(logs: dict[int, str]) -> list[str]:
    return [f"node-{k}: {line}" for k, text in logs.items() for line in text.splitlines()
            if " ERROR " in line or "Traceback" in line]


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the slower middle one of an even count), or a failed one;
    it carries every run's wall time."""
    failed = [r for r in runs if "failed" in r]
    if failed:
        return failed[0]
    ordered = sorted(runs, key=lambda r: r["wall"])
    return {**ordered[len(ordered) // 2], "walls": [r["wall"] for r in runs],
            "uploads_max": max(r["uploads"] for r in runs),
            "tasks_max": max(r["tasks"] for r in runs)}


def _result(all_runs: dict[int, list[dict]], n: int) -> h.CaseResult:
    result = h.CaseResult()
    runs = {nodes: _median_run(rs) for nodes, rs in all_runs.items() if rs}
    base = runs.get(1)
    if base is not None and "failed" in base:
        base = None
    label = f"7. {n} files, one folder, API +50 ms"
    for nodes, r in runs.items():
        if "failed" in r:
            result.rows.append(h.Row(label, _contender(nodes), "n/a", figure=r["failed"],
                                     target=h.verdict(False, "every node starts")))
            continue
        row = h.Row(label, _contender(nodes),
                    h.fmt_s(r["wall"]) + ("" if r["done"] else " (not done)"),
                    h.fmt_s(sum(r["cpu"])), h.fmt_mb(r["rss"]))
        walls = " / ".join(h.fmt_s(w) for w in r["walls"])
        row.figure = (f"runs {walls}; "
                      f"uploads/file {r['uploads'] / n:.2f}; tasks/file {r['tasks'] / n:.2f}; "
                      f"{r['succeeded']}/{n} SUCCEEDED; stored whole {r['stored_right']}/{n}; "
                      f"all uploaded after {h.fmt_s(r['uploaded'])}; {r['api_calls']} API "
                      f"calls; {_per_file(r['transactions'], n)} database transactions per file; "
                      f"CPU per node {' / '.join(f'{c:.1f}' for c in r['cpu'])} s, "
                      f"emulator {_fmt_cpu(r['emulator_cpu'])}, PostgreSQL "
                      f"{_fmt_cpu(r['db_cpu'])}; load average {r['load']:.1f}")
        # Exactly once in every run, not only in the median one.
        once = r["uploads_max"] == n and r["tasks_max"] == n and r["done"]
        speedup = None if base is None else base["wall"] / r["wall"]
        if r is base:
            row.ratio = "1.0x (baseline)"
        elif speedup is not None:
            row.ratio = f"{speedup:.2f}x faster than 1 node"
        if nodes == 3:
            row.target = h.verdict(speedup is not None and speedup >= TARGET_SPEEDUP and once,
                                   f">= {TARGET_SPEEDUP}x faster than 1 node, 1.0 uploads and "
                                   "tasks per file")
        else:
            row.target = h.verdict(once, "1.0 uploads and tasks per file")
        result.rows.append(row)
        if r["errors"]:
            result.notes.append(f"Case 7, {nodes} node(s): {len(r['errors'])} error lines, "
                                f"first: {r['errors'][0][:300]}")
    result.notes.append(
        "Case 7: wall = from renaming the files into the folder (every node READY) to the last "
        "sidecar showing SUCCEEDED; CPU = all nodes' CPU over that time (the emulator and "
        "PostgreSQL run beside them on the same cores); peak RSS = the largest node's. Uploads "
        "and tasks per file are the emulator's counts over the files.")
    top = runs.get(max(runs)) if runs else None
    if base is not None and top is not None and "failed" not in top and top is not base:
        result.notes.append(_cpu_bound_note(base, top, max(runs)))
    result.notes.append(PROFILE_NOTE)
    return result


PROFILE_NOTE = (
    "Case 7 profile (2026-12-02, py-spy --gil of every node, PostgreSQL's statement log, 1 and 3 "
    "nodes): a node's Python time goes to the worker path (upload, submit: 33-44%), the task "
    "follower (21-24%), the polling observer listing the folder every 0.5 s (11% with 1 node, "
    "19% each with 3: every node lists all of it) and the store client (9-13%); the prompt limit "
    "parsed the endpoint's JSON schema on every submission (4-8%, now cached: "
    "generation/prompts.py). Per file, 1 node sends PostgreSQL ~51 statements: 13 empty ones "
    "(psycopg_pool's check=ConnectionPool.check_connection, a round trip before every store "
    "call), 11 SELECTs of the file's row, 9 BEGIN/COMMIT pairs, 6 UPDATEs and 1 INSERT, 1 lease "
    "and 0.8 releases. With 3 nodes: 3.3 lease attempts per file (2.3 find it HELD), 1 holder "
    "lookup, and 2.4 more row SELECTs and 6 more pool checks than with 1. Dropping the pool "
    "check halved the transactions PostgreSQL counts (25.9 -> 13.0 per file) but not its CPU "
    "(5.0 -> 4.8 s): the database is not the bottleneck; CPU per file on 2 shared cores is.")


def _all_cpu(r: dict) -> float:
    return sum(r["cpu"]) + (r["emulator_cpu"] or 0.0) + (r["db_cpu"] or 0.0)


def _cpu_bound_note(base: dict, top: dict, nodes: int) -> str:
    """What the machine's cores allow: the CPU the runs took, against the wall time."""
    cores = os.cpu_count() or 1
    floor = _all_cpu(top) / cores
    return (f"Case 7, what bounds it: {nodes} nodes took {_all_cpu(top):.1f} CPU s (nodes, "
            f"emulator and PostgreSQL) for what 1 node did with {_all_cpu(base):.1f}, so on "
            f"{cores} cores they need at least {floor:.1f} s even on an otherwise idle machine: "
            f"at most {base['wall'] / floor:.2f}x the 1-node wall time measured here (the nodes "
            f"alone took {sum(top['cpu']):.1f} CPU s against {sum(base['cpu']):.1f}). The 1-node "
            f"run is one process at {sum(base['cpu']) / base['wall']:.0%} of one core (API and "
            "database latency and one interpreter bound it); the 3-node run is bounded by the "
            f"cores (load average {base['load']:.1f} and {top['load']:.1f}, the runs' own threads "
            "and any other work on the machine). Nodes on hosts of their own would not share "
            "cores.")


def _per_file(count: int | None, n: int) -> str:
    return "n/a" if count is None else f"{count / n:.1f}"


def _fmt_cpu(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.1f} s"


def _contender(nodes: int) -> str:
    return f"runwatchd run x {nodes} ({'node' if nodes == 1 else 'nodes'}, one PostgreSQL)"


# -- PostgreSQL ----------------------------------------------------------------------------------


class PostgresAdmin:
    """A server this case may create databases on, through its admin URL."""

    def __init__(self, admin_url: str, postmaster: int | None = None) -> None:
        self.admin_url = admin_url
        self.postmaster = postmaster  # known when this case started the server

    def cpu(self) -> float | None:
        """CPU seconds of the server and its backends alive now (None: a server not ours)."""
        if self.postmaster is None:
            return None
        import psutil

        try:
            main = psutil.Process(self.postmaster)
            procs = [main, *main.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def url_of(self, database: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{database}"))

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def transactions(self, database: str) -> int | None:
        """Transactions committed or rolled back in `database` so far (the server's statistics,
        flushed when each backend's transaction ends: close enough once its clients stopped)."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                               "WHERE datname = %s", (database,)).fetchone()
        return None if row is None else int(row[0])

    def create_database(self, name: str) -> str:
        self.drop_database(name)  # left over by an interrupted run
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres() -> Iterator[PostgresAdmin]:
    """$RUNWATCHD_TEST_POSTGRES's server, else a pgserver one, stopped and removed at the end."""
    given = os.environ.get("RUNWATCHD_TEST_POSTGRES", "").strip()
    if given:
        yield PostgresAdmin(given)
        return
    try:
        with warnings.catch_warnings():  # platformdirs warns without $XDG_RUNTIME_DIR
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise RuntimeError("case 7 needs PostgreSQL: set RUNWATCHD_TEST_POSTGRES, or install "
                           "the test extra (pgserver, psycopg): pip install -e '.[test]'") from None
    pgdata = Path(tempfile.mkdtemp(prefix="runwatchd-bench-pg-"))
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        yield PostgresAdmin(server.get_uri(), pid)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)
