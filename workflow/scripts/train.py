"""Rule train: one seeded run of one variant, resumed from its checkpoint if one matches."""

import contextlib
import json
from pathlib import Path

from lrstudy.engine import DeviceError
from lrstudy.gpu_lease import gpu_lease
from lrstudy.logs import run_logged
from lrstudy.run import execute

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    train = json.loads(sm.params.train)
    # With --resources gpu=N, N runs start at once: each takes its own GPU (or GPU slot, with
    # runs_per_gpu > 1) before CUDA is initialised.
    lease = (contextlib.nullcontext() if train["device"] == "cpu"
             else gpu_lease(sm.params.gpu_locks, runs_per_gpu=sm.params.runs_per_gpu))
    with lease:
        execute(
            train=train, seed=int(sm.wildcards.seed), variant=sm.wildcards.variant,
            data_npz=Path(sm.input.npz), data_meta=Path(sm.input.meta), metrics_out=Path(sm.output.metrics),
            summary_out=Path(sm.output.summary), model_out=Path(sm.output.model),
            checkpoint_path=Path(sm.params.checkpoint), threads=sm.threads,
        )


run_logged(sm.log[0], main, expected=(DeviceError,))
