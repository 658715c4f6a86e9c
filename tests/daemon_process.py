"""`runwatchd run` as a real process against an in-process emulator: its config, environment
and log (shared by the CLI-daemon, signal and status-page tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import tomli_w
from helpers import wait_for

from runwatchd.emulator import Emulator

KEY = "cli-daemon-test-key-51c9"


class Setup:
    """A config file, a state dir and an environment that point `runwatchd` at the emulator."""

    def __init__(self, tmp_path: Path, emulator: Emulator) -> None:
        self.tmp = tmp_path
        self.emu = emulator
        self.hot = tmp_path / "hot"
        self.hot.mkdir()
        self.state = tmp_path / "state"
        self.config = tmp_path / "runwatchd.toml"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(
            ("RUNWATCHD_", "RUNWAYML_", "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_",
             "CREDENTIALS_DIRECTORY", "XDG_"))}
        self.env.update(RUNWAYML_BASE_URL=emulator.url, RUNWAYML_API_SECRET=KEY,
                        HOME=str(tmp_path), RUNWATCHD_RETRY_BASE_DELAY="0.01")
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs = 0

    def write_config(self, folders: list[dict] | None = None, *, concurrency: int = 4,
                     **defaults: object) -> Path:
        data = {
            "runway": {"concurrency": concurrency, "state_dir": str(self.state)},
            "daemon": {"grace_seconds": 30},
            "defaults": {"settle_seconds": 0.3, "poll_interval": 0.2, **defaults},
            "folder": folders if folders is not None else [{"path": str(self.hot)}],
        }
        self.config.write_text(tomli_w.dumps(data), encoding="utf-8")
        return self.config

    def cli(self, *args: str, cwd: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runwatchd", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout,
                              cwd=cwd or self.tmp)

    def start(self) -> DaemonProcess:
        self._logs += 1
        log = self.tmp / f"daemon{self._logs}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runwatchd", "run", "-c", str(self.config)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        self._procs.append(proc)
        daemon = DaemonProcess(proc, log)
        assert daemon.wait_log("ready:", timeout=20), daemon.log()
        return daemon

    def kill_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def stats(self) -> dict:
        return self.emu.stats()


class DaemonProcess:
    """One `runwatchd run` process and its log."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log_path = log

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def count(self, text: str) -> int:
        return self.log().count(text)

    def wait_log(self, text: str, n: int = 1, timeout: float = 10) -> bool:
        return bool(wait_for(lambda: self.count(text) >= n or self.proc.poll() is not None,
                             timeout) and self.count(text) >= n)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

