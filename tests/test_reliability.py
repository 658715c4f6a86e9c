"""Reliability: runwatchd loses nothing, bills nothing twice and leaks nothing (short form).

The scenarios (fault_run, crash_run: reliability_scenarios.py) run here short and at full size in
tests/test_soak.py (`pytest -m soak -s tests/test_soak.py`). Credentials (revoked key, no
credits) and secret redaction are tested here too; odd and hostile input is in test_hostile_*.py.
"""

from __future__ import annotations

import json
import random
import signal
import time
import traceback
from collections import Counter
from pathlib import Path

from helpers import wait_for
from reliability_helpers import (
    RULE,
    assert_no_secret,
    capture_logs,
    cli_env,
    daemon_thread,
    make_config,
    new_secret,
    read_json,
    run_cli,
    start_cli_daemon,
    state_files,
    stop_cli_daemon,
    write_media,
    write_toml_config,
)
from reliability_scenarios import crash_run, fault_run

from runwatchd import errors
from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient
from runwatchd.runway.retries import RetryPolicy


def test_network_faults_lose_nothing(tmp_path: Path) -> None:
    """60 files through 5xx, 429 bursts, drops, timeouts, bad JSON and expired slots: all arrive."""
    figures = fault_run(tmp_path, 60, seed=7, deadline=45)
    assert 60 == figures["files"]


# == 2. crashes ==================================================================================

def test_sigkill_loses_nothing_and_bills_once(tmp_path: Path) -> None:
    """3 SIGKILLs during a 60-file run with a rule: one valid sidecar each, no double billing."""
    figures = crash_run(tmp_path, 60, 3, seed=11, deadline=45)
    assert 1 >= figures["max_tasks_per_file"]


# == 4. credentials ==============================================================================

def test_revoked_key_pauses_then_sighup_resumes_and_no_credits_pauses_generation(
        tmp_path: Path) -> None:
    """A 401 mid-run pauses all work with one error until SIGHUP brings a new key; 'not enough
    credits' pauses generation only (uploads go on) until a reload after credits are back."""
    rng = random.Random(5)
    folder = tmp_path / "hot"
    folder.mkdir()
    old_key, new_key = new_secret(), new_secret()
    key_file = tmp_path / "secret"
    key_file.write_text(old_key + "\n", encoding="utf-8")
    config = write_toml_config(tmp_path / "runwatchd.toml", tmp_path, folder, rule=RULE,
                               settle=0.2, rescan=0, secret_file=key_file)
    log = tmp_path / "daemon.log"

    def drop(prefix: str, n: int) -> list[Path]:
        paths = [folder / f"{prefix}{i}.png" for i in range(n)]
        for p in paths:
            write_media(p, 3000, rng)
        return paths

    def status_of(paths: list[Path]) -> list[str | None]:
        out = []
        for p in paths:
            data = read_json(sidecar.sidecar_path(p))
            out.append(None if data is None else (data.get("task") or {}).get("status", "none"))
        return out

    def log_text() -> str:
        return log.read_text(encoding="utf-8", errors="replace")

    with Emulator(api_secret=old_key, task_seconds=0.3) as emu:
        env = cli_env(emu.url, None)
        proc = start_cli_daemon(config, env, log)
        try:
            assert wait_for(lambda: "ready: watching" in log_text(), timeout=20)
            first = drop("before", 4)
            assert wait_for(lambda: status_of(first) == ["SUCCEEDED"] * 4, timeout=20)
            # The key is revoked: every call now answers 401.
            emu.api_secret = new_key
            second = drop("revoked", 4)
            assert wait_for(lambda: "all work is paused" in log_text(), timeout=10)
            paused = wait_for(lambda: "PAUSED: your API key was rejected" in run_cli(
                ["status", "-c", str(config)], env).stdout, timeout=10, interval=0.3)
            assert paused
            failures = emu.stats()["auth_failures"]
            time.sleep(1.0)  # paused means quiet: no request keeps hitting the API
            assert failures == emu.stats()["auth_failures"] <= 8
            assert [None] * 4 == status_of(second)
            paused_status = run_cli(["status", "-c", str(config)], env)
            # A new key in the secret file, then SIGHUP: everything resumes.
            key_file.write_text(new_key + "\n", encoding="utf-8")
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda: status_of(second) == ["SUCCEEDED"] * 4, timeout=20)
            # No credits: uploads go on, generation waits.
            emu.set_faults(no_credits=True)
            third = drop("broke", 4)
            assert wait_for(lambda: None not in status_of(third)
                            and "generation paused" in log_text(), timeout=20)
            generate = "POST /v1/image_to_video"
            tries = sum(emu.stats()["requests"][generate].values())
            time.sleep(1.0)
            assert tries == sum(emu.stats()["requests"][generate].values())
            assert ["none"] * 4 == status_of(third)  # uploaded, sidecar without a task yet
            # Credits are back; a reload resubmits what waited.
            emu.set_faults(no_credits=False)
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda: status_of(third) == ["SUCCEEDED"] * 4, timeout=20)
        finally:
            code = stop_cli_daemon(proc)
        stats = emu.stats()
        objects = emu.objects()
    text = log_text()
    assert 0 == code
    rejected = [line for line in text.splitlines() if "ERROR" in line and "rejected" in line]
    assert 1 == len(rejected), rejected
    assert "check RUNWAYML_API_SECRET or api_secret_file" in rejected[0]
    credit_lines = [line for line in text.splitlines() if "generation paused" in line]
    assert 1 <= len(credit_lines) <= 4 and "enough credits" in credit_lines[0]
    assert "PAUSED: your API key was rejected" in paused_status.stdout
    tasks_per_file: Counter[str] = Counter()
    for uri, count in stats["tasks_per_input_uri"].items():
        tasks_per_file[objects[uri]["filename"]] += count
    assert {p.name: 1 for p in first + second + third} == dict(tasks_per_file)
    for key in (old_key, new_key):
        assert_no_secret(key, "the daemon's log", text)
        assert_no_secret(key, "`runwatchd status`", paused_status.stdout + paused_status.stderr)
        for path in state_files(tmp_path / "state"):
            assert_no_secret(key, path.name, path.read_bytes())
        for path in folder.rglob("*" + sidecar.SUFFIX):
            assert_no_secret(key, path.name, path.read_bytes())


# == 5. secrets ==================================================================================

def test_secret_never_in_errors_logs_status_or_journal(tmp_path: Path) -> None:
    """Every error kind the client raises, its chain and its request, the logs at DEBUG, the
    sidecar, the journal (with -wal) and `runwatchd status` never contain the secret."""
    secret = new_secret()
    clip = tmp_path / "hot" / "clip.png"
    write_media(clip, 4000, random.Random(1))
    seen: list[BaseException] = []
    faults = [
        ({"error_rate": 1.0, "error_status": 500}, "upload"),
        ({"rate_limit_every": 1, "retry_after": 0}, "upload"),
        ({"drop_rate": 1.0}, "upload"),
        ({"slow_rate": 1.0, "slow_seconds": 1.0}, "upload"),
        ({"bad_json_rate": 1.0}, "upload"),
        ({"expire_slots": True}, "upload"),
        ({"drop_after_rate": 1.0, "scope": ["tasks"]}, "task"),
        ({"no_credits": True}, "task"),
        ({}, "bad_task"),
        ({}, "get_task"),
    ]
    headers_seen = 0
    with capture_logs() as logs, Emulator(api_secret=secret, task_seconds=0.2) as emu:
        with RunwayClient(secret, emu.url, timeout=0.5,
                          retry=RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)
                          ) as client:
            uri = client.upload(clip).runway_uri
            for fault, action in faults:
                emu.faults.reset()
                emu.set_faults(**fault)
                try:
                    if action == "upload":
                        client.upload(clip)
                    elif action == "task":
                        client.create_task("image_to_video", {
                            "model": "gen4.5", "promptImage": uri, "promptText": "a shot",
                            "ratio": "1280:720", "duration": 5})
                    elif action == "bad_task":
                        client.create_task("image_to_video", {"model": "gen4.5"})
                    else:
                        client.get_task("no-such-task")
                except errors.RunwatchdError as e:
                    seen.append(e)
            emu.faults.reset()
        with RunwayClient("wrong-" + secret, emu.url) as wrong:
            try:
                wrong.check_key()
            except errors.KeyRejected as e:
                seen.append(e)
            assert secret not in repr(wrong)
        kinds = {type(e).__name__ for e in seen}
        assert {"ServerError", "RateLimited", "NetworkError", "SlotExpired", "SubmitUncertain",
                "NoCredits", "InputRejected", "KeyRejected"} <= kinds
        for e in seen:
            text = "".join(traceback.format_exception(e)) + repr(e) + str(e)
            chain, cause = [e], e.__cause__ or e.__context__
            while cause is not None and cause not in chain:
                chain.append(cause)
                text += repr(cause) + str(cause) + repr(vars(cause))
                request = getattr(cause, "_request", None)
                if request is not None:  # httpx keeps the request, headers and all
                    text += repr(list(request.headers.items()))
                    headers_seen += "authorization" in request.headers
                cause = cause.__cause__ or cause.__context__
            assert_no_secret(secret, f"a {type(e).__name__}", text)
        assert headers_seen  # the chained requests' Authorization headers were looked at
        # A daemon run with a rule, then its traces: logs, sidecar, journal, status.
        cfg = make_config(tmp_path, clip.parent, rule=RULE, settle=0.1)
        with RunwayClient(secret, emu.url) as client, daemon_thread(cfg, client,
                                                                    tmp_path / "state"):
            assert wait_for(lambda: (read_json(sidecar.sidecar_path(clip)) or {}).get(
                "task", {}).get("status") == "SUCCEEDED", timeout=20)
        env = cli_env(emu.url, secret)
        status = run_cli(["status", "--json", "-c", str(write_toml_config(
            tmp_path / "runwatchd.toml", tmp_path, clip.parent))], env)
        status_text = run_cli(["status", "-c", str(tmp_path / "runwatchd.toml")], env)
    # 3: the daemon has stopped by now (LSB "not running"); the report is there all the same.
    assert 3 == status.returncode and "files" in json.loads(status.stdout)
    assert_no_secret(secret, "the logs", logs.text())
    assert_no_secret(secret, "`runwatchd status`", status.stdout + status.stderr
                     + status_text.stdout + status_text.stderr)
    assert_no_secret(secret, "the sidecar", sidecar.sidecar_path(clip).read_bytes())
    stored = state_files(tmp_path / "state")
    assert any(p.name.endswith(".sqlite3") for p in stored)
    for path in stored:
        assert_no_secret(secret, path.name, path.read_bytes())
