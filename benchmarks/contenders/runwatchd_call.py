"""runwatchd's upload measured inside the process: the RunwayClient.upload() call alone.

    python runwatchd_call.py FILE

Prints "call SECONDS" (key check excluded, slot request and transfer included): the figure to
hold against curl's presigned POST, which pays no interpreter start either.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from runwatchd.runway.client import RunwayClient


def main() -> int:
    path = Path(sys.argv[1])
    with RunwayClient(os.environ["RUNWAYML_API_SECRET"], os.environ["RUNWAYML_BASE_URL"]) as c:
        c.check_key()
        t = time.perf_counter()
        c.upload(path)
        print(f"call {time.perf_counter() - t:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
