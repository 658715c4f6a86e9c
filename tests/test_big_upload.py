"""A 200 MiB upload (Runway's maximum) streams: the CLI process's peak RSS stays under 80 MB.

The file is sparse (no disk space, no write time); the emulator runs in this process with
keep_files=False, so it only hashes what arrives, and must store the sha256 of 200 MiB of zeros.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import psutil
from cli_helpers import cli_env

from runwatchd.emulator import Emulator
from runwatchd.lifecycle import sidecar
from runwatchd.runway import media

SECRET = "key_big_upload_test"
PEAK_LIMIT = 80 * 1000 * 1000
SAMPLE_EVERY = 0.02


def sha256_of_zeros(size: int, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    block = bytes(chunk)
    for _ in range(size // chunk):
        digest.update(block)
    digest.update(bytes(size % chunk))
    return digest.hexdigest()


def peak_rss_of(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Sample the process's RSS every 20 ms until it exits; return the largest sample."""
    ps = psutil.Process(proc.pid)
    peak = 0
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, ps.memory_info().rss)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            break
        time.sleep(SAMPLE_EVERY)
    return peak


def test_200_mib_upload_peak_rss_under_80_mb(tmp_path: Path) -> None:
    """Uploading a 200 MiB file keeps the CLI's peak RSS under 80 MB, and the emulator holds
    the right sha256 and size."""
    big = tmp_path / "master.mov"
    with open(big, "wb") as f:
        f.truncate(media.MAX_SIZE)
    with Emulator(api_secret=SECRET, keep_files=False) as emu:
        env = cli_env(tmp_path, emu.url, SECRET)
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "runwatchd", "upload", str(big)],
                                env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            peak = peak_rss_of(proc, timeout=90)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        took = time.monotonic() - start
        objects = emu.objects()
    expected_sha = sha256_of_zeros(media.MAX_SIZE)
    uri = out.decode().strip()
    print(f"200 MiB upload: peak RSS {peak / 1e6:.1f} MB, {took:.1f} s")
    assert (0, b"", True) == (proc.returncode, err, uri.startswith("runway://"))
    assert 0 < peak < PEAK_LIMIT, f"peak RSS {peak / 1e6:.1f} MB"
    assert {"filename": "master.mov", "size": media.MAX_SIZE, "sha256": expected_sha} == (
        objects[uri])
    assert (uri, expected_sha) == (sidecar.read_sidecar(big)["runway_uri"],  # type: ignore[index]
                                   sidecar.read_sidecar(big)["file"]["sha256"])  # type: ignore[index]
