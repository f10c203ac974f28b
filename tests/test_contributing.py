"""docs/contributing.md's map stays true: every file and folder it names exists, every lrstudy module is on
it, and where it says a name is in a file, it is (a change that moves code updates the map or fails here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = (REPO / "docs" / "contributing.md").read_text()
LAYOUT = PAGE[PAGE.index("## Layout") : PAGE.index("## Lint and tests")]
WHERE = PAGE[PAGE.index("## Where a change goes") :]
PATH = re.compile(r"`([\w./*<>-]+/[\w./*<>-]*|[\w.-]+\.(?:py|smk|yaml|md|j2|sh|txt))`")


def named_paths() -> set[str]:
    """Every path the layout table and 'Where a change goes' name. In a row of the table a bare module name
    (`loop.py`) is in the folder of the path before it (`lrstudy/train/`, `lrstudy/atomic.py`)."""
    out = set()
    for line in LAYOUT.splitlines():
        folder = ""
        for name in PATH.findall(line) if line.startswith("| `") else []:
            if "/" in name:
                out.add(name)
                folder = name if name.endswith("/") else str(Path(name).parent) + "/"
            elif name.endswith(".py"):
                out.add(folder + name)
    out |= {n for n in PATH.findall(WHERE) if "/" in n}
    return {n for n in out if "<" not in n and not n.startswith("snakemake.")}  # `lrstudy/<stage>/`: a pattern


def test_every_path_on_the_map_exists():
    missing = [
        n for n in sorted(named_paths()) if not (list(REPO.glob(n.rstrip("/"))) if "*" in n else (REPO / n).exists())
    ]
    assert missing == []


def test_every_lrstudy_module_is_on_the_map():
    named = named_paths()
    unplaced = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "lrstudy").rglob("*.py"))
        if p.name != "__init__.py" and str(p.relative_to(REPO)) not in named
    ]
    assert unplaced == [], "add each to the layout table of docs/contributing.md"


def defines(path: Path, name: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def test_every_name_the_page_places_in_a_file_is_there():
    claims = re.findall(r"`(\w+)`(?: \([^)]*\))? in\s+`([\w/.]+\.py)`", PAGE.replace("\n  ", " "))
    assert claims, "the page places no name: the pattern above is out of date"
    wrong = [f"{name} in {path}" for name, path in claims if not defines(REPO / path, name)]
    assert wrong == []
