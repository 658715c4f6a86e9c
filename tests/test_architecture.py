"""The shape of the code: no import cycles, lower layers never import higher ones, no mixins.

Read from the source with `ast` (nothing is imported). Imports under `if TYPE_CHECKING:` and
inside functions count: a cycle a type checker or a lazy import hides is still a cycle. The
allow-lists name today's known offenders only; everything else is held to the rules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import runwatchd

PACKAGE = Path(runwatchd.__file__).parent
MAX_LINES = 400

# Known offenders, each with the reason it is tolerated. None today: keep it that way.
ALLOWED_EDGES: set[tuple[str, str]] = set()
ALLOWED_MIXINS: set[str] = set()
ALLOWED_SELF_ANNOTATIONS: set[str] = set()
ALLOWED_LONG: set[str] = set()

# (importers, imported): only modules under an importer prefix may import under `imported`.
LAYERS = [
    (("runwatchd.daemon", "runwatchd.cli", "runwatchd.__main__"), "runwatchd.daemon"),
    (("runwatchd.cli", "runwatchd.__main__"), "runwatchd.cli"),
]
# store/ stands on its own: it imports only itself, the lifecycle vocabulary and the bottom
# layer (errors.py, fsutil.py: they import nothing of runwatchd).
STORE_MAY_IMPORT = ("runwatchd.store", "runwatchd.lifecycle.states", "runwatchd.errors",
                    "runwatchd.fsutil")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module under `root` (the directory of `package`), by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The known modules `name` imports anywhere in its source (TYPE_CHECKING and functions
    included); `from pkg import mod` counts as importing pkg.mod when that is a module."""
    known = set(known)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` names a.b.c; the deepest known module is the one meant.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    files = module_files(root, package)
    return {name: imports_of(name, path, files) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def mixins_and_self_annotations(root: Path, package: str) -> tuple[set[str], dict[str, int]]:
    """Classes named *Mixin (dotted names), and per module the number of methods whose `self`
    carries an annotation (a method written for another class)."""
    mixins: set[str] = set()
    annotated: dict[str, int] = {}
    for name, path in module_files(root, package).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Mixin"):
                mixins.add(f"{name}.{node.name}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args
                if args and args[0].arg == "self" and args[0].annotation is not None:
                    annotated[name] = annotated.get(name, 0) + 1
    return mixins, annotated


def long_modules(root: Path, package: str) -> dict[str, int]:
    return {name: n for name, path in module_files(root, package).items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}


def layer_violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for importer, targets in graph.items():
        for target in targets:
            for allowed, guarded in LAYERS:
                if _under(target, guarded) and not any(_under(importer, a) for a in allowed):
                    bad.append((importer, target))
            if _under(importer, "runwatchd.store") and not any(
                    _under(target, a) for a in STORE_MAY_IMPORT):
                bad.append((importer, target))
    return sorted(set(bad) - ALLOWED_EDGES)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _without_allowed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in targets if (a, b) not in ALLOWED_EDGES} for a, targets in graph.items()}


# -- runwatchd ------------------------------------------------------------------------------------

def test_no_import_cycles() -> None:
    """No runwatchd module reaches itself through imports (TYPE_CHECKING ones included)."""
    assert [] == cycles(_without_allowed(import_graph(PACKAGE, "runwatchd")))


def test_lower_layers_never_import_higher_ones() -> None:
    """Only daemon/ and cli/ import daemon/, only cli/ imports cli/, store/ only itself."""
    assert [] == layer_violations(import_graph(PACKAGE, "runwatchd"))


def test_allowed_edges_still_exist() -> None:
    """Each allowed edge is still there: once the re-cut removes it, its entry goes too."""
    graph = import_graph(PACKAGE, "runwatchd")
    assert set() == {(a, b) for a, b in ALLOWED_EDGES if b not in graph.get(a, set())}


def test_no_mixins_and_no_methods_for_other_classes() -> None:
    """No class named *Mixin and no `self: SomeClass` annotation outside the allow-lists."""
    mixins, annotated = mixins_and_self_annotations(PACKAGE, "runwatchd")
    assert set() == mixins - ALLOWED_MIXINS
    assert set() == set(annotated) - ALLOWED_SELF_ANNOTATIONS


def test_modules_stay_short() -> None:
    """Every runwatchd module has at most 400 lines."""
    assert {} == {n: lines for n, lines in long_modules(PACKAGE, "runwatchd").items()
                  if n not in ALLOWED_LONG}


# -- the checks themselves, on planted packages --------------------------------------------------

def plant(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_a_type_checking_cycle_is_found(tmp_path: Path) -> None:
    """A cycle closed only under `if TYPE_CHECKING:` is reported."""
    root = plant(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg.b import B\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
    })
    assert [["pkg.a", "pkg.b"]] == cycles(import_graph(root, "pkg"))


def test_a_relative_function_level_cycle_is_found(tmp_path: Path) -> None:
    """Relative imports and imports inside functions close cycles too."""
    root = plant(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "",
        "sub/x.py": "def f():\n    from ..y import g\n",
        "y.py": "import pkg.sub.x\n",
    })
    assert [["pkg.sub.x", "pkg.y"]] == cycles(import_graph(root, "pkg"))


def test_mixins_self_annotations_and_long_modules_are_found(tmp_path: Path) -> None:
    """A *Mixin class, a `self: X` method and a module over 400 lines are all reported."""
    root = plant(tmp_path, {
        "__init__.py": "",
        "m.py": "class FooMixin:\n    def go(self: 'Host') -> None: ...\n",
        "long.py": "x = 1\n" * (MAX_LINES + 1),
    })
    assert ({"pkg.m.FooMixin"}, {"pkg.m": 1}) == mixins_and_self_annotations(root, "pkg")
    assert {"pkg.long": MAX_LINES + 1} == long_modules(root, "pkg")


def test_a_lower_layer_importing_the_daemon_is_found() -> None:
    """watch/ importing daemon/ breaks the layering (a graph with that edge planted)."""
    graph = {"runwatchd.watch.folders": {"runwatchd.daemon.core"},
             "runwatchd.daemon.core": {"runwatchd.watch.folders"}}
    assert [("runwatchd.watch.folders", "runwatchd.daemon.core")] == layer_violations(graph)
