"""The shape the code keeps, read from its source with ast (nothing is imported): lrstudy's modules import
each other in one direction, with no cycle (imports inside functions count: they run too), and every
function fits on a screen (tools/ aside: a tool's main is a script)."""

from __future__ import annotations

import ast
from pathlib import Path

from lrstudy.provenance import imports_of

PACKAGE = Path(__file__).resolve().parent.parent / "lrstudy"
MAX_LINES = 60
MAX_PARAMETERS = 8  # self and cls aside


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly connected
    components of more than one module, or one that imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1 or v in graph[v]:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_lrstudy_module_imports_itself_back():
    graph = {name: set(imports_of(path)) - {name} for name, path in modules().items()}
    assert set().union(*graph.values()) <= set(graph), "an import names a module that is not there"
    assert cycles(graph) == []


def functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
            n = len([p for p in params if p.arg not in ("self", "cls")])
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1, n


def test_every_function_fits_on_a_screen():
    too_big = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {name}: {lines} lines, {params} parameters"
        for name_, path in modules().items()
        if not name_.startswith("lrstudy.tools")
        for name, line, lines, params in functions(path)
        if lines > MAX_LINES or params > MAX_PARAMETERS
    ]
    assert not too_big, "split these (a value object for related parameters, named steps):\n" + "\n".join(too_big)


ANALYSIS_LIBRARIES = {"pandas", "scipy", "matplotlib", "jinja2", "jsonschema"}


def module_level_imports(path: Path) -> set[str]:
    """The top-level packages a file imports when it is imported (not inside its functions)."""
    names = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_a_training_job_imports_no_analysis_library():
    """A training job's fixed cost: pandas alone added ~340 modules to every run (through the checks of a
    checkpoint's rows, now in lrstudy/metrics.py)."""
    from lrstudy.provenance import RUN_MODULE, code_of

    script = PACKAGE.parent / "workflow" / "scripts" / "train.py"
    paths = [script, *(modules()[name] for name in code_of([RUN_MODULE, "lrstudy.train.cli"], [script]))]
    found = {str(p.relative_to(PACKAGE.parent)): module_level_imports(p) & ANALYSIS_LIBRARIES for p in paths}
    assert {p: libs for p, libs in found.items() if libs} == {}
