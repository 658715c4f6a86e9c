"""`runwatchd init --service`: the systemd units, the sysusers.d file and a starter config, written
where systemd expects them, then the commands that finish the install.

The units and the sysusers.d file are the ones in the repository's systemd/ folder, installed
with the package (runwatchd/share/, see setup.py); an editable install reads them from the
checkout. Nothing is overwritten: if any target exists, nothing is written at all.
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

PACKAGE = Path(__file__).resolve().parent.parent
# A wheel carries the shipped folders in runwatchd/share/; a checkout has them at its top.
SEARCH = (PACKAGE / "share", PACKAGE.parent)
SHIPPED_KINDS = ("systemd", "config", "completions", "man")
# The program path the shipped units name; replaced by the one actually installed.
UNIT_PROGRAM = "/opt/runwatchd/bin/runwatchd"
CONFIG_PATH = PurePosixPath("/etc/runwatchd/config.toml")
SECRET_PATH = PurePosixPath("/etc/runwatchd/runway_api_secret")
# The units name /srv/hot in ReadWritePaths= and RequiresMountsFor=: the starter watches it.
SERVICE_FOLDER = "/srv/hot"
EXIT_OK, EXIT_FAILED = 0, 1


def shipped_dir(kind: str) -> Path:
    """The folder holding the shipped `kind` files (systemd, config, completions, man)."""
    if kind not in SHIPPED_KINDS:
        raise ValueError(f"unknown kind of shipped file {kind!r}")
    for base in SEARCH:
        if (base / kind).is_dir() and (base is SEARCH[0] or (base / "pyproject.toml").exists()):
            return base / kind
    raise FileNotFoundError(f"the shipped {kind}/ folder is missing from this installation "
                            f"(looked in {', '.join(str(b) for b in SEARCH)})")


@dataclass(frozen=True)
class Target:
    path: PurePosixPath  # where it goes on the target system
    text: str


def installed_program(root: Path) -> PurePosixPath:
    """The `runwatchd` script of this installation, as the target system sees it (the staging
    root stripped when the program lives below it); the units' default if there is none."""
    script = Path(sysconfig.get_path("scripts")) / "runwatchd"
    if not script.is_file():
        return PurePosixPath(UNIT_PROGRAM)
    script = script.absolute()
    root = root.absolute()
    if root != Path("/") and script.is_relative_to(root):
        return PurePosixPath("/") / script.relative_to(root)
    return PurePosixPath(script)


def service_targets(program: PurePosixPath) -> list[Target]:
    from runwatchd.config.starter import starter_config

    units = shipped_dir("systemd")
    targets = [Target(PurePosixPath("/etc/systemd/system") / name,
                      (units / name).read_text().replace(UNIT_PROGRAM, str(program)))
               for name in ("runwatchd.service", "runwatchd@.service")]
    targets.append(Target(PurePosixPath("/etc/sysusers.d/runwatchd.conf"),
                          (units / "runwatchd.sysusers.conf").read_text()))
    targets.append(Target(CONFIG_PATH, starter_config(SERVICE_FOLDER)))
    return targets


def next_steps(program: PurePosixPath) -> list[str]:
    return [
        "systemd-sysusers                 # creates the runwatchd user",
        f"install -m 0600 /dev/stdin {SECRET_PATH}   # paste the key, Enter, Ctrl-D",
        f"editor {CONFIG_PATH}   # your [[folder]] paths",
        "systemctl edit runwatchd         # the same folders: ReadWritePaths=, RequiresMountsFor=",
        f"CREDENTIALS_DIRECTORY={SECRET_PATH.parent} {program} check-config -c {CONFIG_PATH}",
        "systemctl daemon-reload && systemctl enable --now runwatchd",
    ]


def _place(root: Path, path: PurePosixPath) -> Path:
    return root / path.relative_to("/")


def install_service(root: Path, out: TextIO, err: TextIO) -> int:
    """Write the service's files below `root` (normally /); 1 with one line per file in the way
    if any exists (then nothing is written), or if one cannot be written."""
    from runwatchd.config.starter import write_starter

    program = installed_program(root)
    try:
        targets = service_targets(program)
    except OSError as e:
        print(f"runwatchd: {e}", file=err)
        return EXIT_FAILED
    present = [t for t in targets if os.path.lexists(_place(root, t.path))]
    for t in present:
        print(f"runwatchd: {_place(root, t.path)} exists; not overwriting it", file=err)
    if present:
        print("runwatchd: nothing written (move those files away to start afresh)", file=err)
        return EXIT_FAILED
    for t in targets:
        dest = _place(root, t.path)
        try:
            write_starter(dest, t.text)
            dest.chmod(0o644)
        except OSError as e:
            print(f"runwatchd: cannot write {dest} ({e.strerror or e})", file=err)
            return EXIT_FAILED
        print(f"wrote {dest}", file=out)
    staged = "" if root.absolute() == Path("/") else \
        f" (files written below {root}; the paths are those of the system that uses it)"
    print(f"\nNext, as root{staged}:", file=out)
    for line in next_steps(program):
        print(f"  {line}", file=out)
    return EXIT_OK
