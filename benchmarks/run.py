"""runwatchd against the alternatives, same run, same emulator: writes benchmarks/results.md.

    python benchmarks/run.py [--quick] [--cases 1,2,3,4,5,7] [--profile] [--out FILE]

--quick scales every case down (a smoke test of the harness); --profile also records py-spy
profiles of runwatchd in cases 2, 4 and 7 (benchmarks/out/profiles/), which case 5 sums up next to
its record of what profiling found and fixed. Installs the `bench` extra (runwayml, psutil, py-spy)
first if it is missing. Not part of the test run.
"""

from __future__ import annotations

import argparse
import importlib
import re
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
    "7": "case7_nodes",
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: checks the harness only")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated, e.g. 1,2")
    p.add_argument("--profile", action="store_true", help="py-spy profiles of cases 2, 4 and 7")
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
        old = out.read_text() if out.exists() else ""
        if set(wanted) == set(CASES):
            out.write_text(text + sections_of(old))
        else:
            out.write_text(merge(old, text, wanted))
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


# -- updating results.md --------------------------------------------------------------------------
# A full run rewrites the table and its notes; sections after them ("### Case 6: ...", written by
# case6_cli_startup.py) are kept. A run of some cases replaces only those cases' rows and notes
# in the table of the last full run, and says when and how they were measured in a note.

ROW_KEY = re.compile(r"\| (\d+)\. ")
NOTE_KEY = re.compile(r"- Case (\d+)\b")


def sections_of(text: str) -> str:
    """The "### ..." sections at the end of a results file, with the blank line before them."""
    at = text.find("\n### ")
    return "" if at < 0 else text[at:]


def merge(old: str, new: str, keys: list[str]) -> str:
    """`old` with its rows and notes of cases `keys` replaced by those of `new` (the output of a
    run of those cases), every row and note in case order; `new` alone if `old` has no table."""
    old_main = old[: len(old) - len(sections_of(old))]
    if "\n|---" not in old_main:
        return new
    new_lines = new.splitlines()
    stamp = (f"- Case {', '.join(keys)} measured apart from the run above: "
             f"{new_lines[2]}")
    rows = [ln for ln in old_main.splitlines() if _key(ROW_KEY, ln) not in (None, *keys)]
    rows += [ln for ln in new_lines if _key(ROW_KEY, ln) is not None]
    notes = [ln for ln in old_main.splitlines() if ln.startswith("- ")
             and _key(NOTE_KEY, ln) not in keys]
    notes += [ln for ln in new_lines if ln.startswith("- ")] + [stamp]
    head = [ln for ln in old_main.splitlines()[: old_main.splitlines().index("Notes:")]
            if _key(ROW_KEY, ln) is None]
    table_end = max(i for i, ln in enumerate(head) if ln.startswith("|")) + 1
    by_case = sorted(rows, key=lambda ln: int(_key(ROW_KEY, ln) or 0))
    ordered_notes = sorted(notes, key=lambda ln: int(_key(NOTE_KEY, ln) or 0))
    lines = [*head[:table_end], *by_case, *head[table_end:], "Notes:", "", *ordered_notes]
    return "\n".join(lines) + "\n" + sections_of(old)


def _key(pattern: re.Pattern[str], line: str) -> str | None:
    m = pattern.match(line)
    return m.group(1) if m else None


if __name__ == "__main__":
    sys.exit(main())
