"""`execution.device: auto` on a machine without CUDA is decided once for the whole study, before any job
starts (issue 20.8): one message for every run too long for this CPU, not one failed job per run."""

import json

import pytest
import torch
from conftest import small_study

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


def test_finished_runs_are_not_counted(workflow, archive):
    cfg = str(workflow.write_config(long_study(archive)))
    for run in ["baseline/seed0", "baseline/seed1", "lr_x5/seed0"]:
        (workflow.root / "results/runs" / run).mkdir(parents=True)
        (workflow.root / "results/runs" / run / "summary.json").write_text(json.dumps({}))
    proc = workflow.snakemake("-n", "--configfile", cfg)
    assert "and the run lr_x5 seed 1 would take about" in proc.stdout + proc.stderr
    (workflow.root / "results/runs/lr_x5/seed1").mkdir(parents=True)
    (workflow.root / "results/runs/lr_x5/seed1/summary.json").write_text(json.dumps({}))
    proc = workflow.snakemake("-n", "--configfile", cfg)
    assert REFUSAL not in proc.stdout + proc.stderr
