"""runwatchd as a systemd service, proved through the running daemon.

The daemon runs as `python -m runwatchd run` with NOTIFY_SOCKET on a datagram socket of the
test's own, against an in-process emulator; the key comes from a credentials directory
(RUNWAYML_API_SECRET unset), like systemd's LoadCredential= provides it. A few tests run the
Daemon in a thread instead, where they must reach into it (to kill an observer).
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from helpers import wait_for
from service_helpers import SECRET, Service, free_port, sidecar_of

from runwatchd.cli import daemon_commands as cli_daemon
from runwatchd.cli.demo import make_png
from runwatchd.config.load import parse_config
from runwatchd.emulator import Emulator
from runwatchd.store.sqlite import SqliteStore


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An emulator that accepts only SECRET."""
    with Emulator(api_secret=SECRET, task_seconds=0.3) as emu:
        yield emu


# -- sd_notify through the running daemon --------------------------------------------------


def test_notify_lifecycle_of_the_running_daemon(tmp_path, emulator, listener, services):
    """READY=1 after the catch-up scan, STATUS= with live counts, WATCHDOG=1 every half
    WatchdogSec and never before READY, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on
    SIGTERM and exit 0; under journald every stderr line carries a priority prefix."""
    usec = 1_000_000  # pings every 0.5 s; systemd would act after 1.0 s without one
    (tmp_path / "hot").mkdir()
    make_png(tmp_path / "hot" / "before.png")
    svc = Service(tmp_path, emulator, listener, watchdog_usec=usec, journal_stream=True)
    services.append(svc)

    ready = listener.wait("READY", "1")
    # The file found by the catch-up scan is already counted when READY=1 goes out.
    assert "1 waiting" in listener.messages[ready][1]["STATUS"]
    assert [] == listener.times("WATCHDOG", 0, ready)
    listener.wait("STATUS", "1 uploaded", after=ready)
    listener.pump(lambda: len(listener.times("WATCHDOG", ready)) >= 6, 10)

    pings = listener.times("WATCHDOG", ready)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert 6 <= len(pings)
    assert max(gaps) < usec / 1e6, gaps  # never late enough for systemd to restart it
    assert min(gaps) > 0.4, gaps  # and not spammed: one per interval (0.5 s)

    mark = len(listener.messages)
    svc.proc.send_signal(signal.SIGHUP)
    reloading = listener.wait("RELOADING", "1", after=mark)
    assert "MONOTONIC_USEC" in listener.messages[reloading][1]
    listener.wait("READY", "1", after=reloading + 1)

    mark = len(listener.messages)
    svc.proc.send_signal(signal.SIGTERM)
    stopping = listener.wait("STOPPING", "1", after=mark)
    assert 0 == svc.stop()
    listener.pump(lambda: False, 0.1)
    assert [] == listener.times("WATCHDOG", stopping + 1)

    lines = svc.log().splitlines()
    assert lines
    assert [] == [line for line in lines if not re.match(r"<[0-7]>", line)]
    assert any(line.startswith("<6>INFO runwatchd.daemon.core: ready") for line in lines)
    assert SECRET not in svc.log()


def test_secret_comes_from_the_credentials_directory(tmp_path, emulator, listener, services):
    """With RUNWAYML_API_SECRET unset the key is $CREDENTIALS_DIRECTORY/runway_api_secret:
    the right one passes the emulator's key check (READY=1), a wrong one exits 78 unread."""
    (tmp_path / "wrong").mkdir()
    wrong = Service(tmp_path / "wrong", emulator, listener, secret="not-the-key-42")
    services.append(wrong)
    assert 78 == wrong.proc.wait(30)
    assert "rejected" in wrong.log()
    assert "not-the-key-42" not in wrong.log()

    right = Service(tmp_path, emulator, listener)
    services.append(right)
    listener.wait("READY", "1")
    assert 0 == right.stop()
    assert SECRET not in right.log()


def test_metrics_endpoint_counts_the_daemon_work(tmp_path, emulator, services):
    """[daemon] metrics serves Prometheus text: uploads and bytes, an invalid file, a retried
    upload (expired slot), journal states; [daemon] log_format = "json" gives JSON lines."""
    port = free_port()
    emulator.set_faults(expire_next_slots=1)
    (tmp_path / "hot").mkdir()
    good = tmp_path / "hot" / "good.png"
    make_png(good)
    (tmp_path / "hot" / "tiny.png").write_bytes(b"\x89PNG" + b"\0" * 96)
    svc = Service(tmp_path, emulator, None,
                  daemon_toml=f'metrics = "127.0.0.1:{port}"\nlog_format = "json"')
    services.append(svc)

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def value(text: str, series: str) -> float | None:
        match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else None

    expected = {
        'runwatchd_uploads_total{result="succeeded"}': 1.0,
        "runwatchd_upload_bytes_total": float(good.stat().st_size),
        'runwatchd_uploads_total{result="failed"}': 1.0,
        'runwatchd_failures_total{reason="invalid_file"}': 1.0,
        'runwatchd_retries_total{operation="upload"}': 1.0,
        'runwatchd_files{state="uploaded"}': 1.0,
        'runwatchd_files{state="invalid"}': 1.0,
        "runwatchd_uploads_in_flight": 0.0,
    }
    text = wait_for(lambda: (t := scrape()) and all(
        value(t, s) == v for s, v in expected.items()) and t, 20, 0.2)
    assert text, scrape()
    assert {s: v for s, v in expected.items()} == {s: value(text, s) for s in expected}
    assert value(text, "process_resident_memory_bytes")
    assert 0 == svc.stop()

    records = [json.loads(line) for line in svc.log().splitlines()]
    assert any(r["msg"].startswith("uploaded ") for r in records)
    assert {"ts", "level", "logger", "msg"} <= set(records[0])


def test_busy_metrics_port_costs_the_metrics_not_the_daemon(caplog):
    """A taken metrics port is one error line and no metrics; the daemon still starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = parse_config({"daemon": {"metrics": f"127.0.0.1:{port}"}}, "test")
        assert cli_daemon._start_metrics(cfg) is None  # noqa: SLF001
    assert f"metrics: cannot listen on 127.0.0.1:{port}" in caplog.text


# -- a watched folder's directory disappears and comes back -----------------------------------


def test_watched_folder_removed_and_restored_while_running(tmp_path, emulator, listener,
                                                           services):
    """Renaming the watched folder away pauses it with one warning and marks nothing gone;
    renaming it back resumes by itself: a file added meanwhile and one dropped afterwards are
    uploaded, the file done before is not uploaded again."""
    (tmp_path / "hot").mkdir()
    first = tmp_path / "hot" / "first.png"
    make_png(first, seed=1)
    svc = Service(tmp_path, emulator, listener, watchdog_usec=1_000_000)
    services.append(svc)
    assert wait_for(lambda: sidecar_of(first), 20)
    uri_before = sidecar_of(first)["runway_uri"]

    away = tmp_path / "hot.away"
    svc.hot.rename(away)
    assert svc.wait_log("pausing this folder until it is back")
    listener.wait("STATUS", "unavailable")
    make_png(away / "meanwhile.png", seed=2)  # the share got a file while out of sight
    pause = len(listener.messages)
    listener.pump(lambda: len(listener.times("WATCHDOG", pause)) >= 2, 10)
    assert 2 <= len(listener.times("WATCHDOG", pause))  # paused, yet alive for systemd

    away.rename(svc.hot)
    assert svc.wait_log("is available; resuming with a rescan")
    after = svc.hot / "after.png"
    make_png(after, seed=3)
    assert wait_for(lambda: sidecar_of(svc.hot / "meanwhile.png") and sidecar_of(after), 20)
    assert 0 == svc.stop()

    assert uri_before == sidecar_of(svc.hot / "first.png")["runway_uri"]
    assert 3 == len(emulator.objects())
    journal = SqliteStore(svc.state / "journal.sqlite3")
    try:
        assert {"uploaded": 3} == journal.counts()
    finally:
        journal.close()
    noisy = [line for line in svc.log().splitlines() if re.search(r"WARNING|ERROR", line)]
    assert 2 == len(noisy), noisy  # the pause and the resume, nothing else
    assert 1 == svc.log().count("pausing this folder")
