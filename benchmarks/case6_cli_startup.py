"""Case 6: CLI start-up: `runwatchd --version` and `--help` against `python -c pass`.

    python benchmarks/case6_cli_startup.py [--runs 10] [--before DIR] [--out FILE]

Each command runs `--runs` times, in turns, as a fresh process; the median wall time of each is
printed as a markdown table (and appended to FILE with --out). The target is 0.1 s for both.
`--before DIR` adds the same commands run from another source tree (e.g. a `git worktree` of an
older commit), through `python -m runwatchd` with that tree first on PYTHONPATH.

It stands on its own (no emulator, nothing of the harness) and is not part of run.py's cases:
it takes seconds and measures nothing run.py's contenders do.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TARGET = 0.1
ROOT = Path(__file__).resolve().parents[1]


# Not the checkout: `python -m` puts the working directory first on sys.path, which would shadow
# --before's tree.
CWD = tempfile.gettempdir()


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=CWD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--before", type=Path, help="another source tree to measure alongside")
    p.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = p.parse_args()

    py = sys.executable
    script = str(Path(py).parent / "runwatchd")
    # Measured as installed code runs: from .pyc files, written by the warm-up run.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        ("python -c pass (baseline)", [py, "-c", "pass"], env),
        ("runwatchd --version", [script, "--version"], env),
        ("runwatchd --help", [script, "--help"], env),
        ("python -m runwatchd --version", [py, "-m", "runwatchd", "--version"], env),
    ]
    if args.before:
        old = {**env, "PYTHONPATH": str(args.before.resolve())}
        cases += [(f"before: {label}", [py, "-m", "runwatchd", flag], old)
                  for label, flag in (("python -m runwatchd --version", "--version"),
                                      ("python -m runwatchd --help", "--help"))]
    for _, argv, case_env in cases:  # warm the page cache and the .pyc files
        timed(argv, case_env)
    samples: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for _ in range(args.runs):
        for label, argv, case_env in cases:
            samples[label].append(timed(argv, case_env))

    baseline = statistics.median(samples[cases[0][0]])
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### Case 6: CLI start-up ({stamp}, Python {platform.python_version()}, "
             f"median of {args.runs} runs, `python benchmarks/case6_cli_startup.py`)", "",
             "| command | median wall | over baseline | target |", "|---|---:|---:|---|"]
    for label, _, _ in cases:
        median = statistics.median(samples[label])
        target = ""
        if label.startswith("runwatchd "):
            target = f"{'met' if median < TARGET else 'MISSED'}: < {TARGET:g} s"
        lines.append(f"| {label} | {median * 1000:.0f} ms | {(median - baseline) * 1000:+.0f} ms "
                     f"| {target} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
