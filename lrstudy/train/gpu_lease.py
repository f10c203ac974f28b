"""A lease on one GPU for the length of a training run.

Snakemake counts GPUs (`--resources gpu=N`) but does not tell a job which one to use (snakemake issue
281), so N trainings started at once would all land on the first device. Each training therefore takes
a non-blocking `flock` on `lock_dir/gpu{id}.lock` for the first free device and narrows
`CUDA_VISIBLE_DEVICES` to it. The kernel drops a flock when its holder exits in any way, SIGKILL
included, so a crashed run never strands a device.

CUDA reads `CUDA_VISIBLE_DEVICES` once, when a process first initialises it (torch.cuda.is_available()
does), so the lease must be taken before anything in the process asks torch about CUDA. For the same
reason the number of devices, when `CUDA_VISIBLE_DEVICES` is unset, is counted by torch in a child
process (about two seconds, once per run) rather than here.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def visible_devices(visible: str | None = None) -> list[str]:
    """The devices this process may use: ids or UUIDs from `visible` (default: the environment's
    CUDA_VISIBLE_DEVICES), else 0..n-1 for the n devices torch sees."""
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [str(i) for i in range(_device_count())]
    devices = []
    for token in (t.strip() for t in visible.split(",")):
        if not token or token.startswith("-"):  # CUDA stops at an invalid entry; "-1" hides every GPU
            break
        devices.append(token)
    return devices


def _device_count() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"], capture_output=True, text=True
    )
    return int(child.stdout) if child.returncode == 0 else 0


@contextmanager
def gpu_lease(
    lock_dir: str | Path, visible: str | None = None, poll_seconds: float = 10.0, runs_per_gpu: int = 1
) -> Iterator[str | None]:
    """Hold one free device from `visible_devices(visible)` until the block ends; yields its id, with
    CUDA_VISIBLE_DEVICES set to it inside the block. Waits while every device is held by another run.
    With `runs_per_gpu` = k each device has k leases (slots), handed out across devices first, so that
    k small runs share one GPU that a single ResNet18 at batch 256 leaves mostly idle.
    Yields None, changing nothing, when no device is visible (device 'auto' then trains on the CPU)."""
    devices = visible_devices(visible)
    if not devices:
        log.info("no GPU visible: nothing to lease")
        yield None
        return
    if len(devices) == 1 and "SLURM_JOB_ID" in os.environ:
        # SLURM gave this job its GPU already. Device numbers repeat across nodes and jobs, and the
        # shared filesystem under lock_dir may not support flock, so no lock.
        with _visible(devices[0]):
            log.info("GPU %s assigned by SLURM job %s", devices[0], os.environ["SLURM_JOB_ID"])
            yield devices[0]
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    waiting_since = None
    while True:
        for slot, device in ((k, d) for k in range(runs_per_gpu) for d in devices):
            fd = _try_lock(_lock_path(lock_dir, device, slot))
            if fd is None:
                continue
            try:
                with _visible(device):
                    log.info(
                        "leased GPU %s (of %s)%s",
                        device,
                        ",".join(devices),
                        f" after waiting {time.monotonic() - waiting_since:.0f} s" if waiting_since else "",
                    )
                    yield device
            finally:
                os.ftruncate(fd, 0)  # a stale holder line would mislead whoever reads it next
                os.close(fd)  # releases the flock
            return
        if waiting_since is None:
            waiting_since = time.monotonic()
            log.info(
                "all %d GPUs are leased (%s); waiting for one to become free",
                len(devices),
                "; ".join(_holders(lock_dir, devices)),
            )
        time.sleep(poll_seconds)


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding the flock on `path`, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return None
        raise OSError(
            exc.errno,
            f"cannot lock {path} ({exc.strerror}): GPU leases need a filesystem "
            "with flock support for their lock directory",
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    return fd


def _lock_path(lock_dir: Path, device: str, slot: int = 0) -> Path:
    name = f"gpu{re.sub(r'[^A-Za-z0-9._-]', '_', device)}"  # ids may be UUIDs (MIG-.../...)
    return lock_dir / (f"{name}.lock" if slot == 0 else f"{name}.slot{slot}.lock")


def _holders(lock_dir: Path, devices: list[str]) -> list[str]:
    holders = []
    for device in devices:
        try:
            holders.append(f"GPU {device}: {_lock_path(lock_dir, device).read_text().strip() or 'held'}")
        except OSError:
            holders.append(f"GPU {device}: held")
    return holders


@contextmanager
def _visible(device: str) -> Iterator[None]:
    """CUDA_VISIBLE_DEVICES=device inside the block, the previous value after it."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    try:
        yield
    finally:
        if before is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before
