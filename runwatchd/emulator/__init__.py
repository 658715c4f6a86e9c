"""The built-in Runway API emulator: a real HTTP server speaking Runway's wire protocol.

Runway cannot be reached from where runwatchd is built and tested, and users want to try a
hot folder without spending credits. The emulator answers like Runway (presigned uploads with a
policy, generation endpoints, tasks through PENDING/THROTTLED/RUNNING, downloadable outputs,
/v1/organization), injects the failures a real deployment shows (429 with Retry-After, 5xx,
dropped connections, slow replies, expired slots, no credits) and counts what clients did.

Modules: app (the Emulator object, serve_forever), listener (the socket and its connections),
server (HTTP handling, routing, fault application), contract (what the handler may call),
storage (slots and streaming multipart), bodies (request validation against Runway's schemas,
costs), tasks (lifecycle), faults, state.
"""

from runwatchd.runway.api import API_VERSION

from .app import DEFAULT_SECRET, Emulator, serve_forever
from .faults import FaultConfig

__all__ = ["API_VERSION", "DEFAULT_SECRET", "Emulator", "FaultConfig", "serve_forever"]
