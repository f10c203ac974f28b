"""One complete run, from the dataset cache to its files: metrics.csv, summary.json, model.pt.

Shared by the workflow's `train` rule and the standalone `lrstudy-train` command, so both produce
the same files the same way.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import torch

from . import checkpoint
from .atomic import atomic_write_json, atomic_write_text
from .config import config_hash
from .dataset import load_cache, load_meta
from .engine import DeviceData, DeviceError, Trainer, cpu_seconds, progress_line, resolve_device
from .metrics import metrics_csv

log = logging.getLogger(__name__)


def versions() -> dict:
    import torchvision

    return {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def execute(*, train: dict, seed: int, variant: str, data_npz: Path, data_meta: Path, metrics_out: Path,
            summary_out: Path, model_out: Path, checkpoint_path: Path | None, threads: int | None = None) -> dict:
    """Train (or resume) one run and write its outputs atomically; returns the summary."""
    if threads:
        torch.set_num_threads(threads)
    meta = load_meta(data_meta)
    dataset = {k: meta[k] for k in ("md5", "sha256", "train_size", "test_size")}
    device = resolve_device(train["device"], cpu_seconds(train, dataset["train_size"], dataset["test_size"],
                                                         torch.get_num_threads()))
    run_hash = config_hash(train, seed, dataset)
    log.info("run %s seed %d on %s (%s), config %s, %d train / %d test images", variant, seed, device,
             device_name(device), run_hash, dataset["train_size"], dataset["test_size"])
    if device.type == "cpu" and train["precision"] == "bf16":
        log.info("precision bf16 applies on CUDA only; this CPU run computes in fp32")
    data = DeviceData.from_arrays(load_cache(data_npz), device)
    trainer = Trainer(train, seed, data, device, run_hash)
    try:
        result = trainer.run(checkpoint_path, on_epoch=lambda rows, epochs: log.info(progress_line(rows, epochs)))
    except torch.OutOfMemoryError as exc:
        raise DeviceError(
            f"out of memory on {device_name(device)} (batch_size {train['batch_size']}, eval_batch_size "
            f"{train['eval_batch_size']}, width {train['width']}): lower those in the config, or give each "
            "run the whole GPU (check nvidia-smi for other processes; run fewer jobs at once with "
            "--resources gpu=N). The run resumes from its last checkpoint when started again."
        ) from exc

    finite = [m for m in result.metrics if m["epoch"] != result.diverged_epoch]
    best = max(finite, key=lambda m: m["test_acc"], default=None)
    summary = {
        "variant": variant, "seed": seed, "epochs": train["epochs"], "epochs_completed": len(result.metrics),
        "final_test_acc": result.metrics[-1]["test_acc"] if not result.diverged else None,
        "best_test_acc": best["test_acc"] if best else None, "best_epoch": best["epoch"] if best else None,
        "train_seconds": result.train_seconds, "diverged": result.diverged, "diverged_epoch": result.diverged_epoch,
        "resumed_from_epoch": result.resumed_from_epoch, "device": device.type, "device_name": device_name(device),
        "versions": versions(), "config": train, "config_hash": run_hash, "dataset": dataset,
    }
    checkpoint.save(model_out, result.model.state_dict())
    atomic_write_text(metrics_out, metrics_csv(result.metrics))
    atomic_write_json(summary_out, summary)
    if checkpoint_path is not None:
        # The outputs now hold the run; a forced rerun (-f) must train again, not resume at the end.
        checkpoint_path.unlink(missing_ok=True)
    if result.diverged:
        log.error("run %s seed %d diverged at epoch %d", variant, seed, result.diverged_epoch)
    else:
        log.info("run %s seed %d done: final test acc %.2f%%, best %.2f%% (epoch %d), %.0f s", variant, seed,
                 100 * summary["final_test_acc"], 100 * summary["best_test_acc"], summary["best_epoch"],
                 result.train_seconds)
    return summary
