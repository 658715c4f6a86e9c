"""How a daemon run behaves (RunPolicy) and which files it covers (Scope).

`runwatchd run` watches until stopped; `scan` and `retry` look at what is there now and exit by
how the files ended. The code asks the policy's switches, never which command started it:

    switch                 run    scan/retry   what it decides
    watch                  yes    no           observers run; folder health counts; status says
                                               "watching"
    exit_when_idle         no     yes          the main loop ends once nothing is left to do,
                                               or when the API key is rejected
    service                yes    no           systemd notifications and the metrics endpoint
                                               (the CLI); a rejected key at start exits 78
    schedule_retries       yes    no           a failed file waits out its backoff and is
                                               retried by the daemon (scan looks again now)
    report_failures        no     yes          exit 1 unless every file ended well: failures
                                               recorded earlier and files waiting for credits
                                               count too
    recover_only_in_scope  no     yes          crash recovery follows only the tasks of files
                                               in scope (a scan waits for its own files only)
    reload                 yes    no           SIGHUP reloads the configuration
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path


@dataclass(frozen=True)
class RunPolicy:
    """The switches of one daemon run (module docstring: RUN, SCAN, RETRY)."""

    name: str
    watch: bool
    exit_when_idle: bool
    service: bool
    schedule_retries: bool
    report_failures: bool
    recover_only_in_scope: bool
    reload: bool


RUN = RunPolicy("run", watch=True, exit_when_idle=False, service=True, schedule_retries=True,
                report_failures=False, recover_only_in_scope=False, reload=True)
SCAN = RunPolicy("scan", watch=False, exit_when_idle=True, service=False, schedule_retries=False,
                 report_failures=True, recover_only_in_scope=True, reload=False)
# `runwatchd retry FILE`: a scan of the named files (Scope.only), after their rows were reset.
RETRY = replace(SCAN, name="retry")


@dataclass(frozen=True)
class Scope:
    """Which files a run covers: by default every file of every folder; a scan may name the
    directories to scan inside a folder (`tops`, by folder root), `retry` the files (`only`)."""

    tops: Mapping[Path, tuple[Path, ...]] = field(default_factory=dict)
    only: frozenset[Path] | None = None

    @classmethod
    def of(cls, tops: Mapping[Path, Iterable[Path]] | None = None,
           only: Iterable[Path] | None = None) -> Scope:
        return cls({root: tuple(dirs) for root, dirs in (tops or {}).items()},
                   None if only is None else frozenset(only))

    @property
    def named(self) -> bool:
        """True when only named files are covered (`runwatchd retry`)."""
        return self.only is not None

    def names(self, path: Path) -> bool:
        """False for a file left out by `only`; every file passes when nothing is named."""
        return self.only is None or path in self.only

    def tops_for(self, root: Path) -> list[Path | None]:
        """Where to scan in the folder at `root`: the directories given, or [None] (all of it)."""
        return list(self.tops.get(root) or (None,))

    def covers(self, root: Path, path: Path) -> bool:
        """Whether `path`, in the folder at `root`, is in scope."""
        if not self.names(path):
            return False
        tops = self.tops.get(root)
        return not tops or any(top == path.parent or top in path.parents for top in tops)
