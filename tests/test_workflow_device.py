"""`execution.device: auto` on a machine without CUDA is decided once for the whole study, before any job
starts (issue 20.8): one message for every run too long for this CPU, not one failed job per run."""

import json

import pytest
import torch
import yaml
from conftest import REPO, small_study

from lrstudy.config import recipe_of

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA"),
]

REFUSAL = "execution.device is 'auto' but PyTorch sees no CUDA device"


def long_study(archive) -> dict:
    """Four runs of about 8 h each on this CPU by the estimate (width 64, 400 epochs of 1,000 images)."""
    return small_study(archive, device="auto", width=64, epochs=400)


def test_a_study_too_long_for_the_cpu_stops_once_before_any_job(workflow, archive):
    cfg = str(workflow.write_config(long_study(archive)))
    proc = workflow.snakemake("--configfile", cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and out.count(REFUSAL) == 1, out
    assert "4 runs still to train would take up to about" in out and "execution.device: cpu" in out
    assert not (workflow.root / "results").exists() and not (workflow.root / "logs").exists()


def test_a_dry_run_shows_its_plan_and_says_the_run_would_stop(workflow, archive):
    cfg = str(workflow.write_config(long_study(archive)))
    proc = workflow.snakemake("-n", "--configfile", cfg)
    assert proc.stdout.count(REFUSAL) + proc.stderr.count(REFUSAL) == 1
    assert "a run would stop here, before any job starts" in proc.stdout + proc.stderr
    assert "train" in proc.stdout and not (workflow.root / "results").exists()


def finish(workflow, study: dict, variant: str, seed: int) -> None:
    """A finished run as the plan reads it: the train rule's three files, summary.json recording the run's
    identity and the configured recipe and data (a run recording another recipe is one to train again)."""
    train = {**yaml.safe_load((REPO / "config.yaml").read_text())["train"], **study["train"]}
    summary = {
        "variant": variant,
        "seed": seed,
        "config": recipe_of({**train, **study["variants"][variant]}, "t").as_dict(),
        "config_hash": "h",
        "dataset": study["dataset"],
        "code": {"engine_fingerprint": "e"},
    }
    folder = workflow.root / "results/runs" / variant / f"seed{seed}"
    folder.mkdir(parents=True)
    for name in ("metrics.csv", "model.pt"):
        (folder / name).write_text("")
    (folder / "summary.json").write_text(json.dumps(summary))


def test_finished_runs_are_not_counted(workflow, archive):
    study = long_study(archive)
    cfg = str(workflow.write_config(study))
    for variant, seed in [("baseline", 0), ("baseline", 1), ("lr_x5", 0)]:
        finish(workflow, study, variant, seed)
    proc = workflow.snakemake("-n", "--configfile", cfg)
    assert "and the run lr_x5 seed 1 would take about" in proc.stdout + proc.stderr
    finish(workflow, study, "lr_x5", 1)
    proc = workflow.snakemake("-n", "--configfile", cfg)
    assert REFUSAL not in proc.stdout + proc.stderr
