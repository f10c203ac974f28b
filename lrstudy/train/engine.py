"""The training engine: one seeded run of ResNet18 on data held on the device.

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

import numpy as np
import torch

from lrstudy.metrics import METRIC_COLUMNS
from lrstudy.train import checkpoint
from lrstudy.train.augment import Normalize, draw_epoch
from lrstudy.train.model import ResNet18
from lrstudy.train.schedule import lr_for_epoch
from lrstudy.train.steps import BatchProgress, EagerSteps, GraphedSteps
from lrstudy.validation import bad_value

log = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The configured device cannot be used; the message says what to do."""


# ResNet18 at width 64 on 2 threads of an Intel Xeon VM trains about 30 images/s and evaluates about
# 170 images/s (measured for the README's "How long it takes"). A convolution's cost per image grows
# with width^2; the cost is assumed to fall linearly with threads, which is optimistic.
CPU_TRAIN_IMAGES_PER_S = 30.0
CPU_EVAL_IMAGES_PER_S = 170.0
CPU_CALIBRATION_WIDTH, CPU_CALIBRATION_THREADS = 64, 2
# `device: auto` without a GPU falls back to the CPU only for runs estimated to take less than this.
AUTO_CPU_LIMIT_S = 4 * 3600


def cpu_seconds(train: dict, train_size: int, test_size: int, threads: int) -> float:
    """A rough (rather optimistic) estimate of one run's training time on this CPU."""
    scale = (train["width"] / CPU_CALIBRATION_WIDTH) ** 2 * CPU_CALIBRATION_THREADS / max(threads, 1)
    return train["epochs"] * scale * (train_size / CPU_TRAIN_IMAGES_PER_S + test_size / CPU_EVAL_IMAGES_PER_S)


def resolve_device(name: str, cpu_seconds_estimate: float | None = None) -> torch.device:
    """The device for `execution.device` = `name`. Given the run's estimated CPU time, `auto` without CUDA
    refuses a run longer than AUTO_CPU_LIMIT_S: a full study must not start quietly on a CPU."""
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise DeviceError(
            f"execution.device is 'cuda' but {_no_cuda()}. Set execution.device to 'auto' or 'cpu', or "
            "install a CUDA build of torch and check nvidia-smi."
        )
    if cpu_seconds_estimate is None:
        log.warning("execution.device is 'auto' and %s: running on the CPU", _no_cuda())
    elif cpu_seconds_estimate > AUTO_CPU_LIMIT_S:
        raise DeviceError(
            f"execution.device is 'auto' but {_no_cuda()}, and this run would take {_about(cpu_seconds_estimate)} "
            f"on the CPU (more than {AUTO_CPU_LIMIT_S / 3600:.0f} h). Check nvidia-smi (a GPU and its driver), "
            "CUDA_VISIBLE_DEVICES (empty or a wrong index hides the GPUs) and that torch is a CUDA build; or set "
            "execution.device: cpu (lrstudy-train: --device cpu) to run it on the CPU anyway."
        )
    else:
        log.warning(
            "execution.device is 'auto' and %s: training on the CPU (estimated %s)",
            _no_cuda(),
            _about(cpu_seconds_estimate),
        )
    return torch.device("cpu")


def _about(seconds: float) -> str:
    return f"about {max(1, round(seconds / 60))} min" if seconds < 3600 else f"about {seconds / 3600:,.1f} h"


def _no_cuda() -> str:
    build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
    return f"PyTorch sees no CUDA device (torch {torch.__version__}, {build})"


@dataclass
class DeviceData:
    x_train: torch.Tensor  # uint8 (N, 3, 32, 32)
    y_train: torch.Tensor  # int64 (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], device: torch.device) -> DeviceData:
        def put(a: np.ndarray, dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

        return cls(
            put(arrays["x_train"], torch.uint8),
            put(arrays["y_train"], torch.int64),
            put(arrays["x_test"], torch.uint8),
            put(arrays["y_test"], torch.int64),
        )


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
    """One run: `train` is a resolved train config (config.yaml's `train` merged with a variant)."""

    def __init__(self, train: dict, seed: int, data: DeviceData, device: torch.device, config_hash: str):
        self.cfg, self.seed, self.data, self.device, self.config_hash = train, seed, data, device, config_hash
        # The thread count changes how CPU float sums are split, so it is fixed per run (never taken from
        # --cores) and a resumed run keeps the count it started with.
        self.cpu_threads = int(train["cpu_threads"])
        torch.set_num_threads(self.cpu_threads)
        cuda = device.type == "cuda"
        if cuda and train["deterministic"]:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif cuda:
            torch.backends.cudnn.benchmark = True
        # bf16 autocast on CPU is slow and not what the published run measured: CPU runs fp32.
        self.autocast_dtype = torch.bfloat16 if cuda and train["precision"] == "bf16" else None
        self.normalize = Normalize(device, torch.float32, channels_last=cuda)
        self.start_fresh()

    def start_fresh(self) -> None:
        """The state before epoch 1: the seed's initial weights, a new optimizer and the seed's generator."""
        train, cuda = self.cfg, self.device.type == "cuda"
        torch.manual_seed(self.seed)  # the initial weights: built on the CPU so every device starts alike
        self.model = ResNet18(width=train["width"]).to(self.device)
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=train["lr"],
            momentum=train["momentum"],
            nesterov=train["nesterov"],
            weight_decay=train["weight_decay"],
            **({"fused": True} if cuda else {"foreach": True}),
        )
        self.forward = self.model
        graphs = cuda and train["cuda_graph"]
        if cuda and train["compile"]:
            # With whole-step graphs of our own, torch.compile only fuses kernels; without them, its
            # "reduce-overhead" mode puts the model (not the backward's optimizer step) in CUDA graphs.
            self.forward = torch.compile(self.model, mode=None if graphs else "reduce-overhead")
        self.steps = (
            GraphedSteps(self, train["batch_size"], train["eval_batch_size"], capture=True)
            if graphs
            else EagerSteps(self)
        )
        self.generator = torch.Generator().manual_seed(self.seed)
        self.epoch = 0
        self.metrics: list[dict] = []
        self.seconds_before_resume = 0.0

    # -- checkpoints ------------------------------------------------------------------------------
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
        _check_metrics(state["metrics"], state["epoch"])
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
        self.metrics = list(state["metrics"])
        self.seconds_before_resume = float(state["train_seconds"])
        if "cpu_threads" in state and int(state["cpu_threads"]) != self.cpu_threads:
            log.info(
                "resuming with the %d CPU threads this run started with (execution.cpu_threads is %d)",
                int(state["cpu_threads"]),
                self.cpu_threads,
            )
            self.cpu_threads = int(state["cpu_threads"])
            torch.set_num_threads(self.cpu_threads)

    # -- one epoch --------------------------------------------------------------------------------
    def train_epoch(self, lr: float, progress: BatchProgress | None = None) -> tuple[float, float]:
        self.steps.set_lr(lr)
        self.model.train()
        n = self.data.y_train.numel()
        order, top, left, flip = (t.to(self.device, non_blocking=True) for t in draw_epoch(self.generator, n))
        self.steps.reset_sums()
        # Every image every epoch: the last batch is the remainder, as with a DataLoader (drop_last=False).
        self.steps.train_batches(order, top, left, flip, self.cfg["batch_size"], progress)
        return self.steps.loss_sum.item() / n, self.steps.correct.item() / n

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        self.model.eval()
        self.steps.reset_sums()
        self.steps.eval_batches(self.data.x_test, self.data.y_test, self.cfg["eval_batch_size"])
        n = self.data.y_test.numel()
        return self.steps.loss_sum.item() / n, self.steps.correct.item() / n

    # -- the run ----------------------------------------------------------------------------------
    def run(
        self,
        checkpoint_path: Path | None = None,
        on_epoch: Callable[[list[dict], int], None] | None = None,
        on_batch: Callable[[int, int, int], None] | None = None,
    ) -> RunResult:
        """Train until `epochs`, resuming from `checkpoint_path` when it holds this run's state. After each
        epoch `on_epoch(metrics, epochs)`; after each train batch `on_batch(epoch, images done, images)`."""
        epochs, every = self.cfg["epochs"], self.cfg["checkpoint_every"]
        if checkpoint_path is not None and (state := checkpoint.load_matching(checkpoint_path, self.config_hash)):
            try:
                self.restore(state)
                log.info("resumed from %s at the end of epoch %d of %d", checkpoint_path, self.epoch, epochs)
            except Exception as exc:  # a checkpoint that does not fit must not block a fresh start
                # load_state_dict lists every mismatched tensor: one line and the start of the list will do.
                log.warning(
                    "checkpoint %s does not fit this run (%s: %.300s); starting from epoch 1",
                    checkpoint_path,
                    type(exc).__name__,
                    " ".join(str(exc).split()),
                )
                self.start_fresh()
        resumed_from = self.epoch
        started = time.perf_counter()
        diverged_epoch = next((m["epoch"] for m in self.metrics if not _finite(m)), None)
        while self.epoch < epochs and diverged_epoch is None:
            epoch = self.epoch + 1
            lr = lr_for_epoch(epoch, self.cfg)
            t0 = time.perf_counter()
            progress = None if on_batch is None else functools.partial(on_batch, epoch)
            train_loss, train_acc = self.train_epoch(lr, progress)
            test_loss, test_acc = self.evaluate()
            row = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "epoch_seconds": time.perf_counter() - t0,
            }
            self.metrics.append(row)
            self.epoch = epoch
            if not _finite(row):
                diverged_epoch = epoch
                log.error("epoch %d: loss is %s; the run diverged and stops here", epoch, train_loss)
            elapsed = self.seconds_before_resume + time.perf_counter() - started
            if checkpoint_path is not None and (epoch % every == 0 or epoch == epochs or diverged_epoch):
                checkpoint.save(checkpoint_path, self.state(elapsed))
            if on_epoch is not None:
                on_epoch(self.metrics, epochs)
        return RunResult(
            self.metrics,
            diverged_epoch is not None,
            diverged_epoch,
            self.seconds_before_resume + time.perf_counter() - started,
            resumed_from,
            self.cpu_threads,
            self.model,
        )


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
    return (
        f"[{run}] epoch {done}/{epochs}  lr {row['lr']:.5f}  "
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
