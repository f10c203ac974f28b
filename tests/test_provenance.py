"""Code identity: which code made a table, a figure, the report or a run is read from the imports (ast),
never listed by hand, so a module a rule runs cannot be missing from its identity."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from lrstudy import provenance
from lrstudy.provenance import RUN_MODULE, code_of, imports_of, script_fingerprint

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "workflow" / "scripts"
# Rules whose script's code does not rerun them, each for its reason (docs/reruns-and-recovery.md):
WITHOUT_CODE = {
    "download": "the data's identity is its md5, not the code that fetched it",
    "prepare_data": "a run depends on the data's checksums, recorded with the cache",
    "train": "a code edit never retrains by itself; each run records its code (code_record)",
    "plan_stage": "a stage plan decides which runs train: like training, a code edit never replans",
    "seed_plan": "a copy of the last stage plan",
}
# Modules the train rule runs that decide where a run computes or where its state is kept (a GPU lease; a
# bucket, under a default storage provider), not what it computes: outside the run's identity. (The run
# cache decides whether the run is put in place as it was kept instead of trained: the same run.)
WHERE_NOT_WHAT = {
    "lrstudy.train.gpu_lease",
    "lrstudy.storage",
    "lrstudy.train.stored",
    "lrstudy.studies",
    "lrstudy.run_cache",
}


def rules() -> dict[str, tuple[str, str | None]]:
    """rule name -> (its script, the script its `code` param names, or None), read from the .smk files."""
    out = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^\s*(?=(?:rule|checkpoint) \w+:)", smk.read_text()):
            head = re.match(r"(?:rule|checkpoint) (\w+):", block)
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            if head and script:
                code = re.search(r'code=code_of\("([\w.]+)"\)', block)
                out[head.group(1)] = (script.group(1), code and code.group(1))
    return out


def test_every_rule_with_a_script_has_that_scripts_code_as_its_identity_or_a_reason_not_to():
    found = rules()
    assert set(WITHOUT_CODE) < set(found), "a rule listed here is gone: update WITHOUT_CODE and the docs"
    for rule, (script, code) in found.items():
        assert code == (None if rule in WITHOUT_CODE else script), f"rule {rule}: code=code_of({script!r}) expected"


def test_the_report_reruns_when_any_module_it_runs_changes():
    """The hand-kept list this replaces left out design_check (the report's operating characteristics),
    validation (the checks of a run's files) and config."""
    assert {"lrstudy.analysis.design_check", "lrstudy.config"} <= set(code_of([], [SCRIPTS / "render_report.py"]))
    assert {"lrstudy.validation", "lrstudy.config"} <= set(code_of([], [SCRIPTS / "aggregate.py"]))


def test_a_run_records_every_module_the_train_rule_and_lrstudy_train_run_but_where_they_run():
    run = set(code_of([RUN_MODULE]))
    assert set(code_of([], [SCRIPTS / "train.py"])) - run == WHERE_NOT_WHAT
    assert set(code_of(["lrstudy.train.cli"])) - run == {"lrstudy.train.cli"}


def test_an_edit_reruns_the_rules_that_import_the_module_and_no_other(tmp_path, monkeypatch):
    before = {s: script_fingerprint(SCRIPTS / s) for s in ("render_report.py", "aggregate.py", "tables.py")}
    shutil.copytree(REPO / "lrstudy", tmp_path / "lrstudy", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "lrstudy" / "analysis" / "design_check.py", "a") as fh:
        fh.write("\n# an edit\n")
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)
    after = {s: script_fingerprint(SCRIPTS / s) for s in before}
    assert after["render_report.py"] != before["render_report.py"]
    assert after["aggregate.py"] == before["aggregate.py"] and after["tables.py"] == before["tables.py"]


def test_imports_are_found_in_every_form_and_anywhere_in_a_file(tmp_path):
    source = tmp_path / "s.py"
    source.write_text(
        "import os\nimport lrstudy.metrics\nfrom lrstudy.train import loop\nfrom lrstudy.config import Stats\n"
        "def f():\n    from lrstudy.analysis import stats as st\n    import lrstudy.schedule as sc\n"
    )
    assert imports_of(source) == {
        "lrstudy",
        "lrstudy.metrics",
        "lrstudy.train",
        "lrstudy.train.loop",
        "lrstudy.config",
        "lrstudy.analysis",
        "lrstudy.analysis.stats",
        "lrstudy.schedule",
    }
    (tmp_path / "bad.py").write_text("import lrstudy.nowhere\n")
    with pytest.raises(ImportError, match="no module lrstudy.nowhere"):
        code_of([], [tmp_path / "bad.py"])


def dynamic_imports(path: Path) -> list[str]:
    """Imports the ast cannot follow: relative ones, importlib.import_module, __import__, exec."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            out.append(f"{path.name}:{node.lineno} relative import")
        elif isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in ("importlib.import_module", "import_module", "__import__", "exec", "eval"):
                out.append(f"{path.name}:{node.lineno} {called}")
    return out


def test_every_import_of_lrstudy_and_its_scripts_can_be_read_from_the_source():
    """What makes the identities complete: every lrstudy module is imported by name, in the source."""
    files = [*sorted((REPO / "lrstudy").rglob("*.py")), *sorted(SCRIPTS.glob("*.py"))]
    assert [problem for path in files for problem in dynamic_imports(path)] == []
