"""Case 5: what profiling cases 1, 2 and 4 found, what was fixed, and the figures before/after.

The record below was measured on 2026-11-25 on the machine of results.md, "before" and "after"
in the same conditions (the "before" tree is today's code with only these fixes undone). With
--profile, the top lines of this run's py-spy profiles (cases 2 and 4) are added to the notes.
"""

from __future__ import annotations

import harness as h

RECORD = [
    "Case 5, case 1 (py-spy/cProfile of one 200 MiB upload): httpx reads the file 64 KiB at a "
    "time, so 3,200 trips through httpx, h11, the socket and sha256 per upload. Fix "
    "(client.py): hand httpx 1 MiB per read. Upload call 0.22 s = 1.35x curl -> 0.18 s = "
    "1.09x. Hashing on a helper thread was tried and dropped: slower on 2 cores (1.25x).",
    "Case 5, case 2 (py-spy of `runwatchd scan`): the wall time was workers waiting on the "
    "50 ms slot request, 4 at a time, while no bytes moved; of the active time, sockets and the "
    "sidecar fsyncs (22%, kept: durability). Fix (client.py, daemon.py, cli.py): `concurrency` "
    "now bounds transfers (RunwayClient.limit_transfers), and twice as many files are worked "
    "on, so slot requests overlap other files' transfers. runwatchd scan 35.9 s = 4.3x the SDK "
    "-> 20.5 s = 7.9x; runwatchd upload -j 4 32.1 s -> 17.8 s.",
    "Case 5, case 4 first start (py-spy): 100,000 files with matching sidecars all went through "
    "the candidate table, the settle wait and the worker pool: Daemon._work 45%, thread-pool "
    "hand-offs 41%, per file a readability check, a journal read, a sidecar read and one journal "
    "commit (~90 us each). Fix (daemon.py, pipeline.py Processor.adoptable, journal.py "
    "put_many): the catch-up scan records a file the journal does not know from its sidecar "
    "when the sidecar matches it and no rule applies, 1,000 rows per commit. READY=1 9.4 s and "
    "caught up 60.5 s, 67 CPU s, 166 MiB -> both 8.3 s, 8 CPU s, 39 MiB.",
    "Case 5, case 4 restart (py-spy): Folder.wants per scanned file was 55% of the start: a "
    "rules-file stat per directory level (24%) and Processor.is_output building path.parents "
    "(22%) for every file. Fix (folders.py, pipeline.py): Folder.scan asks once per directory "
    "what depends only on the directory; is_output returns at once while no output folder "
    "exists. READY=1 6.8 s -> 2.6 s (10.9 s -> 2.6 s on the machine loaded by test runs).",
]


def run(ctx: h.Context) -> h.CaseResult:
    result = h.CaseResult(notes=list(RECORD))
    if ctx.profile:
        for name in ("case2-scan", "case4-first-start", "case4-restart"):
            summary = ctx.profile_dir / f"{name}.summary.txt"
            if summary.exists():
                top = [line.strip() for line in summary.read_text().splitlines()[2:6]]
                result.notes.append(f"This run's profile {name} (own time): " + "; ".join(top))
    return result
