"""Metrics: counters and gauges, the HTTP endpoint scraped over a real socket, clean shutdown."""

from __future__ import annotations

import platform
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runwatchd.service.metrics import Metrics, parse_address


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_scrape_over_http_and_stop_without_leaking_a_thread() -> None:
    """Recorded values are served on 127.0.0.1:<port>/metrics; stop() joins every thread."""
    before = set(threading.enumerate())
    m = Metrics()
    host, port = m.start_server("127.0.0.1:0")
    try:
        assert "127.0.0.1" == host and 0 < port
        m.upload_succeeded(1000)
        m.upload_succeeded(24)
        m.upload_failed("invalid_file")
        m.retry("upload")
        m.task_finished("SUCCEEDED")
        m.set_files_by_state({"done": 7, "failed": 1})
        m.set_queue_depth(3)
        m.set_in_flight(uploads=2, tasks=1)
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        m.stop()
    assert 200 == response.status_code
    got = samples(response.text)
    expected = {
        ("runwatchd_uploads_total", (("result", "succeeded"),)): 2.0,
        ("runwatchd_uploads_total", (("result", "failed"),)): 1.0,
        ("runwatchd_upload_bytes_total", ()): 1024.0,
        ("runwatchd_retries_total", (("operation", "upload"),)): 1.0,
        ("runwatchd_failures_total", (("reason", "invalid_file"),)): 1.0,
        ("runwatchd_tasks_total", (("status", "succeeded"),)): 1.0,
        ("runwatchd_files", (("state", "done"),)): 7.0,
        ("runwatchd_files", (("state", "failed"),)): 1.0,
        ("runwatchd_queue_depth", ()): 3.0,
        ("runwatchd_uploads_in_flight", ()): 2.0,
        ("runwatchd_tasks_in_flight", ()): 1.0,
    }
    assert expected == {k: got[k] for k in expected}
    assert ("process_resident_memory_bytes", ()) in got
    assert False is m.serving
    assert wait_for(lambda: set(threading.enumerate()) <= before)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_counters_work_without_a_server() -> None:
    """A Metrics with no endpoint still counts, and stop() is harmless."""
    m = Metrics(process_metrics=False)
    m.retry("create_task")
    m.retry("create_task")
    m.failure("no_credits")
    m.stop()
    assert 2.0 == value(m, "runwatchd_retries_total", operation="create_task")
    assert 1.0 == value(m, "runwatchd_failures_total", reason="no_credits")
    assert 0.0 == value(m, "runwatchd_uploads_total", result="failed")


def test_instances_do_not_share_a_registry() -> None:
    """Two instances count separately (no global registry, no duplicate-metric error)."""
    a, b = Metrics(), Metrics()
    a.upload_succeeded(5)
    assert (1.0, 0.0) == (
        value(a, "runwatchd_uploads_total", result="succeeded"),
        value(b, "runwatchd_uploads_total", result="succeeded"),
    )


def test_missing_states_drop_to_zero() -> None:
    """A state absent from the latest counts reads 0 rather than its stale value."""
    m = Metrics(process_metrics=False)
    m.set_files_by_state({"uploading": 4, "done": 1})
    m.set_files_by_state({"done": 5})
    assert (0.0, 5.0) == (
        value(m, "runwatchd_files", state="uploading"),
        value(m, "runwatchd_files", state="done"),
    )


def test_second_start_is_refused() -> None:
    """Starting a running endpoint again is a programming error, reported as such."""
    m = Metrics(process_metrics=False)
    m.start_server("127.0.0.1:0")
    try:
        with pytest.raises(RuntimeError):
            m.start_server("127.0.0.1:0")
    finally:
        m.stop()


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        (":9464", ("0.0.0.0", 9464)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_address(addr: str, expected: tuple[str, int]) -> None:
    """host:port forms, including bracketed IPv6, are understood."""
    assert expected == parse_address(addr)


@pytest.mark.parametrize("addr", ["9464", "127.0.0.1", "host:port", "::1:9464", "h:70000"])
def test_parse_address_rejects(addr: str) -> None:
    """Malformed addresses raise ValueError quoting the value."""
    with pytest.raises(ValueError, match="metrics address"):
        parse_address(addr)


def test_prometheus_conventions() -> None:
    """Counters end in _total, label values are lower case, build_info is 1, and every known
    label value is served at zero before the first event."""
    from runwatchd import __version__
    from runwatchd.lifecycle.states import FailureReason

    m = Metrics(process_metrics=False)
    m.task_finished("SUCCEEDED")
    families = {f.name: f for f in m.registry.collect()}
    for family in families.values():
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.name != "runwatchd_build_info":
            for sample in family.samples:
                assert all(v == v.lower() for k, v in sample.labels.items() if k != "le"), sample
    assert 1.0 == value(m, "runwatchd_build_info", version=__version__,
                        python=platform.python_version(), node=socket.gethostname())
    assert 1.0 == value(m, "runwatchd_tasks_total", status="succeeded")
    assert 0.0 == value(m, "runwatchd_tasks_total", status="cancelled")
    assert all(0.0 == value(m, "runwatchd_failures_total", reason=r.value) for r in FailureReason)
    assert 0.0 == value(m, "runwatchd_retries_total", operation="create_task")


def test_the_node_is_a_label_of_the_info_gauge_only() -> None:
    """`node` names the process's node on runwatchd_build_info (joined onto the rest by
    instance); no other series carries it."""
    from runwatchd import __version__

    m = Metrics(process_metrics=False, node="Render-01")
    m.upload_succeeded(10)
    assert 1.0 == value(m, "runwatchd_build_info", version=__version__,
                        python=platform.python_version(), node="Render-01")
    labelled = {f.name for f in m.registry.collect() for s in f.samples if "node" in s.labels}
    assert {"runwatchd_build_info"} == labelled


def test_holders_by_liveness() -> None:
    """runwatchd_holders counts the store's processes alive and dead, both at 0 at first."""
    m = Metrics(process_metrics=False)
    assert [0.0, 0.0] == [value(m, "runwatchd_holders", alive=a) for a in ("true", "false")]
    m.set_holders(alive=2, dead=1)
    assert [2.0, 1.0] == [value(m, "runwatchd_holders", alive=a) for a in ("true", "false")]


def test_duration_histograms() -> None:
    """Uploads and tasks are timed into histograms; a task is timed from when it was followed."""
    now = [100.0]
    m = Metrics(process_metrics=False, clock=lambda: now[0])
    m.upload_took(3.0)
    m.task_followed(Path("/in/a.jpg"))
    now[0] += 42.0
    m.task_finished("FAILED", Path("/in/a.jpg"))
    m.task_finished("FAILED", Path("/in/b.jpg"))  # never followed here: counted, not timed
    assert (1.0, 3.0) == (value(m, "runwatchd_upload_duration_seconds_count"),
                          value(m, "runwatchd_upload_duration_seconds_sum"))
    assert (1.0, 42.0) == (value(m, "runwatchd_task_duration_seconds_count", status="failed"),
                           value(m, "runwatchd_task_duration_seconds_sum", status="failed"))
    assert 2.0 == value(m, "runwatchd_tasks_total", status="failed")
