"""Interrupted, diverged, out of memory: finished work is kept and every failure is explained."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import small_study
from lrstudy.engine import DeviceError, Trainer
from test_engine import cache, run  # noqa: F401 (the cache fixture is shared)


def checkpoint_epoch(path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError):
        return 0


def test_sigkilled_workflow_resumes_to_the_uninterrupted_result(tmp_path, archive):
    from conftest import Workflow

    study = small_study(archive, epochs=6)
    study["dataset"]["train_limit"] = 1000
    study["variants"] = {"baseline": {}}
    study["seeds"] = [0]
    target = "results/runs/baseline/seed0/metrics.csv"

    reference = Workflow(tmp_path / "reference")
    reference.snakemake("--configfile", str(reference.write_config(study)), "--", target)

    wf = Workflow(tmp_path / "killed")
    cfg = wf.write_config(study)
    ckpt = wf.root / "results/checkpoints/baseline/seed0.pt"
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(cfg), "--", target],
                            cwd=wf.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while checkpoint_epoch(ckpt) < 3:
            assert proc.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and its training job, without warning
        proc.wait()
    assert not (wf.root / target).exists()
    killed_at = checkpoint_epoch(ckpt)
    assert 3 <= killed_at < 6

    wf.snakemake("--unlock", "--configfile", str(cfg))
    wf.snakemake("--rerun-incomplete", "--configfile", str(cfg), "--", target)
    log = (wf.root / "logs/train/baseline/seed0.log").read_text()
    assert "resumed from results/checkpoints/baseline/seed0.pt at the end of epoch" in log
    summary = json.loads((wf.root / "results/runs/baseline/seed0/summary.json").read_text())
    assert summary["resumed_from_epoch"] >= killed_at
    ours = pd.read_csv(wf.root / target).drop(columns="epoch_seconds")
    ref = pd.read_csv(reference.root / target).drop(columns="epoch_seconds")
    pd.testing.assert_frame_equal(ours, ref, check_exact=True)


def test_divergence_ends_the_run_cleanly(cache, tmp_path):  # noqa: F811
    s = run(cache, tmp_path / "d", lr_windows=[{"start": 2, "end": 4, "factor": 1.0e12}])
    assert s["diverged"] is True and s["diverged_epoch"] == 2
    assert s["epochs_completed"] == 2 and s["final_test_acc"] is None
    assert s["best_epoch"] == 1 and s["best_test_acc"] is not None
    m = pd.read_csv(tmp_path / "d" / "metrics.csv")
    assert m["epoch"].tolist() == [1, 2] and not math.isfinite(m["train_loss"].iloc[-1])


def test_out_of_memory_says_what_to_do(cache, tmp_path, monkeypatch):  # noqa: F811
    def oom(self, lr):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train_epoch", oom)
    with pytest.raises(DeviceError, match="out of memory .* lower those in the config"):
        run(cache, tmp_path / "o")
    assert not (tmp_path / "o" / "metrics.csv").exists()
