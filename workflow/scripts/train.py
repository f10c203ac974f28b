"""Rule train: one seeded run of one variant, resumed from its checkpoint if one matches."""

import contextlib
import logging
from pathlib import Path

from lrstudy.config import execution_of, recipe_from_param
from lrstudy.data.cifar10 import DatasetError
from lrstudy.logs import run_logged
from lrstudy.train.device import DeviceError
from lrstudy.train.gpu_lease import gpu_lease
from lrstudy.train.run import RunBusyError, RunFiles, RunSpec, execute, oversubscribed, tensorboard_log

sm = snakemake  # noqa: F821 (injected by Snakemake)


def main():
    # Execution settings come from the config, not params: they must not retrain a finished run.
    execution = execution_of(sm.config["execution"])
    if warning := oversubscribed(execution.cpu_threads, sm.threads):
        logging.getLogger("lrstudy.train").warning(warning)
    # With --resources gpu=N, N runs start at once: each takes its own GPU (or GPU slot, with
    # runs_per_gpu > 1) before CUDA is initialised.
    lease = (
        contextlib.nullcontext()
        if execution.device == "cpu"
        else gpu_lease(sm.params.gpu_locks, runs_per_gpu=execution.runs_per_gpu)
    )
    variant, seed = sm.wildcards.variant, int(sm.wildcards.seed)
    spec = RunSpec(recipe_from_param(sm.params.recipe, where=f"variants.{variant}"), execution, seed, variant)
    files = RunFiles(
        metrics=Path(sm.output.metrics),
        summary=Path(sm.output.summary),
        model=Path(sm.output.model),
        checkpoint=Path(sm.params.checkpoint),
        # Not a param or an output: an execution setting that must not retrain a run, and not a file
        # Snakemake should delete when a run fails.
        tensorboard=Path("results/tensorboard", variant, f"seed{seed}"),
        # The trainer's own log, across resumes; not the declared log, which Snakemake empties before
        # every job, including one the run's lock then refuses. Not a param: that would retrain runs.
        trainer_log=Path("logs/train", variant, f"seed{seed}.trainer.log"),
    )
    with lease:
        cache = (Path(sm.input.npz), Path(sm.input.meta))
        execute(spec, cache, files, on_epoch=tensorboard_log(spec, files), project=Path(sm.params.project))


run_logged(sm.log[0], main, expected=(DeviceError, RunBusyError, DatasetError))
