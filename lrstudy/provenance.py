"""Which code made a result: the git commit of the project and a fingerprint of the source files that
determine a run's numbers (or a table's, a figure's, the report's), recorded with every run.

Which files those are is read from the code itself, never listed by hand: a script or module's code is
every `lrstudy` module it imports, directly or through others, anywhere in the file (imports inside
functions too), found with `ast` without importing anything. A run's code is what `lrstudy.train.run`
imports; a rule's is what its script imports (`script_fingerprint`, the analysis rules' `code` params).
The fingerprint hashes the files' contents, so it names the code even outside git and is unchanged by
edits elsewhere (README, tests, the report's wording).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "lrstudy"
_ROOT = Path(__file__).resolve().parent.parent  # the folder that holds lrstudy/
# What makes a run: lrstudy-train and the workflow's train rule both call it (lrstudy.train.run.execute).
RUN_MODULE = "lrstudy.train.run"


def module_file(name: str) -> Path | None:
    """The source file of the lrstudy module `name` (None: no such module), found without importing it."""
    path = _ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path) -> frozenset[str]:
    """The lrstudy modules a source file imports anywhere in it, with the packages they are in (importing
    lrstudy.train.run runs lrstudy/__init__.py and lrstudy/train/__init__.py first)."""
    return _imports_in(path.read_bytes(), str(path))


@functools.cache  # by content: an edited file is read again
def _imports_in(source: bytes, filename: str) -> frozenset[str]:
    found = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            # `from lrstudy.train import loop` imports the module lrstudy.train.loop; `from x import name`, a name.
            found.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}"))
    modules = {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}
    return frozenset(".".join(name.split(".")[:i]) for name in modules for i in range(1, name.count(".") + 2))


def code_of(roots: Iterable[str], files: Iterable[Path] = ()) -> list[str]:
    """Every lrstudy module that the modules `roots` and the source `files` import, directly or through
    others, with the roots themselves; sorted."""
    seen: set[str] = set()
    todo = [*roots, *(m for path in files for m in imports_of(Path(path)))]
    while todo:
        name = todo.pop()
        if name not in seen:
            path = module_file(name)
            if path is None:
                raise ImportError(f"no module {name} in {_ROOT / PACKAGE}")
            seen.add(name)
            todo.extend(imports_of(path) - seen)
    return sorted(seen)


def code_fingerprint(modules: Iterable[str]) -> str:
    """16 hex digits of the sha256 of the modules' source files, found without importing them."""
    h = hashlib.sha256()
    for name in modules:
        path = module_file(name)
        if path is None:
            raise ImportError(f"cannot find the source of {name}")
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def script_fingerprint(script: str | Path) -> str:
    """A rule's code identity: the fingerprint of every lrstudy module its script imports, directly or not."""
    return code_fingerprint(code_of([], [Path(script)]))


def git_state(repo: str | Path) -> dict:
    """{'commit': HEAD or None, 'dirty': uncommitted changes to tracked files (None outside git)}."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def code_record(repo: str | Path) -> dict:
    """What a run records about the code that made it: every lrstudy module that making a run imports."""
    return {**git_state(repo), "engine_fingerprint": code_fingerprint(code_of([RUN_MODULE]))}
