"""Build hook: the wheel carries the repository's systemd/, config/, completions/ and man/ folders
as package data in runwatchd/share/, where `runwatchd init --service` finds them.

The folders stay at the top of the checkout (the README and the tests name them there) and are
copied only into the build, never into runwatchd/ in git. MANIFEST.in puts them in the sdist,
so a wheel built from the sdist has them too. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("systemd", "config", "completions", "man")


class BuildPyWithShare(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout itself
            return
        share = Path(self.build_lib) / "runwatchd" / "share"
        for name in SHIPPED:
            shutil.copytree(name, share / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithShare})
