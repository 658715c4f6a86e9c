"""runwatchd against the alternatives, same run, same emulator: writes benchmarks/results.md.

    python benchmarks/run.py [--quick] [--cases 1,2,3,4,5] [--profile] [--out FILE]

--quick scales every case down (a smoke test of the harness); --profile also records py-spy
profiles of runwatchd in cases 2 and 4 (benchmarks/out/profiles/), which case 5 sums up next to
its record of what profiling found and fixed. Installs the `bench` extra (runwayml, psutil, py-spy)
first if it is missing. Not part of the test run.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h  # noqa: E402 - needs the path above

CASES = {
    "1": "case1_big_file",
    "2": "case2_many_files",
    "3": "case3_hot_folder",
    "4": "case4_startup",
    "5": "case5_profile",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: checks the harness only")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, e.g. 1,2")
    p.add_argument("--profile", action="store_true", help="py-spy profiles of cases 2 and 4")
    p.add_argument("--out", type=Path, default=None,
                   help="markdown output (default benchmarks/results.md; --quick writes none)")
    args = p.parse_args()
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    out = args.out or (None if args.quick else h.BENCH / "results.md")

    h.ensure_bench_deps()
    started = time.monotonic()
    machine = h.machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="runwatchd-bench-"))
    emulator = h.EmulatorProc()
    h.log(f"emulator at {emulator.url}; work dir {workdir}")
    results: list[tuple[str, h.CaseResult]] = []
    try:
        for key in wanted:
            module = importlib.import_module(CASES[key])
            case_dir = workdir / f"case{key}-run"
            case_dir.mkdir()
            ctx = h.Context(emulator, case_dir, args.quick, args.profile,
                            h.BENCH / "out" / "profiles")
            t = time.monotonic()
            h.log(f"case {key}: {module.__doc__.splitlines()[0]}")
            emulator.reset()
            results.append((key, module.run(ctx)))
            h.log(f"case {key} took {time.monotonic() - t:.0f} s")
            shutil.rmtree(case_dir, ignore_errors=True)
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started
    text = render(results, machine, total, args)
    print(text)
    if out is not None:
        out.write_text(text)
        h.log(f"wrote {out}")
    h.log(f"{total:.0f} s in all")
    return 0


def render(results: list[tuple[str, h.CaseResult]], machine: dict[str, str], total: float,
           args: argparse.Namespace) -> str:
    cmd = "python benchmarks/run.py" + (" --quick" if args.quick else "") + (
        f" --cases {args.cases}" if args.cases != ",".join(CASES) else "")
    quick = " (quick: scaled down, not comparable)" if args.quick else ""
    lines = [
        f"# runwatchd benchmark results{quick}",
        "",
        f"{machine['date']} · {machine['nproc']} cores, {machine['cpu']} · "
        f"{machine['memory']} RAM · Python {machine['python']} · {machine['os']} · "
        f"temp files on {machine['tmp_fs']} · runwayml {machine['runwayml']} · "
        f"curl {machine['curl']} · runwatchd {machine['runwatchd']} · "
        f"`{cmd}` took {total / 60:.1f} min",
        "",
        "| case | contender | wall | CPU | peak RSS | figures | ratio | target |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for _key, result in results:
        for r in result.rows:
            cells = [r.case, r.contender, r.wall, r.cpu, r.rss, r.figure, r.ratio, r.target]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Notes:", ""]
    for _key, result in results:
        lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
