"""No behaviour change: a tiny run made by today's code gives, bit for bit, the metrics stored in
tests/golden/ (every column but epoch_seconds, which is a wall-clock time).

The runs go through `lrstudy-train`, the public entry point, on the CPU with one thread: same config and
seed must give the same metrics.csv, whatever is refactored underneath. A tiny run is chaotic: any other
float kernel changes every digit after a few steps, and PyTorch, oneDNN and MKL each pick their kernels
by the CPU's instruction set (AVX2 on one x86-64 machine, AVX-512 on the next). So the runs are made in a
child process with the three of them held to AVX2 (CPU_PINS), which every x86-64 machine since 2013 has:
the stored files are then the same on any of them. Another architecture or torch build may still round
differently, and then this test says so rather than hiding it behind a tolerance. To regenerate them
after an intended change of numbers: `python tests/test_golden_run.py` (and say why in the commit).
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import synthetic_archive

from lrstudy.config import parsed_recipe, run_hash

GOLDEN = Path(__file__).resolve().parent / "golden"
COMMON = ["--width", "4", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--threads", "1", "--seed", "7"]
# name -> the flags that make the run: the default (cosine) recipe, and one that exercises the step
# schedule, Nesterov momentum and an lr window.
RUNS = {
    "tiny_run_metrics.csv": ["--lr", "0.05"],
    "tiny_step_run_metrics.csv": ["--lr", "0.08", "--schedule", "step", "--nesterov", "--lr-window", "1:2:0.5"],
}
# The step run as lrstudy made it before schedules were mappings (23d6a0a): summary.json and metrics.csv.
BEFORE_SCHEDULES = GOLDEN / "before_schedules"
# Read when each library starts, so only a new process can be given them.
CPU_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def tiny_archive(directory: Path) -> Path:
    """200 train / 100 test images, always the same ones."""
    return synthetic_archive.write_archive(directory / "tiny.tar.gz", train_per_batch=40, test=100, seed=5)


def run_metrics(archive: Path, out: Path, flags: list[str]) -> list[dict]:
    cmd = [sys.executable, "-m", "lrstudy.train.cli", "--archive", str(archive), "--out", str(out), *COMMON, *flags]
    proc = subprocess.run(cmd, env={**os.environ, **CPU_PINS}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return without_timing(out / "metrics.csv")


def without_timing(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in csv.DictReader(fh)]


@pytest.mark.parametrize("name", RUNS)
def test_tiny_run_is_bit_identical_to_the_stored_one(tmp_path, name):
    got = run_metrics(tiny_archive(tmp_path), tmp_path / "run", RUNS[name])
    assert len(got) == 2
    assert got == without_timing(GOLDEN / name)
    if name == "tiny_step_run_metrics.csv":  # the same run, and its identity, as made before
        old, new = (json.loads((d / "summary.json").read_text()) for d in (BEFORE_SCHEDULES, tmp_path / "run"))
        # The archive's gzip header holds the time it was written: the data's checksums are today's.
        assert new["config_hash"] == run_hash(parsed_recipe(old["config"], "config"), old["seed"], new["dataset"])
        assert run_hash(parsed_recipe(old["config"], "config"), old["seed"], old["dataset"]) == old["config_hash"]
        assert [{k: v for k, v in r.items() if k != "lr_last"} for r in got] == without_timing(
            BEFORE_SCHEDULES / "metrics.csv"
        )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = tiny_archive(Path(tmp))
        for name, flags in RUNS.items():
            run_metrics(archive, Path(tmp) / name, flags)
            (GOLDEN / name).write_text((Path(tmp) / name / "metrics.csv").read_text())
            print(f"wrote {GOLDEN / name}", file=sys.stderr)
