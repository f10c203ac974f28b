"""One complete run, from the dataset cache to its files: metrics.csv, summary.json, model.pt.

Shared by the workflow's `train` rule and the standalone `lrstudy-train` command, so both produce
the same files the same way. `execute` reads as its steps: the run opened under its lock (`opened`),
its trainer prepared (`prepare`), trained (`train`), its summary made (`summary_of`, pure) and its files
written (`write`). What follows the run epoch by epoch (TensorBoard) is an object passed in (`EpochLog`).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import logging
import os
import platform
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import torch

from lrstudy.atomic import atomic_write_json, atomic_write_text
from lrstudy.config import Execution, Recipe, run_hash
from lrstudy.data.cifar10 import load_cache, load_meta, verify_cache
from lrstudy.logs import also_appended_to
from lrstudy.metrics import metrics_csv, metrics_sha256
from lrstudy.provenance import code_record
from lrstudy.train import checkpoint
from lrstudy.train.device import DeviceError, cpu_seconds, device_name, resolve_device
from lrstudy.train.engine import EpochProgress, RunResult, Trainer, progress_line
from lrstudy.train.loop import DeviceData
from lrstudy.train.steps import GraphedSteps
from lrstudy.train.tensorboard import TensorBoardLog

log = logging.getLogger(__name__)

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What a run records of its data: the archive's checksums and the subsets' sizes.
DATASET_KEYS = ("md5", "sha256", "train_size", "test_size")


class RunBusyError(RuntimeError):
    """Another process is training the same run."""


@dataclass(frozen=True)
class RunSpec:
    """One run: its recipe and seed define it, `execution` says how it is computed, `variant` names it."""

    recipe: Recipe
    execution: Execution
    seed: int
    variant: str

    @property
    def name(self) -> str:
        return f"{self.variant}/seed{self.seed}"


@dataclass(frozen=True)
class RunFiles:
    """One run's files: its outputs; the checkpoint it resumes from (None: no checkpoint, no lock); the
    folder of its TensorBoard event files; the trainer's own log, kept across resumes (None: none)."""

    metrics: Path
    summary: Path
    model: Path
    checkpoint: Path | None = None
    tensorboard: Path | None = None
    trainer_log: Path | None = None

    @classmethod
    def in_folder(cls, out: Path, tensorboard: Path | None = None) -> RunFiles:
        """lrstudy-train's layout: the outputs and the checkpoint in one folder."""
        return cls(out / "metrics.csv", out / "summary.json", out / "model.pt", out / "checkpoint.pt", tensorboard)


class EpochLog(Protocol):
    """What follows a run epoch by epoch (TensorBoardLog): entered once the run's lock is held and its
    trainer is ready, called with every metrics row so far after each epoch and once more at the end (a
    run resumed after its last epoch trains none), exited when training ends, however it ends."""

    def __enter__(self) -> EpochLog: ...

    def __exit__(self, *exc: object) -> None: ...

    def __call__(self, metrics: list[dict]) -> None: ...


class EpochLogs:
    """Several EpochLogs as one (the TensorBoard writer and the run's stored state, say), the absent (None)
    left out: entered in order, each told of every epoch, exited in reverse, each seeing how training ended."""

    def __init__(self, *logs: EpochLog | None):
        self.logs = [log for log in logs if log is not None]
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> EpochLogs:
        for log in self.logs:
            self.stack.enter_context(log)
        return self

    def __exit__(self, *exc: object) -> bool | None:
        return self.stack.__exit__(*exc)

    def __call__(self, metrics: list[dict]) -> None:
        for log in self.logs:
            log(metrics)


def tensorboard_log(spec: RunSpec, files: RunFiles) -> TensorBoardLog | None:
    """The run's TensorBoard writer: where it has a folder and execution.tensorboard is on."""
    if files.tensorboard is None or not spec.execution.tensorboard:
        return None
    return TensorBoardLog(files.tensorboard, spec.recipe.as_dict(), spec.variant, spec.seed)


@dataclass(frozen=True)
class Prepared:
    """A run ready to train: its trainer, and what its summary records of the data and the device."""

    trainer: Trainer
    dataset: dict
    config_hash: str
    device_name: str


def execute(
    spec: RunSpec,
    cache: tuple[Path, Path],
    files: RunFiles,
    *,
    on_epoch: EpochLog | None = None,
    project: Path | None = None,
    resume: bool = True,
) -> dict:
    """Train (or resume) one run from the dataset cache (npz, meta) and write its files atomically;
    returns the summary.

    With a checkpoint the run holds a lock for its whole life: one run, one trainer. `on_epoch` (say,
    tensorboard_log(spec, files)) follows the run as it trains. The trainer's log is opened only once the
    lock is held: a second trainer that is refused never touches the first one's log (Snakemake empties a
    job's declared log before the job starts, so the trainer's own log must be another file). `resume`
    False: start afresh, dropping the checkpoint, which only the lock's holder may do. `project`: the
    folder whose git state the run records (default: this package's)."""
    with opened(files, resume):
        run = prepare(spec, cache)
        result = train(run, spec, files.checkpoint, on_epoch)
        metrics_text = metrics_csv(result.metrics)
        code = code_record(project or _PROJECT_ROOT)
        summary = summary_of(spec, run, result, metrics_text, versions(), code, finished_at=_now())
        write(files, result, metrics_text, summary)
        log_outcome(spec, summary)
        return summary


@contextlib.contextmanager
def opened(files: RunFiles, resume: bool) -> Iterator[None]:
    """The run held by this process: its lock (with a checkpoint), then its trainer log appended to, and
    with `resume` False its checkpoint dropped. Its TensorBoard folder goes: the event files belong to the
    run, and are written again as it trains (or not at all, with execution.tensorboard off)."""
    lock = run_lock(files.checkpoint, files.trainer_log) if files.checkpoint is not None else contextlib.nullcontext()
    with lock, also_appended_to(files.trainer_log):
        if files.checkpoint is not None and not resume:
            files.checkpoint.unlink(missing_ok=True)
        if files.tensorboard is not None:
            shutil.rmtree(files.tensorboard, ignore_errors=True)
        yield


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


def prepare(spec: RunSpec, cache: tuple[Path, Path]) -> Prepared:
    """The device chosen, the cache verified and on the device, the trainer built; says what the run is."""
    npz, meta_path = cache
    recipe, execution = spec.recipe, spec.execution
    meta = load_meta(meta_path)
    dataset = {k: meta[k] for k in DATASET_KEYS}
    device = resolve_device(
        execution.device,
        cpu_seconds(recipe, dataset["train_size"], dataset["test_size"], execution.cpu_threads),
    )
    config_hash = run_hash(recipe, spec.seed, dataset)
    name = device_name(device)
    log.info(
        "run %s seed %d on %s (%s), config %s, %d train / %d test images",
        spec.variant,
        spec.seed,
        device,
        name,
        config_hash,
        dataset["train_size"],
        dataset["test_size"],
    )
    if device.type == "cpu":
        say_what_the_cpu_ignores(spec)
    verify_cache(npz, meta)
    data = DeviceData.from_arrays(load_cache(npz), device)
    return Prepared(Trainer(recipe, execution, spec.seed, data, device, config_hash), dataset, config_hash, name)


def say_what_the_cpu_ignores(spec: RunSpec) -> None:
    """bf16, compile and CUDA graphs apply on CUDA only: a CPU run says that it ignores them."""
    if spec.recipe.precision == "bf16":
        log.info("precision bf16 applies on CUDA only; this CPU run computes in fp32")
    execution = spec.execution
    cuda_only = [key for key, on in (("compile", execution.compile), ("cuda_graph", execution.cuda_graph)) if on]
    if cuda_only:
        names = " and ".join(f"execution.{key}" for key in cuda_only)
        log.info("%s %s on CUDA only; this CPU run is eager", names, "apply" if len(cuda_only) > 1 else "applies")


def train(run: Prepared, spec: RunSpec, checkpoint_path: Path | None, on_epoch: EpochLog | None) -> RunResult:
    """The run trained to its last epoch (resumed from `checkpoint_path` when it holds this run's state),
    a line logged per epoch, `on_epoch` told of each; running out of device memory is a DeviceError."""
    trainer, recipe = run.trainer, spec.recipe

    def after_epoch(_row: dict) -> None:
        log.info(progress_line(trainer.metrics, recipe.epochs, spec.name))
        if on_epoch is not None:
            on_epoch(trainer.metrics)

    try:
        with on_epoch if on_epoch is not None else contextlib.nullcontext():
            result = trainer.run(
                checkpoint_path,
                on_epoch=after_epoch,
                # A GPU epoch takes seconds; a CPU one can take minutes, so it reports from inside the epoch.
                on_batch=EpochProgress(spec.name, recipe.epochs) if trainer.device.type == "cpu" else None,
            )
            if on_epoch is not None:  # a run resumed after its last epoch trains none: its rows are given here
                on_epoch(result.metrics)
    except torch.OutOfMemoryError as exc:
        raise DeviceError(
            f"out of memory on {run.device_name} (batch_size {recipe.batch_size}, eval_batch_size "
            f"{spec.execution.eval_batch_size}, width {recipe.width}): lower those in the config, or give each "
            "run the whole GPU (check nvidia-smi for other processes; run fewer jobs at once with "
            "--resources gpu=N). The run resumes from its last checkpoint when started again."
        ) from exc
    return result


def summary_of(
    spec: RunSpec, run: Prepared, result: RunResult, metrics_text: str, versions: dict, code: dict, finished_at: str
) -> dict:
    """summary.json: the run's outcome, what it is (recipe, seed, data), how it was computed, by which code;
    when it finished (`finished_at`: TensorBoard and MLflow date the run and its epochs from it)."""
    finite = [m for m in result.metrics if m["epoch"] != result.diverged_epoch]
    best = max(finite, key=lambda m: m["test_acc"], default=None)
    trainer = run.trainer
    return {
        "variant": spec.variant,
        "seed": spec.seed,
        "epochs": spec.recipe.epochs,
        "epochs_completed": len(result.metrics),
        "final_test_acc": result.metrics[-1]["test_acc"] if not result.diverged else None,
        "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        "train_seconds": result.train_seconds,
        "diverged": result.diverged,
        "diverged_epoch": result.diverged_epoch,
        "resumed_from_epoch": result.resumed_from_epoch,
        "finished_at": finished_at,
        "device": trainer.device.type,
        "device_name": run.device_name,
        "versions": versions,
        "config": spec.recipe.as_dict(),
        "config_hash": run.config_hash,
        "steps_per_epoch": trainer.steps_per_epoch,
        "metrics_sha256": metrics_sha256(metrics_text),  # the analysis refuses a metrics.csv changed since
        "dataset": run.dataset,
        "execution": {
            **spec.execution.as_dict(),
            "cpu_threads_used": result.cpu_threads,
            # What the run computed with: compile and cuda_graph are ignored off CUDA.
            "compile_used": trainer.forward is not trainer.model,
            "cuda_graph_used": isinstance(trainer.steps, GraphedSteps),
        },
        "code": code,
    }


def write(files: RunFiles, result: RunResult, metrics_text: str, summary: dict) -> None:
    """The run's outputs, each atomically; then its checkpoint goes: the outputs now hold the run, and a
    forced rerun (-f) must train again, not resume at the end."""
    checkpoint.save(files.model, result.model.state_dict())
    atomic_write_text(files.metrics, metrics_text)
    atomic_write_json(files.summary, summary)
    if files.checkpoint is not None:
        files.checkpoint.unlink(missing_ok=True)


def _now() -> str:
    """The time, as summary.json records it: ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def log_outcome(spec: RunSpec, summary: dict) -> None:
    if summary["diverged"]:
        log.error("run %s seed %d diverged at epoch %d", spec.variant, spec.seed, summary["diverged_epoch"])
        return
    log.info(
        "run %s seed %d done: final test acc %.2f%%, best %.2f%% (epoch %d), %.0f s",
        spec.variant,
        spec.seed,
        100 * summary["final_test_acc"],
        100 * summary["best_test_acc"],
        summary["best_epoch"],
        summary["train_seconds"],
    )


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


def skip_the_last_collection() -> None:
    """The last thing a training process does, never a function others call (the process's objects stay
    uncollected after it). The run's files are written and closed by then, and the interpreter's final
    garbage collection would walk every object torch and torch._dynamo made: 0.9 CPU-s of exit, 0.2
    without it, on this repository's 2-core AMD EPYC VM. atexit handlers (logging's flush) still run."""
    gc.freeze()
