"""`runwatchd demo`: the whole flow offline, in a temporary hot folder, on the built-in emulator.

It makes its own sample media with the standard library (a real PNG and a real WAV), starts the
emulator and a daemon with a generation rule on one folder, drops the files, and shows the
sidecars and downloaded outputs as they appear. Then it stops everything and cleans up.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import struct
import sys
import tempfile
import time
import wave
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from runwatchd.config import load as configmod
from runwatchd.lifecycle import sidecar
from runwatchd.runway.client import RunwayClient
from runwatchd.store import open_store

log = logging.getLogger(__name__)

DEMO_KEY = "demo-key-not-a-secret"
TIME_LIMIT = 30.0


def make_png(path: Path, width: int = 64, height: int = 64, seed: int = 0) -> None:
    """A real RGB PNG with a noisy gradient (noise keeps it above Runway's 512-byte minimum)."""
    rng = random.Random(seed)
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter type 0 for each scanline
        for x in range(width):
            row += bytes(((x * 4 + rng.randrange(32)) % 256, (y * 4) % 256,
                          (128 + rng.randrange(64)) % 256))
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    path.write_bytes(png)


def make_wav(path: Path, seconds: float = 0.5, freq: float = 440.0, rate: int = 16000) -> None:
    """A real mono 16-bit WAV with a sine tone."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * n / rate)))
                      for n in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def demo_config(base: Path) -> configmod.Config:
    data = {
        "runway": {"concurrency": 4, "state_dir": str(base / "state")},
        "defaults": {"settle_seconds": 0.5, "rescan_interval": 60},
        "folder": [
            {"path": str(base / "hot" / "stills"),
             "rule": {"endpoint": "image_to_video", "output_dir": "renders",
                      "request": {"model": "gen4.5", "promptText": "{stem} comes to life",
                                  "ratio": "1280:720", "duration": 5}}},
            {"path": str(base / "hot" / "audio")},
        ],
    }
    return configmod.parse_config(data, "demo")


def run_demo(keep: bool = False, out: TextIO = sys.stdout) -> int:
    from runwatchd.daemon.core import Daemon
    from runwatchd.daemon.in_thread import DaemonThread
    from runwatchd.emulator import Emulator

    base = Path(tempfile.mkdtemp(prefix="runwatchd-demo-"))

    def say(text: str) -> None:
        print(text, file=out, flush=True)
    started = time.monotonic()
    emulator = Emulator(api_secret=DEMO_KEY, task_seconds=1.0).start()
    client = journal = None
    running: DaemonThread | None = None
    try:
        say(f"emulator: {emulator.url} (a local stand-in for Runway; no credits spent)")
        for sub in ("hot/stills", "hot/audio"):
            (base / sub).mkdir(parents=True)
        cfg = demo_config(base)
        client = RunwayClient(DEMO_KEY, emulator.url)
        journal = open_store(base / "state")
        running = DaemonThread(Daemon(cfg, client, journal, state_dir=base / "state",
                                      poll_interval=1.0), name="runwatchd-demo", background=True)
        running.start()
        say(f"hot folder: {base / 'hot'}")
        say("  stills/ has a rule: image_to_video (gen4.5) -> stills/renders/")
        say("  audio/  has no rule: upload and sidecar only")
        stills = [base / "hot" / "stills" / f"shot{n}.png" for n in (1, 2, 3)]
        for n, path in enumerate(stills):
            make_png(path, seed=n)
        clip = base / "hot" / "audio" / "voice.wav"
        make_wav(clip)
        say(f"dropped {len(stills)} PNG stills and 1 WAV clip; waiting for the daemon...")
        ok = _wait_for_results(stills, clip, say, started)
        if ok:
            say(f"\ndone in {time.monotonic() - started:.1f} s. One sidecar, in full:")
            say(sidecar.sidecar_path(stills[0]).read_text(encoding="utf-8").rstrip())
            stats = emulator.stats()
            say(f"emulator counted: {stats.get('uploads_completed')} uploads, "
                f"{stats.get('tasks_created')} tasks")
        else:
            say(f"the demo did not finish within {TIME_LIMIT:.0f} s; see the log lines above")
        return 0 if ok else 1
    finally:
        if running is not None:
            running.stop(15)
        if client is not None:
            client.close()
        if journal is not None:
            journal.close()
        emulator.stop()
        if keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def _wait_for_results(stills: list[Path], clip: Path, say: Callable[[str], None],
                      started: float) -> bool:
    shown: set[tuple[Path, str]] = set()
    while time.monotonic() - started < TIME_LIMIT:
        done = True
        for path in stills + [clip]:
            data = _read(sidecar.sidecar_path(path))
            if data is None:
                done = False
                continue
            task = data.get("task")
            status = task["status"] if task else "UPLOADED"
            if (path, status) not in shown:
                shown.add((path, status))
                extra = f" -> {', '.join(task['outputs'])}" if task and task["outputs"] else ""
                say(f"  {path.parent.name}/{path.name}: {status} {data['runway_uri']}{extra}")
            if path in stills and status != "SUCCEEDED":
                done = False
        if done:
            return True
        time.sleep(0.2)
    return False


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
