"""One seeded run of ResNet18 on data held on the device: the recipe's loop (lrstudy.train.loop) with what
surrounds it, each in its place here: the run's state and its restore from a checkpoint (resume), when a
checkpoint is written, and divergence.

Plain Python and PyTorch, importable without Snakemake. The whole training set lives on the device as
uint8; each epoch's order, crop offsets and flips come from one CPU generator seeded by the run's seed,
so a run is reproducible, and resumable from a checkpoint at any epoch boundary to the same numbers.
Inside an epoch nothing waits for the device: losses and correct counts are summed on it and read once.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lrstudy.config import Execution, Recipe, check_recipe
from lrstudy.metrics import METRIC_COLUMNS, bad_value
from lrstudy.schedule import steps_per_epoch
from lrstudy.train import checkpoint, loop
from lrstudy.train.augment import Normalize
from lrstudy.train.loop import DeviceData
from lrstudy.train.steps import EagerSteps, GraphedSteps

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    metrics: list[dict]
    diverged: bool
    diverged_epoch: int | None
    train_seconds: float
    resumed_from_epoch: int
    cpu_threads: int
    model: torch.nn.Module = field(repr=False)


class Trainer:
    """One run: `recipe` and `seed` define it, `execution` says how it is computed."""

    def __init__(
        self,
        recipe: Recipe,
        execution: Execution,
        seed: int,
        data: DeviceData,
        device: torch.device,
        config_hash: str,
    ):
        self.recipe, self.execution, self.seed = recipe, execution, seed
        self.data, self.device, self.config_hash = data, device, config_hash
        self.steps_per_epoch = steps_per_epoch(data.y_train.numel(), recipe.batch_size)
        # What only the data's size decides (a warmup of fractional epochs, in steps): a ConfigError.
        check_recipe(recipe, "recipe", self.steps_per_epoch)
        # The thread count changes how CPU float sums are split, so it is fixed per run (never taken from
        # --cores) and a resumed run keeps the count it started with.
        self.cpu_threads = execution.cpu_threads
        torch.set_num_threads(self.cpu_threads)
        cuda = device.type == "cuda"
        if cuda and execution.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif cuda:
            torch.backends.cudnn.benchmark = True
        # bf16 autocast on CPU is slow and not what the published run measured: CPU runs fp32.
        self.autocast_dtype = torch.bfloat16 if cuda and recipe.precision == "bf16" else None
        self.normalize = Normalize(device, torch.float32, channels_last=cuda)
        self.start_fresh()

    def start_fresh(self) -> None:
        """The state before epoch 1: the seed's initial weights, a new optimizer and the seed's generator."""
        recipe, execution, cuda = self.recipe, self.execution, self.device.type == "cuda"
        self.model = loop.build_model(recipe, self.seed, self.device)
        self.optimizer = loop.build_optimizer(self.model, recipe, self.device)
        self.forward = self.model
        graphs = cuda and execution.cuda_graph
        if cuda and execution.compile:
            # With whole-step graphs of our own, torch.compile only fuses kernels; without them, its
            # "reduce-overhead" mode puts the model (not the backward's optimizer step) in CUDA graphs.
            self.forward = torch.compile(self.model, mode=None if graphs else "reduce-overhead")
        self.sums = loop.Sums(self.device)
        self.steps = self.make_steps(graphs, capture=True)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.epoch = 0
        self.metrics: list[dict] = []
        self.seconds_before_resume = 0.0

    def make_steps(self, graphs: bool, capture: bool) -> EagerSteps:
        """The recipe's steps on this run's model, optimizer, data and sums, eager or from CUDA graphs."""
        train, evaluate = loop.batch_steps(self.optimizer, self.data, self.normalize, self.sums, self.autocast_dtype)
        parts = (self.model, self.forward, self.optimizer, train, evaluate, self.device)
        if not graphs:
            return EagerSteps(*parts)
        eval_batch = (self.execution.eval_batch_size, *self.data.x_test.shape[1:])
        return GraphedSteps(*parts, batch_size=self.recipe.batch_size, eval_batch=eval_batch, capture=capture)

    # -- checkpoints and resume -------------------------------------------------------------------
    def state(self, train_seconds: float) -> dict:
        state = {
            "config_hash": self.config_hash,
            "epoch": self.epoch,
            "metrics": self.metrics,
            "train_seconds": train_seconds,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cpu_threads": self.cpu_threads,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state()
        return state

    def restore(self, state: dict) -> None:
        """Continue from `state`; raises (KeyError, TypeError, ValueError, RuntimeError) when it does not fit
        this run, possibly after changing part of the trainer: start_fresh() then gives a clean start."""
        metrics = [_with_lr_last(m) for m in state["metrics"]] if isinstance(state["metrics"], list) else None
        _check_metrics(metrics, state["epoch"])
        _check_threads(state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if isinstance(self.steps, GraphedSteps):
            self.steps.forget_graphs()
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"])
        self.epoch = int(state["epoch"])
        self.metrics = metrics
        self.seconds_before_resume = float(state["train_seconds"])
        if "cpu_threads" in state and int(state["cpu_threads"]) != self.cpu_threads:
            log.info(
                "resuming with the %d CPU threads this run started with (execution.cpu_threads is %d)",
                int(state["cpu_threads"]),
                self.cpu_threads,
            )
            self.cpu_threads = int(state["cpu_threads"])
            torch.set_num_threads(self.cpu_threads)

    def resume(self, checkpoint_path: Path) -> None:
        """Continue from the checkpoint at `checkpoint_path` when it holds this run's state; else start fresh."""
        state = checkpoint.load_matching(checkpoint_path, self.config_hash)
        if not state:
            return
        try:
            self.restore(state)
            log.info("resumed from %s at the end of epoch %d of %d", checkpoint_path, self.epoch, self.recipe.epochs)
        except Exception as exc:  # a checkpoint that does not fit must not block a fresh start
            # load_state_dict lists every mismatched tensor: one line and the start of the list will do.
            log.warning(
                "checkpoint %s does not fit this run (%s: %.300s); starting from epoch 1",
                checkpoint_path,
                type(exc).__name__,
                " ".join(str(exc).split()),
            )
            self.start_fresh()

    def checkpoint_due(self, diverged: bool) -> bool:
        """After every execution.checkpoint_every epochs, the last epoch, and the epoch a run diverged."""
        return self.epoch % self.execution.checkpoint_every == 0 or self.epoch == self.recipe.epochs or diverged

    # -- the run ----------------------------------------------------------------------------------
    def run(
        self,
        checkpoint_path: Path | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        on_batch: Callable[[int, int, int], None] | None = None,
    ) -> RunResult:
        """Train until the recipe's last epoch, resuming from `checkpoint_path` when it holds this run's state.
        The hooks: `on_epoch(row)` after each epoch (its metrics.csv row; `self.metrics` holds every row so
        far), once its checkpoint is written; `on_batch(epoch, images done, images)` after each train batch."""
        if checkpoint_path is not None:
            self.resume(checkpoint_path)
        resumed_from = self.epoch
        started = time.perf_counter()
        diverged_epoch = next((m["epoch"] for m in self.metrics if not _finite(m)), None)
        while self.epoch < self.recipe.epochs and diverged_epoch is None:
            epoch = self.epoch + 1
            progress = None if on_batch is None else functools.partial(on_batch, epoch)
            row = loop.run_epoch(
                epoch,
                self.recipe,
                self.steps,
                self.sums,
                self.data,
                self.generator,
                self.execution.eval_batch_size,
                progress,
            )
            self.metrics.append(row)
            self.epoch = row["epoch"]
            if not _finite(row):
                diverged_epoch = self.epoch
                log.error("epoch %d: loss is %s; the run diverged and stops here", self.epoch, row["train_loss"])
            elapsed = self.seconds_before_resume + time.perf_counter() - started
            if checkpoint_path is not None and self.checkpoint_due(diverged_epoch is not None):
                checkpoint.save(checkpoint_path, self.state(elapsed))
            if on_epoch is not None:
                on_epoch(row)
        return RunResult(
            self.metrics,
            diverged_epoch is not None,
            diverged_epoch,
            self.seconds_before_resume + time.perf_counter() - started,
            resumed_from,
            self.cpu_threads,
            self.model,
        )


def _with_lr_last(row):
    """A checkpoint's row; one written before lr_last was recorded comes from a run whose lr changed once
    per epoch, so that its last step's lr was its lr."""
    return {**row, "lr_last": row["lr"]} if isinstance(row, dict) and "lr" in row and "lr_last" not in row else row


def _check_metrics(metrics, epoch) -> None:
    """A checkpoint's metrics: one row per epoch done, 1..epoch, each with every metric column."""
    if not isinstance(metrics, list) or len(metrics) != epoch:
        raise ValueError(f"its metrics are not a list of {epoch} epochs")
    for n, row in enumerate(metrics, 1):
        if not isinstance(row, dict) or set(row) != set(METRIC_COLUMNS) or row["epoch"] != n:
            raise ValueError(f"its metrics row {n} is not epoch {n} with the columns {METRIC_COLUMNS}")
        # The values as metrics.csv must have them (only a diverged last epoch may have a nan/inf loss).
        bad = bad_value(row, diverged=n == len(metrics) and not _finite(row))
        if bad:
            column, value, why = bad
            raise ValueError(f"its metrics row {n}, column {column}: {value!r} {why}")


def _check_threads(state: dict) -> None:
    """A checkpoint's CPU thread count is used to resume (it decides the float sums): not more than this
    machine can run, nor fewer than one."""
    if "cpu_threads" not in state:
        return
    threads, available = int(state["cpu_threads"]), len(os.sched_getaffinity(0))
    if not 1 <= threads <= available:
        raise ValueError(f"it records {threads} CPU threads; this machine runs 1 to {available}")


def _finite(row: dict) -> bool:
    return math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])


def progress_line(metrics: list[dict], epochs: int, run: str) -> str:
    """One line per epoch, named by its run (several runs may share a log stream): losses, accuracies, lr,
    time, and an ETA from the recent epochs (the first epochs of a run include warm-up such as
    compilation)."""
    row = metrics[-1]
    done = row["epoch"]
    recent = [m["epoch_seconds"] for m in metrics[-10:]]
    eta = sum(recent) / len(recent) * (epochs - done)
    lr = f"{row['lr']:.5f}" if row["lr_last"] == row["lr"] else f"{row['lr']:.5f}-{row['lr_last']:.5f}"
    return (
        f"[{run}] epoch {done}/{epochs}  lr {lr}  "
        f"train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:6.2f}%  "
        f"test loss {row['test_loss']:.4f} acc {100 * row['test_acc']:6.2f}%  "
        f"{row['epoch_seconds']:.2f} s  ETA {_hms(eta)}"
    )


class EpochProgress:
    """A line from inside an epoch at most every `every` seconds (none for an epoch shorter than that):
    `[lr_x5/seed2] epoch 37/200: 12,800/50,000 images, 45 s, about 0:02:10 left in this epoch`."""

    every = 30.0  # seconds between lines: a modest rate beside one line per epoch
    clock = staticmethod(time.monotonic)

    def __init__(self, run: str, epochs: int):
        self.run, self.epochs = run, epochs
        self.epoch, self.started, self.last = 0, 0.0, 0.0

    def __call__(self, epoch: int, done: int, total: int) -> None:
        now = self.clock()
        if epoch != self.epoch:  # the first batch of an epoch: its clock starts when that batch is done
            self.epoch, self.started, self.last = epoch, now, now
        if now - self.last < self.every or done >= total:
            return
        self.last = now
        elapsed = now - self.started
        log.info(
            "[%s] epoch %d/%d: %s/%s images, %.0f s, about %s left in this epoch",
            self.run,
            epoch,
            self.epochs,
            f"{done:,}",
            f"{total:,}",
            elapsed,
            _hms(elapsed * (total - done) / done),
        )


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
