"""The rules files of a folder tree: reading one (small, regular, never blocking), and the
RuleResolver that finds the nearest one for a file (re-read when it changes)."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Sequence
from pathlib import Path

from runwatchd import fsutil
from runwatchd.config.scopes import output_dir_problem
from runwatchd.config.tomlcheck import parse_toml_text
from runwatchd.generation.rules import RULES_FILENAME, Rule, parse_rule

log = logging.getLogger(__name__)

# A rules file is a few lines of TOML: anything past this is a mistake or an attack (a 3 GB
# sparse file was once read whole).
MAX_RULES_BYTES = 1024 * 1024


def _version(st: os.stat_result) -> tuple[int, ...]:
    # ctime and inode too: an editor that saves by rename within one mtime tick keeps the size.
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def load_rules_file(path: Path) -> tuple[Rule | None, list[str], tuple[int, ...] | None]:
    """(rule, problems, version) for one rules file; the version is taken from the open file."""
    try:
        raw, st = fsutil.read_small_file_and_stat(path, MAX_RULES_BYTES)
    except OSError as e:
        return None, [f"cannot read ({e.strerror})"], None
    version = _version(st)
    data, problem = parse_toml_text(raw)
    if data is None:
        return None, [problem or "invalid TOML"], version
    rule, problems = parse_rule(data, str(path), "")
    if rule is not None:
        rule = Rule(rule.endpoint, rule.output_dir, rule.input_field, rule.request, str(path),
                    rule.name or path.parent.name, path.parent)
    return rule, problems, version


def broken_rules_message(path: Path, problems: Sequence[str]) -> str:
    """The one wording of an invalid rules file: the daemon's warning and the waiting reason of
    the files below it both say this (check-config prints each problem as `<path>: problem`)."""
    return f"invalid rules file {path}: {'; '.join(problems)}"


class RuleResolver:
    """The rule for a file under `root`: nearest valid rules file, else the config's rule.

    Thread-safe. Each call stats one rules-file path per directory level; a file is parsed
    again only when its (mtime, ctime, size, inode) changed. An invalid rules file is logged
    once per version and skipped, so the next one up (or the config rule) applies.
    """

    def __init__(self, root: Path, config_rule: Rule | None,
                 watched: Sequence[tuple[Path, bool]] = ()) -> None:
        """`watched`: every watched folder as (path, recursive); a rules file whose output_dir
        is, contains or lies inside one's sources is invalid (config/scopes.py). The folder of
        `root` itself is always among them."""
        self.root = Path(os.path.abspath(root))
        self.config_rule = config_rule
        self._watched = list(watched) if any(
            Path(os.path.abspath(p)) == self.root for p, _ in watched) else [
            (self.root, True), *watched]
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, ...], Rule | None, list[str]]] = {}

    def _rules_files(self, media_path: Path) -> list[Path] | None:
        """Where a rules file for `media_path` may lie, nearest first: its folder, then each
        one up to the watched folder. None for a file outside the watched folder."""
        directory = Path(os.path.abspath(media_path)).parent
        try:
            rel = directory.relative_to(self.root)
        except ValueError:
            return None
        dirs = [self.root]
        for part in rel.parts:
            dirs.append(dirs[-1] / part)
        return [d / RULES_FILENAME for d in reversed(dirs)]

    def rule_for(self, media_path: Path) -> Rule | None:
        """The rule that applies to `media_path` now."""
        with self._lock:
            for path in self._rules_files(media_path) or []:
                rule = self._rule_in(path)
                if rule is not None:
                    return rule
        return self.config_rule

    def broken_rules_file(self, media_path: Path) -> str | None:
        """Why `media_path` must wait, when the nearest rules file above it is invalid.

        Falling back to a rule further up would generate (and bill) the file with a rule its
        folder meant to override; so files under a broken rules file wait until it is fixed.
        """
        with self._lock:
            for path in self._rules_files(media_path) or []:
                if self._rule_in(path) is not None:
                    return None
                cached = self._cache.get(path)
                if cached is not None and cached[2]:
                    return broken_rules_message(path, cached[2])
        return None

    def check(self, path: Path) -> tuple[Rule | None, list[str], tuple[int, ...] | None]:
        """(rule, problems, version) of the rules file at `path` as this folder would take it:
        read (never blocking: a FIFO is "not a regular file"), parsed, and its output_dir
        checked against the watched folders. Neither cached nor logged (check-config uses it)."""
        try:
            st = os.stat(path)
        except OSError as e:
            return None, [f"cannot read ({e.strerror})"], None
        if not stat.S_ISREG(st.st_mode):
            return None, ["not a regular file"], _version(st)
        rule, problems, version = load_rules_file(path)
        if rule is not None:
            why = output_dir_problem(rule.output_path(self.root), self.root, self._watched)
            if why is not None:  # outputs among sources: re-uploaded and generated, a paid loop
                rule, problems = None, [f"output_dir: {why}"]
        return rule, problems, version or _version(st)

    def _rule_in(self, path: Path) -> Rule | None:
        try:
            st = os.stat(path)
        except OSError:
            self._cache.pop(path, None)
            return None
        cached = self._cache.get(path)
        if cached is not None and cached[0] == _version(st):
            return cached[1]
        rule, problems, version = self.check(path)
        self._cache[path] = (version or _version(st), rule, problems)
        if problems:
            log.warning("%s (files below it wait until it is fixed)",
                        broken_rules_message(path, problems))
        elif cached is not None:
            log.info("rules file %s changed; now %s -> %s", path, rule and rule.endpoint,
                     rule and rule.output_dir)
        return rule

    def problems(self) -> dict[str, list[str]]:
        """Problems of the invalid rules files seen on the last lookups, by path."""
        with self._lock:
            return {str(p): list(v[2]) for p, v in self._cache.items() if v[2]}
