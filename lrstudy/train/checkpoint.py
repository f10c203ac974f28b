"""Resumable checkpoints: everything needed to continue a run exactly where it stopped.

Written atomically (a crash mid-write leaves the previous checkpoint), loaded with weights_only=True
so that a checkpoint file can never run code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from lrstudy.atomic import atomic_path

log = logging.getLogger(__name__)

# What a checkpoint holds (lrstudy.train.engine.Trainer.state), besides the CUDA RNG state of a CUDA run.
KEYS = {"config_hash", "epoch", "metrics", "train_seconds", "model", "optimizer", "generator", "torch_rng"}


def save(path: Path, state: dict) -> None:
    """torch.save, atomically. Through a Python file object, so that a failed write (a full disk) keeps
    its OSError, which torch's own error does not mention."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)


def load_matching(path: Path, config_hash: str) -> dict | None:
    """The checkpoint at `path` if it belongs to this run's config, else None (with the reason logged)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file must not block a fresh start
        log.warning("checkpoint %s is unreadable (%s: %s); starting from epoch 1", path, type(exc).__name__, exc)
        return None
    if not isinstance(state, dict):
        log.warning(
            "checkpoint %s holds a %s, not a checkpoint's dict; starting from epoch 1", path, type(state).__name__
        )
        return None
    if state.get("config_hash") != config_hash:
        log.warning(
            "checkpoint %s was written for config %s, this run is config %s; not resuming, starting from epoch 1",
            path,
            state.get("config_hash"),
            config_hash,
        )
        return None
    if missing := sorted(KEYS - set(state)):
        log.warning("checkpoint %s lacks %s; starting from epoch 1", path, ", ".join(missing))
        return None
    return state
