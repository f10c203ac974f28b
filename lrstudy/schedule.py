"""The learning rate of every epoch: a base schedule over the whole run, times any lr windows.

Epochs are counted one way everywhere: 1-based, epoch 1 is the first. The lr of epoch e is used for every
step of that epoch, as with a PyTorch scheduler stepped once per epoch. A window {start, end, factor}
multiplies the base lr for start <= e < end; the base schedule itself is not shifted, so after the window
the run is back on the base curve. A step milestone m is the first epoch at the lower lr, so a window
starting at m and a milestone m act on the same epoch (PyTorch's MultiStepLR counts steps from 0: its
milestone m - 1).

A leaf module: no torch, nothing from the rest of lrstudy, so that the config (lrstudy.config), the
trainer and the analysis all read the same schedule. `recipe` is an lrstudy.config.Recipe (anything with
its fields: lr, epochs, schedule, step_milestones, step_gamma, lr_windows as (start, end, factor)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import SimpleNamespace


def base_lr(
    epoch: int,
    *,
    lr: float,
    epochs: int,
    schedule: str,
    step_milestones: Sequence[int] | None = None,
    step_gamma: float = 0.1,
) -> float:
    """The base schedule's lr for a 1-based epoch."""
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch {epoch} is outside the run (1..{epochs})")
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        # CosineAnnealingLR(T_max=epochs, eta_min=0) stepped once per epoch: epoch 1 uses the full lr.
        return lr * (1.0 + math.cos(math.pi * (epoch - 1) / epochs)) / 2.0
    if schedule == "step":
        # The lr drops by `step_gamma` from each milestone epoch on (1-based, like the windows).
        milestones = default_milestones(epochs) if step_milestones is None else step_milestones
        drops = sum(1 for m in milestones if epoch >= m)
        return lr * step_gamma**drops
    raise ValueError(f"unknown schedule {schedule!r} (expected cosine, step or constant)")


def default_milestones(epochs: int) -> list[int]:
    """The first epochs after one half and three quarters of the run."""
    return [epochs // 2 + 1, (epochs * 3) // 4 + 1]


def window_factor(epoch: int, windows: Sequence[tuple[int, int, float]]) -> float:
    """The product of the factors of the (start, end, factor) windows that hold `epoch`."""
    factor = 1.0
    for start, end, f in windows:
        if start <= epoch < end:
            factor *= f
    return factor


def lr_for_epoch(epoch: int, recipe) -> float:
    """The lr actually used in `epoch` by a run of `recipe`."""
    base = base_lr(
        epoch,
        lr=recipe.lr,
        epochs=recipe.epochs,
        schedule=recipe.schedule,
        step_milestones=recipe.step_milestones,
        step_gamma=recipe.step_gamma,
    )
    return base * window_factor(epoch, recipe.lr_windows)


def of_mapping(recipe: Mapping) -> SimpleNamespace:
    """The schedule's keys of a recipe written as a mapping (summary.json's `config`), in the form
    lr_for_epoch reads; a recipe's other keys may be missing (a KeyError names a missing schedule key)."""
    return SimpleNamespace(
        lr=recipe["lr"],
        epochs=recipe["epochs"],
        schedule=recipe["schedule"],
        step_milestones=recipe["step_milestones"],
        step_gamma=recipe["step_gamma"],
        lr_windows=[(w["start"], w["end"], w["factor"]) for w in recipe["lr_windows"]],
    )


def lr_table(recipe) -> list[float]:
    """The lr of every epoch, index 0 = epoch 1."""
    return [lr_for_epoch(e, recipe) for e in range(1, recipe.epochs + 1)]
