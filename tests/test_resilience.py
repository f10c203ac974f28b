"""Interrupted, diverged, out of memory, a full disk: finished work is kept and every failure is explained."""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_study
from test_engine import board_scalars, board_session, cache, run  # noqa: F401 (the cache fixture is shared)

from lrstudy.atomic import NoSpaceError, atomic_path, atomic_write_text
from lrstudy.logs import run_logged
from lrstudy.train import checkpoint, loop
from lrstudy.train.device import DeviceError


def checkpoint_epoch(path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError):
        return 0


@pytest.mark.workflow
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(cfg), "--", target],
        cwd=wf.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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
    from tensorboard.plugins.hparams.api_pb2 import STATUS_FAILURE

    s = run(cache, tmp_path / "d", board=tmp_path / "tb", lr_windows=[{"start": 2, "end": 3, "factor": 1.0e12}])
    assert board_session(tmp_path / "tb")[1] == STATUS_FAILURE  # issue 32.1: it read as SUCCESS
    assert "final_test_acc" not in board_scalars(tmp_path / "tb")
    assert s["diverged"] is True and s["diverged_epoch"] == 2
    assert s["epochs_completed"] == 2 and s["final_test_acc"] is None
    assert s["best_epoch"] == 1 and s["best_test_acc"] is not None
    m = pd.read_csv(tmp_path / "d" / "metrics.csv")
    assert m["epoch"].tolist() == [1, 2] and not math.isfinite(m["train_loss"].iloc[-1])


def test_out_of_memory_says_what_to_do(cache, tmp_path, monkeypatch):  # noqa: F811
    def oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "run_epoch", oom)
    with pytest.raises(DeviceError, match="out of memory .* lower those in the config"):
        run(cache, tmp_path / "o")
    assert not (tmp_path / "o" / "metrics.csv").exists()


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB filesystem of its own (needs the right to mount: root in the test container)."""
    root = tmp_path / "small_fs"
    root.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 64 KiB tmpfs to fill ({proc.stderr.strip()}); the /dev/full tests still run")
    yield root
    subprocess.run(["umount", "--lazy", str(root)], check=True)  # lazy: a file torch left open must not block it


BIG = {"weights": torch.zeros(100_000)}  # 400 kB: more than the small filesystem holds


def save_npz(path):
    with atomic_path(path) as tmp:
        np.savez(tmp, x=np.zeros(100_000))


@pytest.mark.parametrize(
    "name, write",
    [
        ("seed0.pt", lambda path: checkpoint.save(path, BIG)),
        ("metrics.csv", lambda path: atomic_write_text(path, "0.95," * 50_000)),
        ("cifar10.npz", save_npz),
    ],
    ids=["torch.save", "text", "numpy"],
)
def test_a_full_disk_is_named_and_keeps_the_old_file(full_disk, name, write):
    target = full_disk / name
    target.write_text("the previous complete file")
    with pytest.raises(NoSpaceError, match=f"no space left on {target} \\(No space left on device\\)"):
        write(target)
    assert target.read_text() == "the previous complete file"
    assert [p.name for p in full_disk.iterdir()] == [name], "no temporary file is left"


def test_tensorboard_on_a_full_disk_ends_the_run_with_the_file_named(cache, full_disk, tmp_path):  # noqa: F811
    """Issue 29.7: TensorBoard's writes on a full disk were four tracebacks."""
    filler = full_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as fh:
        while True:
            fh.write(b"0" * 4096)
            fh.flush()
    board = full_disk / "tb"
    with pytest.raises(SystemExit, match=f"error: no space left on {board}/events.out.tfevents.lrstudy"):
        run_logged(tmp_path / "train.log", lambda: run(cache, tmp_path / "out", board=board, epochs=1))
    assert "Traceback" not in (tmp_path / "train.log").read_text()
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_a_run_on_a_full_disk_ends_with_the_file_named_and_nothing_half_written(cache, full_disk, tmp_path):  # noqa: F811
    with pytest.raises(SystemExit, match=f"error: no space left on {full_disk}/model.pt"):
        run_logged(tmp_path / "train.log", lambda: run(cache, full_disk, epochs=1))
    assert list(full_disk.iterdir()) == []
    assert "Traceback" not in (tmp_path / "train.log").read_text()


@pytest.mark.parametrize(
    "write", [lambda fh: torch.save(BIG, fh), lambda fh: fh.write(b"0" * 100_000)], ids=["torch.save", "plain"]
)
def test_a_write_failing_for_lack_of_space_is_named_without_mounting(tmp_path, write):
    """/dev/full fails every write with ENOSPC, as a full disk does; torch wraps it in its RuntimeError."""
    target = tmp_path / "out.pt"
    with pytest.raises(NoSpaceError, match=f"no space left on {target}"):
        with atomic_path(target), open("/dev/full", "wb") as fh:
            write(fh)
    assert list(tmp_path.iterdir()) == []
