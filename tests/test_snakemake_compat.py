"""The Snakemake internals the workflow reads (lrstudy/snakemake_compat.py), pinned to the supported
Snakemake: an upgrade that moves any of them fails here, in one place, rather than in a study."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import snakemake
import snakemake.api  # noqa: F401 (imports snakemake.workflow in the order Snakemake needs)
from snakemake.settings.types import ConfigSettings
from snakemake.workflow import Workflow
from snakemake_interface_executor_plugins.settings import ExecMode

from lrstudy.snakemake_compat import SUPPORTED_SNAKEMAKE, Invocation, command_line_config, config_files

REPO = Path(__file__).resolve().parent.parent


def test_the_installed_snakemake_is_the_supported_one():
    assert snakemake.__version__ == SUPPORTED_SNAKEMAKE
    assert f"snakemake=={SUPPORTED_SNAKEMAKE}" in (REPO / "requirements.txt").read_text().splitlines()


def invocation(*argv: str, mode: ExecMode = ExecMode.DEFAULT) -> Invocation:
    return Invocation.of(SimpleNamespace(exec_mode=mode), argv)


@pytest.mark.parametrize(
    "argv, plain",
    [
        (["--cores", "2"], True),
        (["--cores", "2", "results/runs/lr_x5/summary.csv"], True),
        (["-n"], False),
        (["--report", "r.zip"], False),
        (["--lint"], False),
        (["--unlock"], False),
        (["--touch"], False),
        (["--summary"], False),
        (["--detailed-summary"], False),
        (["--list-rules"], False),
        (["--list-target-rules"], False),
        (["--cleanup-metadata", "x"], False),
        (["--no-such-option"], False),  # not Snakemake's command line: parsed as nothing
    ],
)
def test_only_a_plain_run_of_the_main_process_may_change_files_at_parse_time(argv, plain):
    assert invocation(*argv).plain_run is plain
    assert invocation(*argv, mode=ExecMode.SUBPROCESS).plain_run is False


@pytest.mark.parametrize(
    "argv, here",
    [
        (["--cores", "2"], True),
        (["-n"], True),
        (["--executor", "local"], True),
        (["--report", "r.zip"], False),
        (["--unlock"], False),
        (["--executor", "slurm"], False),
        (["--profile", str(REPO / "profiles/slurm")], False),
        (["--software-deployment-method", "conda"], False),
        (["--use-conda"], False),
        (["--use-apptainer"], False),
        (["--no-such-option"], False),
    ],
)
def test_jobs_run_here_only_with_the_local_executor_and_this_python(argv, here):
    """The study-wide device check (workflow/rules/common.smk) speaks for jobs that run where it runs."""
    assert invocation(*argv).jobs_run_here is here
    assert invocation(*argv, mode=ExecMode.SUBPROCESS).jobs_run_here is False


@pytest.mark.parametrize(
    "argv, methods",
    [
        ([], set()),
        (["--sdm", "apptainer"], {"apptainer"}),
        (["--software-deployment-method", "conda", "apptainer"], {"conda", "apptainer"}),
        (["--use-apptainer"], {"apptainer"}),
        (["--use-singularity"], {"apptainer"}),
        (["--use-conda"], {"conda"}),
    ],
)
def test_the_software_deployment_is_read_however_it_is_spelled(argv, methods):
    assert invocation(*argv).deployment == methods


def test_report_path_targets_and_forced_rules_are_read_from_the_parse():
    assert invocation("--report", "report.html").report_path == "report.html"
    assert invocation("--reporter", "html", "--report-html-path", "x.html").report_path == "x.html"
    assert invocation("--cores", "1").report_path is None
    forced = invocation("--forcerun", "train", "results/runs/a/summary.csv")
    assert forced.forcerun == ["results/runs/a/summary.csv", "train"] and forced.targets == []
    assert invocation("--forcerun", "train", "--", "report.html").targets == ["report.html"]
    assert invocation("--no-such-option").forcerun == [] and invocation("--no-such-option").report_path is None


def test_the_command_line_config_and_the_config_files_are_where_the_workflow_reads_them(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text("seeds: [0]\ntrain: {epochs: 2}\n")
    settings = ConfigSettings(config={"study": "demo"}, configfiles=[study])
    workflow = SimpleNamespace(config_settings=settings, configfiles=[str(study)])
    assert command_line_config(workflow) == {"seeds": [0], "train": {"epochs": 2}, "study": "demo"}
    assert config_files(workflow) == [study]
    # The same names on Snakemake's Workflow: exec_mode a property, config_settings a field, configfiles set.
    assert isinstance(Workflow.__dict__["exec_mode"], property)
    assert "config_settings" in Workflow.__dataclass_fields__
    assert "self.configfiles" in Path(snakemake.workflow.__file__).read_text()


REFUSING_SNAKEFILE = """
from lrstudy.config import ConfigError
from lrstudy.refusal import said_alone

def bad_key():
    raise ConfigError("invalid config: train.epochs: 0 is less than the minimum of 1")

said_alone(bad_key)

rule all:
    output: "results/x"
    shell: "touch {output}"
"""


@pytest.mark.workflow
def test_a_refusal_is_printed_as_its_sentence_alone(tmp_path):
    """lrstudy/refusal.py: Snakemake lets SystemExit through, where it wraps an exception in its type, the
    file and line and the source lines it came through ("ConfigError in file ..., line 8: ..."). Nothing is
    left behind. (tests/test_config.py sees the same from an input function, in the workflow itself.)"""
    (tmp_path / "Snakefile").write_text(REFUSING_SNAKEFILE)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1] == "invalid config: train.epochs: 0 is less than the minimum of 1"
    assert 'File "' not in proc.stderr and "line " not in proc.stderr and "ConfigError" not in proc.stderr
    assert not (tmp_path / "results").exists() and not list(tmp_path.glob(".snakemake/locks/*"))
