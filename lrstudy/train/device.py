"""Where a run computes: `execution.device` resolved to a torch device, with a CPU-time estimate that keeps
`device: auto` from quietly starting a full study on a CPU, and the device's name for the records."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from pathlib import Path

import torch

from lrstudy.config import Recipe

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


def cpu_seconds(recipe: Recipe, train_size: int, test_size: int, threads: int) -> float:
    """A rough (rather optimistic) estimate of one run's training time on this CPU."""
    scale = (recipe.width / CPU_CALIBRATION_WIDTH) ** 2 * CPU_CALIBRATION_THREADS / max(threads, 1)
    return recipe.epochs * scale * (train_size / CPU_TRAIN_IMAGES_PER_S + test_size / CPU_EVAL_IMAGES_PER_S)


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
        raise DeviceError(_too_long_on_cpu(f"this run would take {_about(cpu_seconds_estimate)}", "it"))
    else:
        log.warning(
            "execution.device is 'auto' and %s: training on the CPU (estimated %s)",
            _no_cuda(),
            _about(cpu_seconds_estimate),
        )
    return torch.device("cpu")


def refuse_auto_on_cpu(device: str, estimates: Mapping[str, float]) -> None:
    """`device: auto` decided once for a whole study, before any job starts: `estimates` are the CPU times
    of the runs still to train (name -> seconds). Without CUDA, runs longer than AUTO_CPU_LIMIT_S refuse
    the study in one message, instead of each training job refusing on its own, once per run."""
    too_long = {run: s for run, s in estimates.items() if s > AUTO_CPU_LIMIT_S}
    if device != "auto" or not too_long or torch.cuda.is_available():
        return
    longest = max(too_long, key=too_long.get)
    if len(too_long) == 1:
        what, them = f"the run {longest} would take {_about(too_long[longest])}", "it"
    else:
        what, them = f"{len(too_long)} runs still to train would take up to {_about(too_long[longest])} each", "them"
    raise DeviceError(_too_long_on_cpu(what, them))


def _too_long_on_cpu(what: str, them: str) -> str:
    return (
        f"execution.device is 'auto' but {_no_cuda()}, and {what} on the CPU (more than "
        f"{AUTO_CPU_LIMIT_S / 3600:.0f} h). Check nvidia-smi (a GPU and its driver), CUDA_VISIBLE_DEVICES (empty "
        "or a wrong index hides the GPUs) and that torch is a CUDA build; or set execution.device: cpu "
        f"(lrstudy-train: --device cpu) to run {them} on the CPU anyway."
    )


def _about(seconds: float) -> str:
    return f"about {max(1, round(seconds / 60))} min" if seconds < 3600 else f"about {seconds / 3600:,.1f} h"


def _no_cuda() -> str:
    build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
    return f"PyTorch sees no CUDA device (torch {torch.__version__}, {build})"


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
