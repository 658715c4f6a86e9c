"""The status page (`[daemon] web`): where is my file, for the people who drop them.

    source.py         WebSource: what the page asks of the daemon besides the store
    view.py           store rows as the page shows them (display states, reasons, advice, ids)
    catalog.py        one shared, rate-limited snapshot of the store's rows
    media.py          the only files the page sends: thumbnails and outputs, checked
    api.py            the JSON API (the page uses nothing else)
    server.py         HTTP, security headers, Host checks, limits
    daemon_source.py  the daemon's WebSource, and start_web_for(daemon)
    static/           the page: HTML, CSS, JavaScript; no build step, no CDN
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from runwatchd.config.web_token import read_web_token
from runwatchd.service.web.api import WebApi
from runwatchd.service.web.server import WebServer
from runwatchd.service.web.source import WebSource
from runwatchd.store.base import Store

__all__ = ["WebServer", "WebSource", "start_web"]


def start_web(address: str, store: Store, source: WebSource, *, token_file: Path | None = None,
              metrics: Callable[[], tuple[bytes, str]] | None = None) -> WebServer:
    """Serve the page on `address` ("host:port"); returns the running server (stop() it).
    ConfigError when the token file is unusable, OSError when the address cannot be bound.
    `metrics` (Metrics.exposition) serves /metrics on the same address."""
    token = read_web_token(token_file) if token_file is not None else None
    server = WebServer(address, WebApi(store, source, token=token, metrics=metrics))
    server.start()
    return server
