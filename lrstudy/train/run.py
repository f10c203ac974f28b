"""One complete run, from the dataset cache to its files: metrics.csv, summary.json, model.pt.

Shared by the workflow's `train` rule and the standalone `lrstudy-train` command, so both produce
the same files the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch

from lrstudy.atomic import atomic_write_json, atomic_write_text
from lrstudy.config import Execution, Recipe, run_hash
from lrstudy.data.cifar10 import load_cache, load_meta, verify_cache
from lrstudy.logs import also_appended_to
from lrstudy.metrics import metrics_csv, metrics_sha256
from lrstudy.provenance import code_record
from lrstudy.train import checkpoint
from lrstudy.train.device import DeviceError, cpu_seconds, device_name, resolve_device
from lrstudy.train.engine import EpochProgress, Trainer, progress_line
from lrstudy.train.loop import DeviceData
from lrstudy.train.steps import GraphedSteps
from lrstudy.train.tensorboard import TensorBoardLog

log = logging.getLogger(__name__)


class RunBusyError(RuntimeError):
    """Another process is training the same run."""


@contextlib.contextmanager
def run_lock(checkpoint_path: Path, trainer_log: Path | None = None) -> Iterator[None]:
    """One trainer per run: a second one (say, after a killed Snakemake whose training job lives on)
    would resume the same checkpoint and race the first. The lock dies with its holder. A refusal names
    `trainer_log`, where the holder writes."""
    lock_path = checkpoint_path.with_name(checkpoint_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            logs_at = f", logging to {trainer_log}" if trainer_log is not None else ""
            raise RunBusyError(
                f"{checkpoint_path.parent.name}/{checkpoint_path.stem} is being trained by {holder} "
                f"(lock {lock_path}{logs_at}): wait for it to finish, or stop it (kill PID) and run again; "
                "the run resumes from its last checkpoint"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def versions() -> dict:
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
    }


def oversubscribed(cpu_threads: int, job_threads: int) -> str | None:
    """A warning when a run computes with more threads than Snakemake gave its job (--cores below
    execution.cpu_threads): the count is part of the run's numbers, so it is kept, but the CPU is then
    shared by more threads than it has cores."""
    if cpu_threads <= job_threads:
        return None
    return (
        f"execution.cpu_threads is {cpu_threads} but this job has {job_threads} core"
        f"{'s' * (job_threads != 1)} (--cores): the run computes with {cpu_threads} threads, more than it was "
        f"given; set execution.cpu_threads to {job_threads} or less for new runs, or give more --cores"
    )


def execute(
    *,
    recipe: Recipe,
    execution: Execution,
    seed: int,
    variant: str,
    data_npz: Path,
    data_meta: Path,
    metrics_out: Path,
    summary_out: Path,
    model_out: Path,
    checkpoint_path: Path | None,
    project: Path | None = None,
    tensorboard_dir: Path | None = None,
    trainer_log: Path | None = None,
    resume: bool = True,
) -> dict:
    """Train (or resume) one run and write its outputs atomically; returns the summary.

    `recipe` defines the run (with `seed`); `execution` says how it is computed. With a checkpoint path
    the run holds a lock for its whole life: one run, one trainer. With `tensorboard_dir` (and
    execution.tensorboard on) TensorBoard event files are written there as the run trains. With
    `trainer_log`, the run's lines are also appended there, opened only once the lock is held: a second
    trainer that is refused never touches the first one's log (Snakemake empties a job's declared log
    before the job starts, so the trainer's own log must be another file). `resume` False: start afresh,
    dropping the checkpoint, which only the lock's holder may do."""
    lock = run_lock(checkpoint_path, trainer_log) if checkpoint_path is not None else contextlib.nullcontext()
    with lock, also_appended_to(trainer_log):
        if checkpoint_path is not None and not resume:
            checkpoint_path.unlink(missing_ok=True)
        meta = load_meta(data_meta)
        dataset = {k: meta[k] for k in ("md5", "sha256", "train_size", "test_size")}
        device = resolve_device(
            execution.device,
            cpu_seconds(recipe, dataset["train_size"], dataset["test_size"], execution.cpu_threads),
        )
        config_hash = run_hash(recipe, seed, dataset)
        log.info(
            "run %s seed %d on %s (%s), config %s, %d train / %d test images",
            variant,
            seed,
            device,
            device_name(device),
            config_hash,
            dataset["train_size"],
            dataset["test_size"],
        )
        if device.type == "cpu" and recipe.precision == "bf16":
            log.info("precision bf16 applies on CUDA only; this CPU run computes in fp32")
        cuda_only = [key for key, on in (("compile", execution.compile), ("cuda_graph", execution.cuda_graph)) if on]
        if device.type == "cpu" and cuda_only:
            names = " and ".join(f"execution.{key}" for key in cuda_only)
            log.info("%s %s on CUDA only; this CPU run is eager", names, "apply" if len(cuda_only) > 1 else "applies")
        verify_cache(data_npz, meta)
        data = DeviceData.from_arrays(load_cache(data_npz), device)
        trainer = Trainer(recipe, execution, seed, data, device, config_hash)
        name = f"{variant}/seed{seed}"
        board = (
            None
            if tensorboard_dir is None or not execution.tensorboard
            else TensorBoardLog(tensorboard_dir, recipe.as_dict(), seed)
        )

        def on_epoch(_row: dict) -> None:
            log.info(progress_line(trainer.metrics, recipe.epochs, name))
            if board is not None:
                board.update(trainer.metrics)

        try:
            result = trainer.run(
                checkpoint_path,
                on_epoch=on_epoch,
                # A GPU epoch takes seconds; a CPU one can take minutes, so it reports from inside the epoch.
                on_batch=EpochProgress(name, recipe.epochs) if device.type == "cpu" else None,
            )
            if board is not None:  # a run resumed after its last epoch trains none: its rows are written here
                board.update(result.metrics)
        except torch.OutOfMemoryError as exc:
            raise DeviceError(
                f"out of memory on {device_name(device)} (batch_size {recipe.batch_size}, eval_batch_size "
                f"{execution.eval_batch_size}, width {recipe.width}): lower those in the config, or give each "
                "run the whole GPU (check nvidia-smi for other processes; run fewer jobs at once with "
                "--resources gpu=N). The run resumes from its last checkpoint when started again."
            ) from exc
        finally:
            if board is not None:
                board.close()

        finite = [m for m in result.metrics if m["epoch"] != result.diverged_epoch]
        best = max(finite, key=lambda m: m["test_acc"], default=None)
        metrics_text = metrics_csv(result.metrics)
        summary = {
            "variant": variant,
            "seed": seed,
            "epochs": recipe.epochs,
            "epochs_completed": len(result.metrics),
            "final_test_acc": result.metrics[-1]["test_acc"] if not result.diverged else None,
            "best_test_acc": best["test_acc"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            "train_seconds": result.train_seconds,
            "diverged": result.diverged,
            "diverged_epoch": result.diverged_epoch,
            "resumed_from_epoch": result.resumed_from_epoch,
            "device": device.type,
            "device_name": device_name(device),
            "versions": versions(),
            "config": recipe.as_dict(),
            "config_hash": config_hash,
            "steps_per_epoch": trainer.steps_per_epoch,
            "metrics_sha256": metrics_sha256(metrics_text),  # the analysis refuses a metrics.csv changed since
            "dataset": dataset,
            "execution": {
                **execution.as_dict(),
                "cpu_threads_used": result.cpu_threads,
                # What the run computed with: compile and cuda_graph are ignored off CUDA.
                "compile_used": trainer.forward is not trainer.model,
                "cuda_graph_used": isinstance(trainer.steps, GraphedSteps),
            },
            "code": code_record(project or _PROJECT_ROOT),
        }
        checkpoint.save(model_out, result.model.state_dict())
        atomic_write_text(metrics_out, metrics_text)
        atomic_write_json(summary_out, summary)
        if checkpoint_path is not None:
            # The outputs now hold the run; a forced rerun (-f) must train again, not resume at the end.
            checkpoint_path.unlink(missing_ok=True)
        if result.diverged:
            log.error("run %s seed %d diverged at epoch %d", variant, seed, result.diverged_epoch)
        else:
            log.info(
                "run %s seed %d done: final test acc %.2f%%, best %.2f%% (epoch %d), %.0f s",
                variant,
                seed,
                100 * summary["final_test_acc"],
                100 * summary["best_test_acc"],
                summary["best_epoch"],
                result.train_seconds,
            )
        return summary
