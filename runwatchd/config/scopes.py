"""Where outputs may go: never where a watched folder would take them for new media.

A rule's output directory that is a watched folder (or above one) makes outputs land among the
sources: they overwrite files of the same name and are uploaded and generated again, a paid
loop (issue 13: `output_dir = "../hot"` in a rules file made 12 tasks in 15 s); one that is above
a folder makes the whole folder look like outputs and nothing is processed. A dedicated folder
inside the rule's own watched folder (the usual `renders`) is fine: the daemon never takes its
own output folders for sources. Paths are compared after resolving `..` and symlinks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def real(path: Path) -> Path:
    """`path` with symlinks and `..` resolved as far as it exists (the rest is normalised)."""
    return Path(os.path.realpath(path))


def output_dir_problem(out: Path, own_root: Path,
                       watched: Sequence[tuple[Path, bool]]) -> str | None:
    """Why `out` cannot hold the outputs of a rule of the folder `own_root`, or None.
    `watched` is every watched folder as (path, recursive)."""
    out = real(out)
    own = real(own_root)
    for root, recursive in watched:
        root = real(root)
        if out == root or root.is_relative_to(out):
            what = "is" if out == root else "contains"
            return (f"{out} {what} the watched folder {root}: outputs would be taken for new "
                    "media (or overwrite it); use a folder of its own, such as 'renders'")
        inside = out.is_relative_to(root) if recursive else out.parent == root
        if inside and root != own:
            return (f"{out} is inside the watched folder {root}, which would take the outputs "
                    "for new media; use a folder outside it, or inside this rule's own folder")
    return None
