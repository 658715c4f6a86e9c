"""The emulator in its own process, so its CPU and memory never count against a contender.

Prints its URL on the first line of stdout, then serves until SIGTERM or until its stdin closes
(the harness died). Uploaded bytes are only hashed (keep_files=False): the benchmarks push
gigabytes and need the proof (size, sha256), not the bytes.

    python emulator_proc.py [--max-concurrent-tasks N]

Tasks run 1 s each, at most 4 at once by default (Runway's tier limit, beyond which a task waits
THROTTLED); a case that measures its own throughput, not the tier's, raises the limit.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from runwatchd.emulator import Emulator


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-concurrent-tasks", type=int, default=4)
    args = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    emulator = Emulator(port=0, keep_files=False, task_seconds=1.0, credits=10_000_000,
                        max_concurrent_tasks=args.max_concurrent_tasks)
    with emulator:
        print(emulator.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
