"""The reliability scenarios, sized by their callers (test_reliability.py runs them short,
test_soak.py at full size):
    fault_run   network faults from the emulator while files arrive; every file ends with a
                correct sidecar, no stored object has wrong bytes, every retry is logged, backoff
                and Retry-After are honoured (no busy loop)
    crash_run   the real CLI daemon is SIGKILLed at random moments during a run with a
                generation rule; after the last restart every file has one valid sidecar, no
                generation was submitted twice, no temp file remains, no source file changed
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from helpers import wait_for
from reliability_helpers import (
    FINAL_TASK,
    RULE,
    RecordingTransport,
    Sent,
    assert_no_secret,
    capture_logs,
    cli_env,
    daemon_thread,
    fingerprint,
    make_config,
    new_secret,
    read_json,
    run_cli,
    sidecar_problems,
    start_cli_daemon,
    state_files,
    stop_cli_daemon,
    temp_files,
    write_media,
    write_toml_config,
)

from runwatchd import errors
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy

FAULTS = {
    "error_rate": 0.2, "error_status": 503,          # 20 % 5xx
    "rate_limit_every": 29, "rate_limit_burst": 6,   # 429s now and then, and a burst at once
    "retry_after": 0.4,                              # ... with Retry-After
    "drop_rate": 0.04,                               # connections dropped (mid-body on uploads)
    "drop_after_rate": 0.02,                         # dropped after the work was done
    "slow_rate": 0.02, "slow_seconds": 2.0,          # slower than the client's timeout
    "bad_json_rate": 0.03,                           # garbled JSON
    "expire_next_slots": 4,                          # upload slots that are already expired
}
FAULT_KINDS = ("error", "rate_limit", "drop", "drop_after", "slow", "bad_json", "expired_slot")
CLIENT_TIMEOUT = 1.2


def fault_run(base: Path, n_files: int, *, seed: int, deadline: float) -> dict[str, Any]:
    """Upload `n_files` (half present at start, half arriving) through every network fault;
    assert the end state and return the figures."""
    rng = random.Random(seed)
    folder = base / "hot"
    folder.mkdir(parents=True)
    secret = new_secret()
    shas: dict[str, str] = {}
    sizes = [rng.choice((512, 2048, 9000, 40_000, 70_000, 130_000)) for _ in range(n_files)]
    names = [f"clip{i:04d}.png" for i in range(n_files)]
    for name, size in zip(names[: n_files // 2], sizes):
        shas[name] = write_media(folder / name, size, rng)
    retries: list[tuple[int, str, BaseException, float]] = []
    slept: list[float] = []

    def on_retry(what: str, error: BaseException, delay: float) -> None:
        retries.append((threading.get_ident(), what, error, delay))

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    transport = RecordingTransport()
    started = time.monotonic()
    faults = {**FAULTS, "seed": seed}
    with capture_logs() as logs, Emulator(api_secret=secret, faults=faults) as emu:
        client = RunwayClient(secret, emu.url, transport=transport, timeout=CLIENT_TIMEOUT,
                              retry=RetryPolicy(max_attempts=20, initial_delay=0.05,
                                                max_delay=1.0, deadline=120),
                              sleep=sleep, on_retry=on_retry)
        cfg = make_config(base, folder)
        with client, daemon_thread(cfg, client, base / "state") as run:
            for i, (name, size) in enumerate(zip(names[n_files // 2:], sizes[n_files // 2:])):
                shas[name] = write_media(folder / name, size, rng)
                if i == n_files // 4:
                    emu.set_faults(rate_limit_burst=6)  # a second burst, mid-run
                time.sleep(rng.uniform(0, 0.02))
            done = wait_for(lambda: all(sidecar.sidecar_path(folder / n).exists() for n in names),
                            timeout=deadline, interval=0.1)
            missing = [n for n in names if not sidecar.sidecar_path(folder / n).exists()]
            assert done, f"no sidecar after {deadline:.0f} s for {len(missing)}: {missing[:5]}"
            # The sidecar is written before the journal's row says "uploaded" (a crash between
            # the two only costs a re-check): give the last rows their moment.
            wait_for(lambda: Counter(r.state for r in run.journal) == {"uploaded": n_files},
                     timeout=10, interval=0.05)
            journal_states = Counter(r.state for r in run.journal)
        stats = emu.stats()
        objects = emu.objects()
    elapsed = time.monotonic() - started

    # 300 correct sidecars: each one describes the file's bytes, and the URI holds those bytes.
    problems = [p for n in names for p in sidecar_problems(folder / n)]
    assert [] == problems
    for name in names:
        uri = read_json(sidecar.sidecar_path(folder / name))["runway_uri"]
        assert (name, shas[name]) == (objects[uri]["filename"], objects[uri]["sha256"])
    assert {"uploaded": n_files} == dict(journal_states)
    # No object stored with wrong bytes: orphans of replies lost in transit included.
    wrong = [o for o in objects.values() if o["sha256"] != shas.get(o["filename"])]
    assert [] == wrong
    # Every retry logged: each failed request ended one attempt, and each such attempt left a
    # "retrying ..." warning (none was given up on, with 20 attempts).
    # The daemon's credit balance check (one GET, no retries, on a short-lived thread whose id
    # a worker may get later) is not part of the uploads' traffic.
    sent = [s for s in transport.sent if s.path != "/v1/organization"]
    failed = [s for s in sent if s.failed]
    retry_lines = logs.messages(logging.WARNING, "retrying upload of")
    gave_up = logs.messages(logging.ERROR, "upload failed")
    assert (len(failed), len(failed), 0) == (len(retries), len(retry_lines), len(gave_up))
    # Backoff honoured: every 429 was waited out for at least its Retry-After, on the wire too.
    limited = [r for r in retries if isinstance(r[2], errors.RateLimited)]
    assert all(delay >= FAULTS["retry_after"] for _, _, _, delay in limited)
    by_thread: dict[int, list[Sent]] = defaultdict(list)
    for s in sorted(sent, key=lambda s: s.start):
        by_thread[s.thread].append(s)
    gaps = []
    for seq in by_thread.values():
        for s, nxt in zip(seq, seq[1:]):
            if s.outcome == "429":
                gaps.append(nxt.start - s.end)
    assert gaps and min(gaps) >= FAULTS["retry_after"] * 0.99, f"429 retried too early: {gaps}"
    # No busy loop: requests are bounded by files and failures, and their rate stays modest.
    assert len(sent) <= 2 * (n_files + len(failed)) + 2
    injected = {k: v for k, v in stats["faults_injected"].items() if k != "delay"}
    assert set(FAULT_KINDS) <= set(injected), f"not every fault was exercised: {injected}"
    # An expired slot can come in a reply that is garbled anyway: it then fails nothing itself.
    all_failed = sum(1 for s in transport.sent if s.failed)  # the balance check's included
    assert sum(injected.values()) - injected["expired_slot"] <= all_failed
    assert_no_secret(secret, "the logs", logs.text())
    for path in state_files(base / "state") + list(folder.glob("*" + sidecar.SUFFIX)):
        assert_no_secret(secret, path.name, path.read_bytes())
    return {
        "files": n_files, "seconds": round(elapsed, 1), "requests": len(transport.sent),
        "failed_requests": len(failed), "retries_logged": len(retry_lines),
        "faults_injected": dict(sorted(injected.items())),
        "peak_requests_per_second": transport.peak_per_second(),
        "min_wait_after_429": round(min(gaps), 3), "seconds_slept_in_backoff": round(sum(slept), 1),
        "orphan_objects": len(objects) - n_files, "uploads_completed": stats["uploads_completed"],
    }


def crash_run(base: Path, n_files: int, kills: int, *, seed: int, deadline: float
              ) -> dict[str, Any]:
    """SIGKILL the real daemon `kills` times while files arrive and generations run; assert the
    end state after the last restart and return the figures."""
    rng = random.Random(seed)
    folder = base / "hot"
    folder.mkdir(parents=True)
    secret = new_secret()
    names = [f"shot{i:04d}.png" for i in range(n_files)]
    sizes = [rng.choice((600, 3000, 20_000, 90_000)) for _ in names]
    before: dict[str, tuple[str, int, int]] = {}
    first = n_files // 3
    for name, size in zip(names[:first], sizes):
        write_media(folder / name, size, rng)
        before[name] = fingerprint(folder / name)
    config = write_toml_config(base / "runwatchd.toml", base, folder, rule=RULE, settle=0.2,
                               rescan=2.0)
    log = base / "daemon.log"
    stopped_writing = threading.Event()
    kill_times: list[float] = []
    started = time.monotonic()

    def writer() -> None:
        wrng = random.Random(seed + 1)
        for name, size in zip(names[first:], sizes[first:]):
            write_media(folder / name, size, wrng)
            before[name] = fingerprint(folder / name)
            time.sleep(wrng.uniform(0.0, 0.08))
        stopped_writing.set()

    with Emulator(api_secret=secret, task_seconds=0.4, max_concurrent_tasks=16) as emu:
        env = cli_env(emu.url, secret)
        feeder = threading.Thread(target=writer, name="test-writer")
        feeder.start()
        try:
            for _ in range(kills):
                proc = start_cli_daemon(config, env, log)
                time.sleep(rng.uniform(0.4, 2.2))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kill_times.append(round(time.monotonic() - started, 2))
        finally:
            feeder.join(60)
        readies = log.read_text(errors="replace").count("ready: watching")
        proc = start_cli_daemon(config, env, log)
        try:
            assert wait_for(lambda: log.read_text(errors="replace").count("ready: watching")
                            > readies, timeout=20, interval=0.05)

            def finished() -> bool:
                for name in names:
                    data = read_json(sidecar.sidecar_path(folder / name))
                    if not data or (data.get("task") or {}).get("status") not in FINAL_TASK:
                        return False
                return True

            done = wait_for(finished, timeout=deadline, interval=0.2)
            status_out = run_cli(["status", "-c", str(config)], env)
        finally:
            code = stop_cli_daemon(proc)
        stats = emu.stats()
        objects = emu.objects()
    elapsed = time.monotonic() - started
    log_text = log.read_text(encoding="utf-8", errors="replace")
    assert done, "not every file reached a final task status; log tail:\n" + log_text[-3000:]
    assert 0 == code

    # Each file: exactly one valid sidecar describing its bytes; no sidecar for anything else.
    assert [] == [p for n in names for p in sidecar_problems(folder / n)]
    sidecars = sorted(p.name for p in base.rglob("*" + sidecar.SUFFIX))
    assert sorted(n + sidecar.SUFFIX for n in names) == sidecars
    # No generation submitted twice: tasks counted per source file across all its uploads.
    tasks_per_file: Counter[str] = Counter()
    for uri, count in stats["tasks_per_input_uri"].items():
        tasks_per_file[objects[uri]["filename"]] += count
    assert [] == [n for n, c in tasks_per_file.items() if c > 1]
    statuses = Counter(read_json(sidecar.sidecar_path(folder / n))["task"]["status"]
                       for n in names)
    # A kill while a worker's POST is under way leaves "needs attention" (never a resubmit);
    # each of the 4 workers can be in that window when a kill comes.
    assert statuses["NEEDS_ATTENTION"] <= kills * 4
    assert n_files - statuses["NEEDS_ATTENTION"] <= stats["tasks_created"] <= n_files
    for name in names:
        data = read_json(sidecar.sidecar_path(folder / name))
        if data["task"]["status"] == "SUCCEEDED":
            outputs = [folder / o for o in data["task"]["outputs"]]
            assert outputs and all(o.stat().st_size > 0 for o in outputs)
    # No temp file left anywhere; no source file changed.
    assert [] == temp_files(base)
    assert before == {n: fingerprint(folder / n) for n in names}
    assert_no_secret(secret, "the daemon's log", log_text)
    assert_no_secret(secret, "`runwatchd status`", status_out.stdout + status_out.stderr)
    for path in state_files(base / "state") + list(folder.rglob("*" + sidecar.SUFFIX)):
        assert_no_secret(secret, path.name, path.read_bytes())
    assert "Traceback" not in log_text
    return {
        "files": n_files, "kills": kills, "kill_times_s": kill_times,
        "seconds": round(elapsed, 1), "tasks_created": stats["tasks_created"],
        "max_tasks_per_file": max(tasks_per_file.values(), default=0),
        "statuses": dict(statuses), "uploads_completed": stats["uploads_completed"],
        "extra_uploads": stats["uploads_completed"] - n_files,
    }
