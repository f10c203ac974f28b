"""Rule train: one seeded run of one variant, resumed from its checkpoint if one matches; put in place from
the run cache instead when the cache holds this very run (the config went back to it)."""

import contextlib
import logging
from pathlib import Path

from lrstudy import run_cache
from lrstudy.config import ConfigError, execution_of, recipe_from_param
from lrstudy.data.cifar10 import DamagedCacheError, DatasetError
from lrstudy.logs import run_logged
from lrstudy.storage import StudyStorage
from lrstudy.studies import rebuild_cache_command
from lrstudy.train.device import DeviceError
from lrstudy.train.gpu_lease import gpu_lease
from lrstudy.train.run import (
    EpochLogs,
    RunBusyError,
    RunFiles,
    RunSpec,
    execute,
    oversubscribed,
    skip_the_last_collection,
    tensorboard_log,
)
from lrstudy.train.stored import StoredRunState

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = logging.getLogger("lrstudy.train")


def main():
    variant, seed = sm.wildcards.variant, int(sm.wildcards.seed)
    # Execution settings come from the config, not params: they must not retrain a finished run.
    execution = execution_of(sm.config["execution"])
    spec = RunSpec(recipe_from_param(sm.params.recipe, where=f"variants.{variant}"), execution, seed, variant)
    # The run's files that are not outputs, by their paths in the study. Not params: an execution setting
    # (TensorBoard) or a path must not retrain a run; not outputs: Snakemake deletes a failed job's outputs,
    # and these are what it resumes from. The trainer's own log is kept across resumes; Snakemake empties the
    # declared log before every job, including one the run's lock then refuses.
    checkpoint, trainer_log = sm.params.checkpoint, f"logs/train/{variant}/seed{seed}.trainer.log"
    tensorboard = f"results/tensorboard/{variant}/seed{seed}"
    # With a default storage provider (a bucket, lrstudy/storage.py), they live in its local copies, and the
    # checkpoint and the log are stored as the run trains: a run lost with its node resumes on another.
    storage = StudyStorage.from_env()
    local = storage.local if storage is not None else Path
    files = RunFiles(
        metrics=Path(sm.output.metrics),
        summary=Path(sm.output.summary),
        model=Path(sm.output.model),
        checkpoint=local(checkpoint),
        tensorboard=local(tensorboard),
        trainer_log=local(trainer_log),
    )
    # The run cache keeps the study's finished runs on this machine's disk (lrstudy/run_cache.py); with a
    # default storage provider the runs live in the bucket, and a job's node keeps nothing.
    if storage is None and (kept := run_cache.kept_run(Path("."), variant, seed, spec.recipe, Path(sm.input.meta))):
        outputs = {"metrics.csv": files.metrics, "summary.json": files.summary, "model.pt": files.model}
        run_cache.restore(kept, outputs, files.tensorboard)
        log.info("run %s seed %d: put in place from the run cache (%s), not trained", variant, seed, kept.path)
        return
    if warning := oversubscribed(execution.cpu_threads, sm.threads):
        log.warning(warning)
    # With --resources gpu=N, N runs start at once: each takes its own GPU (or GPU slot, with
    # runs_per_gpu > 1) before CUDA is initialised.
    lease = (
        contextlib.nullcontext()
        if execution.device == "cpu"
        else gpu_lease(sm.params.gpu_locks, runs_per_gpu=execution.runs_per_gpu)
    )
    stored = None
    if storage is not None:
        where = {files.checkpoint: checkpoint, files.trainer_log: trainer_log}
        stored = StoredRunState(storage, files.checkpoint, files.trainer_log, where)
        for path in stored.restore():
            log.info("%s: the stored copy in %s/ is fetched", path, storage.prefix)
    with lease:
        cache = (Path(sm.input.npz), Path(sm.input.meta))
        on_epoch = EpochLogs(tensorboard_log(spec, files), stored)
        try:
            execute(spec, cache, files, on_epoch=on_epoch, project=Path(sm.params.project))
        except DamagedCacheError as exc:
            raise DamagedCacheError(
                f"{exc} Rebuild it with: {rebuild_cache_command(sm.config['study'])} (finished runs are kept: they "
                "depend on the dataset's checksums, not on this file)"
            ) from None
    if stored is not None:
        stored.finish()
    else:
        run_cache.keep(Path("."), files.summary.parent)  # kept from the moment it exists: no config change loses it


run_logged(sm.log[0], main, expected=(DeviceError, RunBusyError, DatasetError, ConfigError))
skip_the_last_collection()
