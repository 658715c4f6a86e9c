"""The emulator's listening socket: a threading HTTP/1.1 server that can stop at once.

It tracks its connections so stop() can end idle keep-alives, and it is woken through a
socketpair instead of polling, so a test that starts an emulator pays no poll interval to stop
it. What a request means is the handler's business (server.Handler).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .contract import EmulatorApp

log = logging.getLogger(__name__)


class EmulatorServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so stop() can end idle keep-alives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        app: EmulatorApp,
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._conns: dict[threading.Thread, socket.socket] = {}
        self._conns_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        try:
            super().__init__(address, handler)
        except BaseException:
            self._wake_r.close()
            self._wake_w.close()
            raise

    def run(self) -> None:
        """Accept connections until stop_accepting(); unlike serve_forever, no poll interval
        delays the stop (each test that starts an emulator would pay it)."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self.stopping.is_set():
                        self._accept()

    def _accept(self) -> None:
        """What BaseServer does per connection: accept, then hand to process_request."""
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def stop_accepting(self) -> None:
        """Make run() return at once."""
        self.stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_conn,
            args=(request, client_address),
            name="runwatchd-emulator-conn",
            daemon=True,
        )
        with self._conns_lock:
            self._conns[thread] = request
        thread.start()

    def _serve_conn(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._conns_lock:
                self._conns.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self, timeout: float) -> None:
        """Wake every connection thread (shutdown its socket) and join it."""
        with self._conns_lock:
            conns = dict(self._conns)
        for sock in conns.values():
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)
        for thread in conns:
            thread.join(timeout)
