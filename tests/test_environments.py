"""The jobs' software: conda environments, the images' install lists and pyproject.toml hold what the code
imports, complete and at requirements.txt's pins; analysis jobs get no torch (issue 35.4, 35.5)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import re
import sys
import tomllib

import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lrstudy.provenance import code_of, module_file

spec = importlib.util.spec_from_file_location("environments", REPO / "tools/environments.py")
environments = importlib.util.module_from_spec(spec)
sys.modules["environments"] = environments  # its dataclass looks itself up there
spec.loader.exec_module(environments)

PINNED = set(environments.pins().values())
# Imported by a module without naming it: torch.utils.tensorboard needs the tensorboard distribution.
IMPORTED_THROUGH = {"torch.utils.tensorboard": "tensorboard"}
# Provided by whatever runs the job, not by its environment: Snakemake, and its storage plugins' interface
# (lrstudy.storage, under a default storage provider), which the script preamble puts on a job's path.
RUNNER = {"snakemake", "snakemake-interface-storage-plugins"}
DISTRIBUTIONS = metadata.packages_distributions()
TORCH = {"torch", "torchvision", "triton"}


def names(lines) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in lines}


def imported_distributions(*sources) -> set[str]:
    """The distributions that `sources` import, themselves or through any lrstudy module they reach
    (lrstudy.provenance.code_of; every import statement, those inside functions too), without the standard
    library."""
    files = [*sources, *(module_file(name) for name in code_of([], sources))]
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("__future__", "lrstudy"):
                    found |= {canonicalize_name(d) for d in DISTRIBUTIONS[top]}
                    found |= {d for prefix, d in IMPORTED_THROUGH.items() if module.startswith(prefix)}
    return found


def rule_environments() -> dict[str, tuple[str, str]]:
    """Rule -> (its script, its conda environment), read from the rule files (snakefmt's layout)."""
    found = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"\n(?=\s*(?:rule|checkpoint) \w+:)", smk.read_text()):
            rule = re.match(r"\s*(?:rule|checkpoint) (\w+):", block)
            script = re.search(r'script:\n\s+"\.\./scripts/([\w.]+)"', block)
            conda = re.search(r'conda:\n\s+"\.\./envs/([\w.]+)"', block)
            if rule and script:
                assert conda, f"rule {rule[1]} runs a script but names no conda environment"
                found[rule[1]] = (script[1], conda[1])
    return found


def test_environments_and_install_lists_are_written_from_requirements():
    """Each file is what tools/environments.py makes of requirements.txt today: nothing can drift."""
    for path, text in environments.rendered().items():
        assert path.exists(), f"{path.relative_to(REPO)} is missing: run python tools/environments.py"
        assert path.read_text() == text, f"{path.relative_to(REPO)} differs: run python tools/environments.py"
    assert not (REPO / "workflow/envs/study.yaml").exists()


@pytest.mark.parametrize("env", environments.ENVIRONMENTS, ids=lambda env: env.path)
def test_each_list_is_a_complete_pinned_closure(env):
    """Every line is requirements.txt's own pin, and whatever a listed distribution requires on this
    platform is listed too (pip install --no-deps of the list is complete)."""
    lines = environments.listed(REPO / env.path)
    assert lines and set(lines) <= PINNED, set(lines) - PINNED
    listed = names(lines)
    for line in lines:
        for dep in metadata.distribution(Requirement(line).name).requires or []:
            req = Requirement(dep)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                assert canonicalize_name(req.name) in listed, f"{env.path}: {line} needs {dep}, not listed"


def test_each_job_has_what_its_script_imports_and_analysis_has_no_torch():
    rules = rule_environments()
    assert {"train", "aggregate", "report", "prepare_data", "mlflow"} <= set(rules)
    for rule, (script, env) in rules.items():
        needed = imported_distributions(REPO / "workflow/scripts" / script) - RUNNER
        has = names(environments.listed(REPO / "workflow/envs" / env))
        assert needed <= has, f"rule {rule} ({script}) imports {sorted(needed - has)}, not in envs/{env}"
        if rule != "train":
            assert not has & TORCH, f"rule {rule}'s environment envs/{env} pulls in torch"
    train = names(environments.listed(REPO / "workflow/envs/train.yaml"))
    assert TORCH <= train and any(name.startswith("nvidia-") for name in train)  # PyPI's CUDA build


def test_the_images_hold_their_environments_snakemake_and_the_storage_plugin():
    def listed(path):
        return names(environments.listed(REPO / path))

    train, analysis = listed("containers/train.txt"), listed("containers/analysis.txt")
    runner = {"snakemake", "snakemake-storage-plugin-s3"}
    assert listed("workflow/envs/train.yaml") | runner <= train
    others = ("analysis", "mlflow", "tensorboard")
    assert set().union(*(listed(f"workflow/envs/{env}.yaml") for env in others)) | runner <= analysis
    assert not analysis & TORCH and not any(name.startswith("nvidia-") for name in analysis)
    dockerfile = (REPO / "containers/Dockerfile").read_text()
    for target in ("train", "analysis"):
        stage = dockerfile.split(f" AS {target}\n")[1].split("\nFROM ")[0]
        assert f"COPY containers/{target}.txt /opt/lrstudy/requirements.txt" in stage
        assert "pip install --no-deps -r /opt/lrstudy/requirements.txt && pip check" in stage
    assert f"FROM python:{environments.PYTHON}-" in dockerfile


def test_the_rules_run_in_the_image_of_their_environment():
    """Training in the train image; every other job in the analysis image (the Snakefile's global
    `container:`), both from the config, so that --software-deployment-method apptainer uses them."""
    snakefile = (REPO / "Snakefile").read_text()
    assert 'container: config["containers"]["analysis"]' in snakefile
    assert snakefile.index("container:") < snakefile.index('include: "workflow/rules/data.smk"')
    train = (REPO / "workflow/rules/train.smk").read_text().split("rule variant_summary")[0]
    assert re.search(r'container:\n\s+config\["containers"\]\["train"\]', train)
    others = [p.read_text() for p in (REPO / "workflow/rules").glob("*.smk")]
    assert sum(text.count("container:") for text in others) == 1  # only train overrides the global image


def test_pip_install_gives_what_lrstudy_imports_at_the_pins():
    """pyproject.toml's dependencies: every distribution a module of lrstudy imports (the mlflow extra
    for the export), each at requirements.txt's pin, and the environments' needs with them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"]
    extra = project["optional-dependencies"]["mlflow"]
    assert set(declared) | set(extra) <= PINNED
    imported = imported_distributions(*(REPO / "lrstudy").rglob("*.py")) - RUNNER
    assert imported - names(extra) == names(declared)
    wanted = environments.TRAIN + environments.ANALYSIS
    assert {canonicalize_name(n) for n in wanted} <= names(declared)


def test_new_environments_or_images_retrain_nothing():
    """A changed environment file or image (make lock) is not Snakemake's reason to rerun a finished run
    (--use-conda or apptainer would otherwise retrain every run): its versions are in summary.json."""
    import yaml

    profile = yaml.safe_load((REPO / "profiles/default/config.v8+.yaml").read_text())
    assert "software-env" not in profile["rerun-triggers"] and "params" in profile["rerun-triggers"]
