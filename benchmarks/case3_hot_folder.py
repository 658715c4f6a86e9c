"""Case 3: a hot folder fed by 8 concurrent writers: partial uploads and time to done.

500 files of 0.5-20 MiB (uniform, seeded) written in 1 MiB chunks by 8 writer threads (a
separate process), each file with 0-2 pauses of up to 0.8 s while open: shorter than the 2 s
settle time, as a render or a network copy stalls. Contenders, each watching a fresh folder:
- the naive script from Runway's guide: watchdog on_created -> SDK create_ephemeral(Path);
- `runwatchd run -c CONFIG` with default settings (inotify, settle 2 s, concurrency 4).
A partial upload is an object the emulator stored whose sha256 differs from the final file's.
Done: runwatchd, every file has a sidecar naming the final sha256; the naive script, it has
handled every created event (or went quiet for 15 s).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import harness as h

QUIET = 15.0


def run(ctx: h.Context) -> h.CaseResult:
    n = 60 if ctx.quick else 500
    max_mb = 5.0 if ctx.quick else 20.0
    d = ctx.workdir / "case3"
    d.mkdir()
    result = h.CaseResult()
    label = f"3. hot folder, {n} files, 8 writers"
    for name in ("naive watchdog + SDK", "runwatchd run"):
        ctx.emulator.reset()
        hot = d / "hot"
        hot.mkdir()
        state = d / "state"
        env = h.contender_env(ctx.emulator, d)
        handled: list[float] = []
        errors: list[str] = []
        notify = None

        def on_line(t: float, line: str) -> None:
            if line.startswith(("ok ", "error ")):
                handled.append(t)
            if line.startswith("error "):
                errors.append(line)

        if name == "runwatchd run":
            notify = h.NotifySocket(d)
            env["NOTIFY_SOCKET"] = str(notify.path)
            config = h.write_config(d / "runwatchd.toml", state_dir=state,
                                    folders=[{"path": str(hot), "recursive": False}])
            w = h.Watched(h.runwatchd_cmd("run", "-c", str(config)), env=env, cwd=d,
                          log_path=d / f"{len(result.rows)}.log")
            ready = notify.wait_for("READY=1", 60)
        else:
            lines: list[str] = []
            w = h.Watched([h.PY, str(h.CONTENDERS / "naive_watch.py"), str(hot)], env=env,
                          cwd=d, log_path=d / f"{len(result.rows)}.log",
                          on_line=lambda t, line: (lines.append(line), on_line(t, line)))
            ready = h.wait_until(lambda: "watching" in lines, 60)
        if ready is None:
            w.stop()
            raise RuntimeError(f"case 3: {name} did not get ready")
        cpu0 = w.cpu()
        manifest_path = d / "manifest.json"
        t0 = time.monotonic()
        writers = subprocess.run(
            [h.PY, str(h.BENCH / "writers.py"), str(hot), str(manifest_path), "--files", str(n),
             "--writers", "8", "--max-mb", str(max_mb), "--seed", "7"], timeout=900)
        if writers.returncode != 0:
            w.stop()
            raise RuntimeError("case 3: the writers failed")
        t_written = time.monotonic()
        manifest = json.loads(manifest_path.read_text())
        if name == "runwatchd run":
            t_done = _wait_sidecars(hot, manifest, timeout=240)
        else:
            t_done = _wait_naive(handled, n)
        cpu = w.cpu() - cpu0
        m = w.stop()
        if notify:
            notify.close()
        objects = list(ctx.emulator.objects().values())
        partial = sum(1 for o in objects if o["filename"] in manifest
                      and o["sha256"] != manifest[o["filename"]]["sha256"])
        complete = {o["filename"] for o in objects if o["filename"] in manifest
                    and o["sha256"] == manifest[o["filename"]]["sha256"]}
        ok = t_done is not None
        end = t_done if ok else time.monotonic()
        row = h.Row(label, name, h.fmt_s(end - t0) + ("" if ok else " (not done)"),
                    h.fmt_s(cpu), h.fmt_mb(m.peak_rss))
        row.figure = (f"partial uploads {partial}; files uploaded whole {len(complete)}/{n}; "
                      f"stored objects {len(objects)}")
        if errors:
            row.figure += f"; failed uploads {len(errors)}"
        after = end - t_written
        row.ratio = (f"done {h.fmt_s(after)} after the writers" if after >= 0
                     else f"done {h.fmt_s(-after)} before the writers finished")
        if name == "runwatchd run":
            row.target = h.verdict(partial == 0 and len(complete) == n,
                                   "zero partial uploads, every file whole")
        result.rows.append(row)
        total = sum(v["size"] for v in manifest.values())
        h.log(f"case 3: {name}: {partial} partial, {len(complete)}/{n} whole, "
              f"{len(errors)} errors, {end - t0:.1f} s ({total / h.MIB:.0f} MiB written)")
        if errors:
            kinds: dict[str, int] = {}
            for e in errors:
                kind = e.split(": ", 1)[1] if ": " in e else e
                kinds[kind] = kinds.get(kind, 0) + 1
            result.notes.append(
                "Case 3 naive script's failed uploads: " + "; ".join(
                    f"{k} x{v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:3]))
        shutil.rmtree(hot)
        shutil.rmtree(state, ignore_errors=True)
    result.notes.append(
        "Case 3: wall = from the first write to done; CPU = the contender's CPU over that time. "
        "Writers pause for at most 0.8 s while a file is open: a pause longer than "
        "settle_seconds would look like a finished file to any settle-based watcher, which is "
        "why settle_seconds is a per-folder setting.")
    return result


def _wait_sidecars(hot: Path, manifest: dict[str, dict], timeout: float) -> float | None:
    """Time at which every file's sidecar names its final sha256, polling what is missing."""
    pending = set(manifest)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            try:
                data = json.loads((hot / f"{name}.runway.json").read_text())
            except (OSError, ValueError):
                continue
            if data.get("file", {}).get("sha256") == manifest[name]["sha256"]:
                pending.discard(name)
        if pending:
            time.sleep(0.05)
    return None if pending else time.monotonic()


def _wait_naive(handled: list[float], n: int) -> float | None:
    """Time of the naive script's last handled event, once it handled n or went quiet."""
    last_count, last_change = -1, time.monotonic()
    while True:
        count = len(handled)
        if count >= n:
            return handled[n - 1]
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > QUIET:
            return None
        time.sleep(0.1)
