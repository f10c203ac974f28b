"""Rule train: one seeded run of one variant, resumed from its checkpoint if one matches; put in place from
the run cache instead when the cache holds this very run (the config went back to it)."""

import contextlib
import logging
from pathlib import Path

from lrstudy import run_cache
from lrstudy.config import execution_of, recipe_from_param
from lrstudy.data.cifar10 import DatasetError
from lrstudy.logs import run_logged
from lrstudy.train.device import DeviceError
from lrstudy.train.gpu_lease import gpu_lease
from lrstudy.train.run import RunBusyError, execute, oversubscribed

sm = snakemake  # noqa: F821 (injected by Snakemake)
RUN = Path(sm.output.summary).parent
# Not a param or an output: an execution setting that must not retrain a run, and not a file Snakemake
# should delete when a run fails. It belongs to the run: kept and restored with it (lrstudy/run_cache.py).
BOARD = Path("results/tensorboard", sm.wildcards.variant, f"seed{sm.wildcards.seed}")
log = logging.getLogger("lrstudy.train")


def main():
    recipe = recipe_from_param(sm.params.recipe, where=f"variants.{sm.wildcards.variant}")
    seed = int(sm.wildcards.seed)
    kept = run_cache.kept_run(Path("."), sm.wildcards.variant, seed, recipe, Path(sm.input.meta))
    if kept is not None:
        outputs = {"metrics.csv": sm.output.metrics, "summary.json": sm.output.summary, "model.pt": sm.output.model}
        run_cache.restore(kept, {name: Path(path) for name, path in outputs.items()}, BOARD)
        log.info(
            "run %s seed %d: put in place from the run cache (%s), not trained", sm.wildcards.variant, seed, kept.path
        )
        return
    train(recipe, seed)
    run_cache.keep(Path("."), RUN)  # kept from the moment it exists: a later config change loses nothing


def train(recipe, seed):
    # Execution settings come from the config, not params: they must not retrain a finished run.
    execution = execution_of(sm.config["execution"])
    if warning := oversubscribed(execution.cpu_threads, sm.threads):
        log.warning(warning)
    # With --resources gpu=N, N runs start at once: each takes its own GPU (or GPU slot, with
    # runs_per_gpu > 1) before CUDA is initialised.
    lease = (
        contextlib.nullcontext()
        if execution.device == "cpu"
        else gpu_lease(sm.params.gpu_locks, runs_per_gpu=execution.runs_per_gpu)
    )
    with lease:
        execute(
            recipe=recipe,
            execution=execution,
            seed=seed,
            variant=sm.wildcards.variant,
            data_npz=Path(sm.input.npz),
            data_meta=Path(sm.input.meta),
            metrics_out=Path(sm.output.metrics),
            summary_out=Path(sm.output.summary),
            model_out=Path(sm.output.model),
            checkpoint_path=Path(sm.params.checkpoint),
            project=Path(sm.params.project),
            tensorboard_dir=BOARD,
            # The trainer's own log, across resumes; not the declared log, which Snakemake empties before
            # every job, including one the run's lock then refuses. Not a param: that would retrain runs.
            trainer_log=Path("logs/train", sm.wildcards.variant, f"seed{sm.wildcards.seed}.trainer.log"),
        )


run_logged(sm.log[0], main, expected=(DeviceError, RunBusyError, DatasetError))
