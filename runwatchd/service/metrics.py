"""Prometheus metrics for the optional ``[daemon] metrics = "127.0.0.1:9464"`` endpoint.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (not prometheus_client's global one), so
tests and the daemon can create as many as they like without "Duplicated timeseries" errors.
Counters work with or without a server; :meth:`Metrics.start_server` exposes them over HTTP.

    runwatchd_uploads_total{result="succeeded"|"failed"}  counter
    runwatchd_upload_bytes_total                          counter
    runwatchd_retries_total{operation}      counter  (upload, create_task, ...)
    runwatchd_failures_total{reason}        counter  (invalid_file, key_rejected, ...)
    runwatchd_tasks_total{status}           counter  (SUCCEEDED, FAILED, ...)
    runwatchd_files{state}                  gauge    (journal counts per state)
    runwatchd_queue_depth                   gauge    (settled files waiting for a worker)
    runwatchd_in_flight                     gauge    (uploads and tasks being worked on)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import start_http_server as _start_http_server

from runwatchd.lifecycle.states import Ending
from runwatchd.watch.skips import REASONS as NOT_TAKEN_REASONS

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

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._uploads = Counter(
            "runwatchd_uploads", "Uploads finished, by result.", ["result"], registry=r
        )
        self._upload_bytes = Counter(
            "runwatchd_upload_bytes", "Bytes of media uploaded successfully.", registry=r
        )
        self._retries = Counter(
            "runwatchd_retries", "Retried API operations, by operation.", ["operation"], registry=r
        )
        self._failures = Counter(
            "runwatchd_failures", "Files that failed, by reason.", ["reason"], registry=r
        )
        self._tasks = Counter(
            "runwatchd_tasks", "Generation tasks finished, by final status.", ["status"], registry=r
        )
        self._files = Gauge("runwatchd_files", "Files known to the journal, by state.", ["state"],
                            registry=r)
        self._queue_depth = Gauge(
            "runwatchd_queue_depth", "Settled files waiting for a worker.", registry=r
        )
        self._in_flight = Gauge(
            "runwatchd_in_flight", "Files being uploaded or generated right now.", registry=r
        )
        self._not_taken = Counter(
            "runwatchd_files_not_taken", "File versions seen in a folder and not taken, by "
            "reason.", ["reason"], registry=r)
        for reason in NOT_TAKEN_REASONS:
            self._not_taken.labels(reason=reason)
        # Both result series exist from the start, so rate() is defined before the first file.
        for result in ("succeeded", "failed"):
            self._uploads.labels(result=result)
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

    def task_finished(self, status: str) -> None:
        """A generation task reached a final status (SUCCEEDED, FAILED, CANCELLED, ...)."""
        self._tasks.labels(status=status).inc()

    def set_files_by_state(self, counts: Mapping[str, int]) -> None:
        """Replace the per-state file counts; states missing from ``counts`` drop to 0."""
        with self._lock:
            for state in self._file_states - counts.keys():
                self._files.labels(state=state).set(0)
            for state, n in counts.items():
                self._files.labels(state=state).set(n)
            self._file_states |= set(counts)

    def set_queue_depth(self, n: int) -> None:
        """Settled files waiting for a worker."""
        self._queue_depth.set(n)

    def set_in_flight(self, n: int) -> None:
        """Files being uploaded or generated right now."""
        self._in_flight.set(n)

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
