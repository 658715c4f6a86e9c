"""Several `runwatchd run` nodes on one folder and one store, each a real process with a state
dir and a config of its own (polling observers, as on a NAS share); the files they are given;
and what issue 11's acceptance checks read: sidecars, outputs, and the emulator's own records of
what it stored (StoredObject, with its sha256 and time) and which uploads each task used."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w
from cli_helpers import cli_env
from helpers import wait_for
from reliability_helpers import sha_of, sidecar_problems

from runwatchd.cli.demo import make_png
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.lifecycle.states import FileState
from runwatchd.store import open_view
from runwatchd.store.base import StoreView

SECRET = "key_cluster_acceptance"
RULE = {"endpoint": "image_to_video", "output_dir": "renders",
        "request": {"model": "gen4.5", "promptText": "{stem} comes to life",
                    "ratio": "1280:720", "duration": 5}}
# The daemon's INFO lines around one upload (lifecycle/uploader.py).
_UPLOADING = re.compile(r"uploading (.+) \(\d+ bytes\)$", re.MULTILINE)
_UPLOADED = re.compile(r"uploaded (.+) -> runway://", re.MULTILINE)


def fast_emulator() -> Emulator:
    """An emulator whose tasks end in a fraction of a second and never queue, with credits for
    thousands of them: the run's time goes to the nodes, not to waiting for Runway."""
    return Emulator(api_secret=SECRET, task_seconds=0.3, pending_seconds=0.05,
                    max_concurrent_tasks=200, credits=100_000_000)


def make_files(hot: Path, names: Iterable[str], seed: int = 0) -> dict[Path, str]:
    """Distinct small PNGs, each written beside the folder and renamed into it (a node never
    sees half a file); path -> sha256."""
    staging = hot.parent / "staging"
    staging.mkdir(exist_ok=True)
    made: dict[Path, str] = {}
    for i, name in enumerate(names):
        tmp = staging / name
        make_png(tmp, width=24, height=24, seed=seed * 1_000_003 + i)
        made[hot / name] = sha_of(tmp)
        os.replace(tmp, hot / name)
    assert len(made) == len(set(made.values())), "two files with one content prove less"
    return made


class Node:
    """One `runwatchd run` process: its config, its state dir, its log."""

    def __init__(self, root: Path, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.root = root
        self.state = root / "state"
        self.config = root / "runwatchd.toml"
        self.log_path = root / "daemon.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, hot: Path, store: dict[str, Any] | None, rule: dict[str, Any] | None,
                     concurrency: int) -> None:
        folder: dict[str, Any] = {"path": str(hot)}
        if rule is not None:
            folder["rule"] = rule
        data: dict[str, Any] = {
            "runway": {"concurrency": concurrency, "state_dir": str(self.state)},
            "defaults": {"settle_seconds": 0.2, "observer": "polling", "poll_interval": 0.3},
            "daemon": {"grace_seconds": 10},
            "folder": [folder],
        }
        if store is not None:
            data["store"] = store
        self.config.write_text(tomli_w.dumps(data), encoding="utf-8")

    def start(self) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runwatchd", "run", "-c", str(self.config)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root)

    def wait_ready(self, timeout: float = 30) -> None:
        assert wait_for(lambda: "ready:" in self.log() or not self.alive(), timeout, 0.05)
        assert self.alive() and "ready:" in self.log(), f"{self.name} did not start:\n" + \
            self.log()[-3000:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def unfinished_uploads(self) -> set[str]:
        """Paths this node logged "uploading" and never "uploaded" (read after it stopped, or
        while it is SIGSTOPped: its log then holds still)."""
        text = self.log()
        started = Counter(_UPLOADING.findall(text))
        started.subtract(Counter(_UPLOADED.findall(text)))
        return {path for path, n in started.items() if n > 0}

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait (SIGKILL if it does not end in time); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a test that failed may have left it stopped
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


class Cluster:
    """Nodes named node1..nodeN on one folder (`hot`) and one store (`store` is the [store]
    section every node gets, its `node` added; None: each its own default SQLite store)."""

    def __init__(self, tmp: Path, emu: Emulator, store: dict[str, Any] | None, *,
                 rule: dict[str, Any] | None = RULE, concurrency: int = 4) -> None:
        self.tmp = tmp
        self.emu = emu
        self.store = store
        self.rule = rule
        self.concurrency = concurrency
        self.hot = tmp / "hot"
        self.hot.mkdir()
        self.nodes: list[Node] = []

    def add_node(self) -> Node:
        name = f"node{len(self.nodes) + 1}"
        root = self.tmp / name
        root.mkdir()
        env = cli_env(root, self.emu.url, SECRET, RUNWATCHD_TASK_POLL_SECONDS="0.1")
        node = Node(root, name, env)
        store = None if self.store is None else {**self.store, "node": name}
        node.write_config(self.hot, store, self.rule, self.concurrency)
        self.nodes.append(node)
        return node

    def start(self, count: int) -> list[Node]:
        """`count` new nodes, started together and all ready."""
        nodes = [self.add_node() for _ in range(count)]
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        return nodes

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()

    def logs(self, tail: int = 30) -> str:
        """Every node's WARNING/ERROR lines (a repeated message once, with its count) and last
        lines, for a failing assertion's message."""
        out = []
        for n in self.nodes:
            lines = n.log().splitlines()
            bad = Counter(ln[20:] for ln in lines
                          if " WARNING " in ln or " ERROR " in ln or "Trace" in ln)
            out.append(f"--- {n.name} (alive: {n.alive()}), warnings and errors:")
            out.extend(f"{k} x {line}" for line, k in list(bad.items())[-tail:])
            out.append(f"--- {n.name}, last lines:")
            out.extend(lines[-tail // 3:])
        return "\n".join(out)


@contextmanager
def cluster(tmp: Path, emu: Emulator, store: dict[str, Any] | None,
            **kwargs: Any) -> Iterator[Cluster]:
    """A Cluster whose nodes are all stopped on the way out, whatever happened."""
    c = Cluster(tmp, emu, store, **kwargs)
    try:
        yield c
    finally:
        c.stop_all()


@contextmanager
def view_of(url: str | None, state: Path) -> Iterator[StoreView]:
    v = open_view(state, url)
    try:
        yield v
    finally:
        v.close()


# -- what the acceptance checks read -------------------------------------------------------------

def task_status(path: Path) -> str | None:
    data = sidecar.read_sidecar(path)
    return (data.get("task") or {}).get("status") if data else None


def why_not_done(path: Path, rule: bool = True) -> str | None:
    """None when `path` is done: it has a sidecar (with a SUCCEEDED task whose outputs exist,
    for a rule); else what is missing."""
    data = sidecar.read_sidecar(path)
    if data is None:
        return "no sidecar"
    if not rule:
        return None
    task = data.get("task") or {}
    if task.get("status") != "SUCCEEDED":
        return f"task {task.get('id')} {task.get('status')}"
    missing = [out for out in task.get("outputs") or [] if not (path.parent / out).is_file()]
    if not task.get("outputs") or missing:
        return f"outputs missing: {missing or 'none listed'}"
    return None


def done(files: Iterable[Path], rule: bool = True) -> int:
    """How many files are done (see why_not_done)."""
    return sum(why_not_done(path, rule) is None for path in files)


def not_done(files: Iterable[Path], view: StoreView) -> dict[str, str]:
    """file name -> what is missing and its row (state, error; or no row) for every file not
    done."""
    rows = {Path(r.path).name: r for r in view.in_state(*FileState)}
    out = {}
    for path in files:
        why = why_not_done(path)
        if why is not None:
            row = rows.get(path.name)
            out[path.name] = why + (f"; row {row.state}: {row.error}" if row else "; no row")
    return out


def wait_done(files: dict[Path, str], timeout: float, rule: bool = True,
              tick: Callable[[], None] | None = None) -> int:
    """Until every file is done (see `done`) or `timeout`; `tick` runs every 0.1 s meanwhile."""
    deadline = time.monotonic() + timeout
    last_check = 0.0
    count = 0
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if time.monotonic() - last_check >= 1.0:
            last_check = time.monotonic()
            count = done(files, rule)
            if count == len(files):
                return count
        time.sleep(0.1)
    return done(files, rule)


def bad_sidecars(files: dict[Path, str]) -> dict[str, list[str]]:
    """name -> why its sidecar is not a valid, matching description of its bytes."""
    return {p.name: problems for p in files if (problems := sidecar_problems(p))}


def objects_by_content(emu: Emulator) -> dict[str, list[Any]]:
    """sha256 -> every object the emulator stored with those bytes (StoredObject: runway_uri,
    created_at), oldest first."""
    out: dict[str, list[Any]] = {}
    for obj in sorted(emu.storage.objects().values(), key=lambda o: o.created_at):
        out.setdefault(obj.sha256, []).append(obj)
    return out


def stored_twice(files: dict[Path, str], emu: Emulator,
                 excused: Callable[[Path, list[Any]], bool] | None = None) -> dict[str, int]:
    """name -> times its bytes were stored, for every file not stored exactly once (unless
    `excused` accepts its objects)."""
    by_content = objects_by_content(emu)
    out = {}
    for path, sha in files.items():
        objs = by_content.get(sha, [])
        if len(objs) != 1 and not (excused is not None and excused(path, objs)):
            out[path.name] = len(objs)
    return out


def unnamed_uploads(files: dict[Path, str], emu: Emulator) -> dict[str, str]:
    """name -> problem, for every file whose sidecar does not name an upload of its bytes."""
    objects = emu.storage.objects()
    out = {}
    for path, sha in files.items():
        data = sidecar.read_sidecar(path)
        uri = data.get("runway_uri") if data else None
        obj = objects.get(uri) if isinstance(uri, str) else None
        if obj is None or obj.sha256 != sha:
            out[path.name] = f"sidecar names {uri!r}, not an upload of the file's bytes"
    return out


def tasks_per_content(files: dict[Path, str], emu: Emulator) -> dict[str, int]:
    """name -> generation tasks the emulator created whose input had the file's bytes."""
    sha_of_uri = {uri: obj.sha256 for uri, obj in emu.storage.objects().items()}
    per_sha: Counter[str] = Counter()
    for uri, n in emu.stats()["tasks_per_input_uri"].items():
        per_sha[sha_of_uri.get(uri, "?")] += n
    return {path.name: per_sha[sha] for path, sha in files.items()}


def tasks_by_status(emu: Emulator) -> dict[str, int]:
    """The emulator's tasks by status, statuses with none left out."""
    return {k: v for k, v in emu.stats()["tasks_by_status"].items() if v}


def stray_outputs(files: Iterable[Path], output_dir: str = "renders") -> list[str]:
    """Files in the rule's output folder that no sidecar names: an output downloaded twice
    (two nodes following one task) leaves one of them behind."""
    files = list(files)
    named = set()
    for path in files:
        data = sidecar.read_sidecar(path)
        for out in ((data or {}).get("task") or {}).get("outputs") or []:
            named.add(os.path.normpath(path.parent / out))
    folders = {path.parent / output_dir for path in files}
    return sorted(str(p) for d in folders if d.is_dir() for p in d.iterdir()
                  if os.path.normpath(p) not in named)


def tracebacks(nodes: Iterable[Node]) -> dict[str, int]:
    """node name -> tracebacks in its log, for the nodes that logged any."""
    return {n.name: k for n in nodes if (k := n.log().count("Traceback"))}


def rows_in(view: StoreView, *states: str) -> list[str]:
    return sorted(r.path for r in view.in_state(*states))


SUBMITTING = FileState.SUBMITTING
