"""The emulator as its HTTP layer sees it: what the request handler may call.

The handler (server.py) is handed an object of this shape rather than importing the Emulator
class (app.py), which builds the server: the dependency runs one way only.
"""

from __future__ import annotations

from typing import Any, Protocol

from .faults import FaultInjector
from .state import Counters
from .storage import Storage
from .tasks import TaskBoard


class EmulatorApp(Protocol):
    """The state and operations behind the emulator's routes (implemented by app.Emulator)."""

    api_secret: str
    counters: Counters
    faults: FaultInjector
    storage: Storage
    tasks: TaskBoard

    @property
    def url(self) -> str: ...

    def organization(self) -> dict[str, Any]: ...

    def create_upload(self, body: object, base_url: str) -> dict[str, object]: ...

    def generate(self, endpoint: str, body: Any) -> dict[str, Any]: ...

    def cancel(self, task_id: str) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def objects(self) -> dict[str, dict[str, Any]]: ...

    def reset(self, *, full: bool = False) -> None: ...
