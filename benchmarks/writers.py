"""Concurrent writers for the hot-folder case: files that grow with pauses, like renders and copies.

    python writers.py DIR MANIFEST --files N --writers W --seed S [--min-mb A --max-mb B]
                      [--max-pause P]

Each writer thread creates its files one after another, writing 1 MiB chunks; every file gets
0-2 pauses of up to P seconds at random points while it is open. Sizes are uniform in [A, B]
MiB. At the end MANIFEST (JSON) lists every file: final size, sha256, and the monotonic time
of its last write (CLOCK_MONOTONIC is system-wide, so the harness can compare it with its own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

MIB = 1024 * 1024
EXTS = (".mp4", ".mov", ".jpg", ".png", ".wav")


def write_one(path: Path, size: int, rng: random.Random, block: bytes, max_pause: float) -> dict:
    pauses = sorted(rng.random() * size for _ in range(rng.choice((0, 1, 1, 2))))
    h = hashlib.sha256()
    head = hashlib.sha256(path.name.encode()).digest()
    written = 0
    with open(path, "wb") as f:
        while written < size:
            n = min(MIB, size - written)
            chunk = (head + block)[:n] if written == 0 else block[:n]
            f.write(chunk)
            f.flush()
            h.update(chunk)
            written += n
            while pauses and pauses[0] <= written:
                pauses.pop(0)
                time.sleep(rng.uniform(0.05, max_pause))
    return {"size": size, "sha256": h.hexdigest(), "closed": time.monotonic()}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dir", type=Path)
    p.add_argument("manifest", type=Path)
    p.add_argument("--files", type=int, required=True)
    p.add_argument("--writers", type=int, required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--min-mb", type=float, default=0.5)
    p.add_argument("--max-mb", type=float, default=20.0)
    p.add_argument("--max-pause", type=float, default=0.8)
    args = p.parse_args()
    block = random.Random(args.seed).randbytes(MIB)
    manifest: dict[str, dict] = {}
    lock = threading.Lock()

    def writer(w: int) -> None:
        rng = random.Random(args.seed * 1000 + w)
        for i in range(w, args.files, args.writers):
            name = f"w{w}_{i:04d}{EXTS[i % len(EXTS)]}"
            size = int(rng.uniform(args.min_mb, args.max_mb) * MIB)
            info = write_one(args.dir / name, size, rng, block, args.max_pause)
            with lock:
                manifest[name] = info

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tmp = args.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, args.manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
