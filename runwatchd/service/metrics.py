"""Prometheus metrics for the optional ``[daemon] metrics = "127.0.0.1:9464"`` endpoint.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (not prometheus_client's global one), so
tests and the daemon can create as many as they like without "Duplicated timeseries" errors.
Counters work with or without a server; :meth:`Metrics.start_server` exposes them over HTTP.

Prometheus conventions: units in names (``_bytes``, ``_seconds``), ``_total`` on counters,
lower-case label values, every known label value's series present at 0 from the start (so
``rate()`` and alerts work before the first event).

    runwatchd_build_info{version,python,node}        gauge 1
    runwatchd_uploads_total{result}                  counter  succeeded, failed
    runwatchd_upload_bytes_total                     counter
    runwatchd_upload_duration_seconds                histogram  first to last byte, succeeded
    runwatchd_retries_total{operation}               counter  upload, create_task, ...
    runwatchd_failures_total{reason}                 counter  invalid_file, key_rejected, ...
    runwatchd_tasks_total{status}                    counter  succeeded, failed, cancelled
    runwatchd_task_duration_seconds{status}          histogram  followed to final status
    runwatchd_files_not_taken_total{reason}          counter  not_included, ignored, rule_output
    runwatchd_files{state}                           gauge    store counts per state
    runwatchd_holders{alive}                         gauge    processes working on the store
    runwatchd_queue_depth                            gauge    settled files waiting for a worker
    runwatchd_uploads_in_flight                      gauge    uploads running now
    runwatchd_tasks_in_flight                        gauge    generations followed now
    runwatchd_credits                                gauge    the organization's credit balance
    runwatchd_credits_checked_timestamp_seconds      gauge    when the balance was last read

monitoring/alerts.yml and monitoring/grafana-dashboard.json use these names (a test checks).

Several nodes on one store: the `node` label ([store] node, default the host name) is on the
info gauge only, runwatchd_build_info, the Prometheus way of naming what a target is. Every
series of one process belongs to one node, so a `node` label on each would be the same constant
on every series of a scrape (the `instance` label Prometheus adds already tells the scrapes
apart), would change every alert and dashboard query, and adds nothing a join cannot give:
`runwatchd_uploads_total * on(instance) group_left(node) runwatchd_build_info`. The per-file
counters count this process's own work: sum them across nodes for the cluster. The store's
gauges (runwatchd_files, runwatchd_holders) are the whole store's, the same from every node:
take max() across nodes, not sum().
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import start_http_server as _start_http_server

from runwatchd import __version__
from runwatchd.lifecycle.states import FINAL_TASK_STATUSES, Ending, FailureReason, FileState
from runwatchd.runway.api import Operation
from runwatchd.watch.skips import REASONS as NOT_TAKEN_REASONS

# Uploads take from under a second (a still) to an hour (a master over a slow line).
UPLOAD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
MAX_TASKS_TIMED = 100_000
# Generations take from seconds (an image) to many minutes (a long video, a throttled queue).
TASK_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)

log = logging.getLogger(__name__)

__all__ = ["Metrics", "parse_address"]


def parse_address(addr: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"``, ``"[::1]:9464"``, ``":9464"`` -> (host, port); ValueError if bad."""
    host, sep, port_text = addr.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"metrics address {addr!r} is not host:port (e.g. '127.0.0.1:9464')")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"metrics address {addr!r}: write an IPv6 host in brackets, '[::1]:9464'")
    return host or "0.0.0.0", int(port_text)


class Metrics:
    """The daemon's counters and gauges, in a registry of their own."""

    def __init__(self, *, process_metrics: bool = True,
                 clock: Callable[[], float] = time.monotonic, node: str | None = None) -> None:
        """`node`: this host's name in a shared store (default: the host name)."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        info = Gauge("runwatchd_build_info", "The running runwatchd: version, Python, and the "
                     "node it runs as in a shared store.", ["version", "python", "node"],
                     registry=r)
        info.labels(version=__version__, python=platform.python_version(),
                    node=node or socket.gethostname()).set(1)
        self._uploads = Counter(
            "runwatchd_uploads", "Uploads finished, by result.", ["result"], registry=r
        )
        self._upload_bytes = Counter(
            "runwatchd_upload_bytes", "Bytes of media uploaded successfully.", registry=r
        )
        self._upload_seconds = Histogram(
            "runwatchd_upload_duration_seconds", "Time from an upload's first to its last byte.",
            buckets=UPLOAD_BUCKETS, registry=r)
        self._retries = Counter(
            "runwatchd_retries", "Retried API operations, by operation.", ["operation"], registry=r
        )
        self._failures = Counter(
            "runwatchd_failures", "Files that failed, by reason.", ["reason"], registry=r
        )
        self._tasks = Counter(
            "runwatchd_tasks", "Generation tasks finished, by final status.", ["status"], registry=r
        )
        self._task_seconds = Histogram(
            "runwatchd_task_duration_seconds", "Time from following a generation task (its "
            "submission, or this process's start) to its final status.", ["status"],
            buckets=TASK_BUCKETS, registry=r)
        self._not_taken = Counter(
            "runwatchd_files_not_taken", "File versions seen in a folder and not taken, by "
            "reason.", ["reason"], registry=r)
        self._files = Gauge("runwatchd_files", "Files known to the store, by state.", ["state"],
                            registry=r)
        self._holders = Gauge(
            "runwatchd_holders", "Processes that work on the store (daemons of every node, a "
            "scan), by whether they are alive.", ["alive"], registry=r)
        self._queue_depth = Gauge(
            "runwatchd_queue_depth", "Settled files waiting for a worker.", registry=r
        )
        self._uploads_in_flight = Gauge(
            "runwatchd_uploads_in_flight", "Uploads running right now.", registry=r)
        self._tasks_in_flight = Gauge(
            "runwatchd_tasks_in_flight", "Generation tasks followed right now.", registry=r)
        self._credits = Gauge(
            "runwatchd_credits", "The organization's credit balance, as last read.", registry=r)
        self._credits_checked = Gauge(
            "runwatchd_credits_checked_timestamp_seconds", "When the credit balance was last "
            "read (Unix time; 0: never).", registry=r)
        # Every known label value exists from the start, so rate() and alerts are defined
        # before the first event.
        for result in ("succeeded", "failed"):
            self._uploads.labels(result=result)
        for operation in Operation:
            self._retries.labels(operation=operation.value)
        for reason in FailureReason:
            self._failures.labels(reason=reason.value)
        for status in sorted(FINAL_TASK_STATUSES):
            self._tasks.labels(status=status.lower())
            self._task_seconds.labels(status=status.lower())
        for why in NOT_TAKEN_REASONS:
            self._not_taken.labels(reason=why)
        for state in FileState:
            self._files.labels(state=state.value)
        for alive in ("true", "false"):
            self._holders.labels(alive=alive)
        self._task_started: dict[str, float] = {}
        self._clock = clock
        self._file_states: set[str] = set()
        self._lock = threading.Lock()
        if process_metrics:
            # The usual process_* (RSS, open fds, CPU) and python_* series: what one checks first
            # on a daemon that has run for months.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- recording -------------------------------------------------------------------------

    def upload_succeeded(self, nbytes: int) -> None:
        """One file uploaded; ``nbytes`` is its size."""
        self._uploads.labels(result="succeeded").inc()
        self._upload_bytes.inc(max(0, nbytes))

    def upload_failed(self, reason: str) -> None:
        """One upload given up on; ``reason`` is a short stable token (e.g. ``invalid_file``)."""
        self._uploads.labels(result="failed").inc()
        self._failures.labels(reason=reason).inc()

    def failure(self, reason: str) -> None:
        """A file failed outside the upload itself (a rejected or failed generation, ...)."""
        self._failures.labels(reason=reason).inc()

    def file_ended(self, ending: Ending, *, uploaded_bytes: int | None) -> None:
        """One settled file went through the pipeline and came to `ending`; `uploaded_bytes` is
        set when it was uploaded. A failure is counted by its reason token, never by the words
        of its message (those may change; a label may not)."""
        if uploaded_bytes is not None:
            self.upload_succeeded(uploaded_bytes)
        self._count_failure(None if ending.reason is None else str(ending.reason))

    def _count_failure(self, reason: str | None) -> None:
        if reason in ("invalid_file", "upload_failed"):
            self.upload_failed(reason)
        elif reason is not None:
            self.failure(reason)

    def file_not_taken(self, reason: str) -> None:
        """A file version a folder saw and did not take (watch/skips.py reasons)."""
        self._not_taken.labels(reason=reason).inc()

    def retry(self, operation: str) -> None:
        """One retry of ``operation`` (upload, create_task, get_task, download, ...)."""
        self._retries.labels(operation=operation).inc()

    def upload_took(self, seconds: float) -> None:
        """One upload's time from its first to its last byte."""
        self._upload_seconds.observe(max(0.0, seconds))

    def task_followed(self, path: Path) -> None:
        """A generation task of `path` is followed from now (its duration starts here)."""
        with self._lock:
            self._task_started[str(path)] = self._clock()
            if len(self._task_started) > MAX_TASKS_TIMED:  # tasks dropped unfinished: forget
                del self._task_started[next(iter(self._task_started))]

    def task_finished(self, status: str, path: Path | None = None) -> None:
        """A generation task reached a final status (SUCCEEDED, FAILED, CANCELLED, ...); with
        `path`, its duration since task_followed(path) is observed."""
        label = status.lower()
        self._tasks.labels(status=label).inc()
        with self._lock:
            started = self._task_started.pop(str(path), None) if path is not None else None
        if started is not None:
            self._task_seconds.labels(status=label).observe(max(0.0, self._clock() - started))

    def set_credits(self, balance: float, checked_at: float) -> None:
        """The organization's credit balance, read at `checked_at` (Unix time)."""
        self._credits.set(balance)
        self._credits_checked.set(checked_at)

    def set_files_by_state(self, counts: Mapping[str, int]) -> None:
        """Replace the per-state file counts; states missing from ``counts`` drop to 0."""
        with self._lock:
            for state in self._file_states - counts.keys():
                self._files.labels(state=state).set(0)
            for state, n in counts.items():
                self._files.labels(state=state).set(n)
            self._file_states |= set(counts)

    def set_holders(self, *, alive: int, dead: int) -> None:
        """How many processes work on the store (Store.holders()): alive, and listed dead (a
        node that stopped beating: its work is taken over)."""
        self._holders.labels(alive="true").set(alive)
        self._holders.labels(alive="false").set(dead)

    def set_queue_depth(self, n: int) -> None:
        """Settled files waiting for a worker."""
        self._queue_depth.set(n)

    def set_in_flight(self, *, uploads: int, tasks: int) -> None:
        """Uploads running and generation tasks followed right now."""
        self._uploads_in_flight.set(uploads)
        self._tasks_in_flight.set(tasks)

    # -- endpoint --------------------------------------------------------------------------

    def start_server(self, addr: str) -> tuple[str, int]:
        """Serve ``/metrics`` on ``"host:port"`` (port 0 picks one); returns the bound address."""
        if self._server is not None:
            raise RuntimeError("metrics server already started")
        host, port = parse_address(addr)
        server, thread = _start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        bound_host, bound_port = server.server_address[:2]
        log.info("metrics on http://%s:%d/metrics", _url_host(str(bound_host)), bound_port)
        return str(bound_host), int(bound_port)

    def stop(self) -> None:
        """Stop the endpoint and join its thread; harmless if it never started."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def exposition(self) -> tuple[bytes, str]:
        """The text /metrics serves and its content type: for another server that serves
        /metrics on its own address (the status page, when both share one)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @property
    def serving(self) -> bool:
        """True while the HTTP endpoint runs."""
        return self._server is not None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
