"""Case 1: one 200 MiB file (Runway's maximum): wall time and peak RSS.

Contenders, each a fresh process against the same emulator, run in turns `repeats` times
(median wall and CPU, highest peak RSS):
- curl -F of a presigned POST (the slot is asked for before the clock starts): the floor;
- `runwatchd upload FILE` (the CLI, whole process: interpreter start, key check, slot,
  streamed transfer with sha256, sidecar);
- the official SDK, `create_ephemeral(file=Path)` and `create_ephemeral(file=open(...))`.
Python contenders also print the time of the upload call alone ("call"), which is what
compares with curl's transfer: curl is a C binary that pays no interpreter start.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import harness as h

TARGET_RATIO = 1.15
CURL = "curl -F (presigned POST only)"
CLI = "runwatchd upload (CLI)"
CALL = "runwatchd RunwayClient.upload() call"
TARGET_RSS = 60 * h.MIB


def run(ctx: h.Context) -> h.CaseResult:
    size = 50 * h.MIB if ctx.quick else 200 * h.MIB
    repeats = 1 if ctx.quick else 5
    d = ctx.workdir / "case1"
    d.mkdir()
    big = d / "big.mp4"
    sha = h.write_media(big, size, "case1")
    h.flush_writes()
    h.sha256_of(big)  # warm the page cache for everyone alike
    env = h.contender_env(ctx.emulator, d)
    contenders = {
        CURL: None,
        CLI: h.runwatchd_cmd("upload", str(big)),
        CALL: [h.PY, str(h.CONTENDERS / "runwatchd_call.py"), str(big)],
        "SDK create_ephemeral(Path)": [h.PY, str(h.CONTENDERS / "sdk_loop.py"), "--mode", "path",
                                       str(big)],
        "SDK create_ephemeral(open file)": [h.PY, str(h.CONTENDERS / "sdk_loop.py"), "--mode",
                                            "file", str(big)],
    }
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    cpus: dict[str, list[float]] = {k: [] for k in contenders}
    calls: dict[str, list[float]] = {k: [] for k in contenders}
    rss: dict[str, int] = {k: 0 for k in contenders}
    for rep in range(repeats):
        for name, cmd in contenders.items():
            before = ctx.emulator.stats()["uploads_completed"]
            h.drop_sidecars([big])
            if cmd is None:
                cmd = _curl(ctx.emulator, big)
            lines: list[str] = []
            m = h.run_measured(cmd, env=env, cwd=d, log_path=d / "stderr.log", timeout=300,
                               on_line=lambda _t, line: lines.append(line))
            done = ctx.emulator.stats()["uploads_completed"] - before
            if m.rc != 0 or done != 1:
                raise RuntimeError(f"case 1: {name} failed (exit {m.rc}, {done} uploads)")
            walls[name].append(m.wall)
            cpus[name].append(m.cpu)
            rss[name] = max(rss[name], m.peak_rss)
            call = [float(x.split()[1]) for x in lines if x.startswith("call ")]
            if call:
                calls[name].append(call[0])
            h.log(f"case 1 run {rep + 1}/{repeats}: {name}: {m.wall:.3f} s, "
                  f"{m.peak_rss / h.MIB:.0f} MiB")
    bad = [o for o in ctx.emulator.objects().values() if o["size"] == size and o["sha256"] != sha]
    if bad:
        raise RuntimeError(f"case 1: {len(bad)} upload(s) stored the wrong bytes")
    big.unlink()

    med = {k: statistics.median(v) for k, v in walls.items()}
    call = {k: statistics.median(v) for k, v in calls.items() if v}
    floor = med[CURL]
    result = h.CaseResult()
    label = f"1. one {size // h.MIB} MiB file"
    for name in contenders:
        in_process = name == CALL
        wall = call[name] if in_process else med[name]
        row = h.Row(label, name, h.fmt_s(wall), h.fmt_s(statistics.median(cpus[name])),
                    h.fmt_mb(rss[name]), ratio=h.fmt_x(wall / floor) + " curl")
        if in_process:
            row.figure = f"its process: {h.fmt_s(med[name])} (interpreter start, key check)"
            row.target = h.verdict(wall / floor <= TARGET_RATIO,
                                   f"upload within {TARGET_RATIO}x of curl")
        elif name in call:
            row.figure = f"upload call {h.fmt_s(call[name])} = {h.fmt_x(call[name] / floor)} curl"
        if name == CLI:
            row.figure = (f"{h.fmt_s(med[name] - call[CALL])} of it is fixed cost: interpreter "
                          "start, imports, key check, fsynced sidecar")
            row.target = h.verdict(rss[name] < TARGET_RSS, f"peak RSS < {TARGET_RSS // h.MIB} MiB")
        result.rows.append(row)
    result.notes.append(
        f"Case 1: {repeats} run(s) per contender, in turns; median wall and CPU, highest peak "
        "RSS. curl is a C binary and gets its slot before the clock starts, so the 1.15x target "
        "is held against runwatchd's upload call measured inside its process (slot request "
        "included); the whole `runwatchd upload` command adds a fixed ~0.2 s, which a real link "
        "hides (at 1 Gbit/s 200 MiB takes 1.7 s). CPU and RSS of the in-process row are its "
        "whole process's.")
    return result


def _curl(emulator: h.EmulatorProc, path: Path) -> list[str]:
    slot = emulator.slot(path.name)
    cmd = ["curl", "-sS", "--fail", "-o", "/dev/null"]
    for key, value in slot["fields"].items():  # verbatim and first, as the policy wants
        cmd += ["--form-string", f"{key}={value}"]
    return cmd + ["-F", f"file=@{path}", slot["uploadUrl"]]
