"""What the per-step lr costs a CPU epoch (issue 30): lrstudy.schedule.lr_at and setting its value in the
optimizer, before every step, against the training steps themselves, on this machine.

    python tools/lr_cost.py                                   # the published recipe: width 64, batch 256
    python tools/lr_cost.py --width 8 --batch-size 128 --json # the CPU demo's size

The lr is computed and set for every step of a whole epoch (ceil(50,000 / batch) steps) of the costliest
recipe: one-cycle after a fractional warmup, updated every step, with an lr window; the best of --repeats
passes. The training step is loop.train_step on random images at the recipe's width and batch, one torch
thread as the workflow's runs have, after one untimed step; the epoch is that many steps. Both are this
process's wall time on this machine: the ratio is what the lr adds to an epoch here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrstudy.config import defaults, recipe_of  # noqa: E402
from lrstudy.schedule import lr_at, steps_per_epoch  # noqa: E402
from lrstudy.train import loop  # noqa: E402
from lrstudy.train.device import device_name  # noqa: E402
from lrstudy.train.steps import EagerSteps  # noqa: E402

TRAIN_IMAGES = 50_000


def costliest_recipe(width: int, batch_size: int):
    train = {
        **defaults()["train"],
        "width": width,
        "batch_size": batch_size,
        "schedule": {"name": "onecycle", "pct_start": 0.25},
        "warmup": {"epochs": 2.5},
        "lr_update": "step",
        "lr_windows": [{"start": 50, "end": 100, "factor": 5.0}],
    }
    return recipe_of(train, "tools/lr_cost.py")


def lr_seconds_per_epoch(recipe, steps: int, epoch: int, repeats: int) -> float:
    """Computing and setting the lr of every step of one epoch (the one holding the window), best of repeats."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr)
    setter = EagerSteps(model, model, optimizer, None, None, torch.device("cpu"))
    first = (epoch - 1) * steps
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            setter.set_lr(lr_at(recipe, first + i, steps))
        best = min(best, time.perf_counter() - t0)
    return best


def step_seconds(recipe, timed: int) -> float:
    """The mean wall time of `timed` train steps at the recipe's width and batch on the CPU, one thread."""
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    model = loop.build_model(recipe, 0, cpu)
    optimizer = loop.build_optimizer(model, recipe, cpu)
    sums = loop.Sums(cpu)
    images = torch.randn(recipe.batch_size, 3, 32, 32)
    labels = torch.randint(0, 10, (recipe.batch_size,))
    loop.train_step(model, optimizer, images, labels, sums)  # untimed: first-call allocations
    t0 = time.perf_counter()
    for _ in range(timed):
        loop.train_step(model, optimizer, images, labels, sums)
    return (time.perf_counter() - t0) / timed


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--timed-steps", type=int, default=3, help="train steps timed (after one untimed)")
    ap.add_argument("--repeats", type=int, default=20, help="passes over an epoch's lrs; the best counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    recipe = costliest_recipe(args.width, args.batch_size)
    steps = steps_per_epoch(TRAIN_IMAGES, recipe.batch_size)
    lr = lr_seconds_per_epoch(recipe, steps, epoch=60, repeats=args.repeats)
    step = step_seconds(recipe, args.timed_steps)
    result = {
        "machine": f"{device_name(torch.device('cpu'))}, {torch.get_num_threads()} torch thread",
        "width": recipe.width,
        "batch_size": recipe.batch_size,
        "steps_per_epoch": steps,
        "lr_us_per_step": 1e6 * lr / steps,
        "step_s": step,
        "epoch_s": step * steps,
        "lr_pct_of_epoch": 100 * lr / (step * steps),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(
            f"width {result['width']}, batch {result['batch_size']}, {steps} steps per epoch: the lr costs "
            f"{result['lr_us_per_step']:.1f} us per step ({1e3 * lr:.2f} ms per epoch), a train step "
            f"{step:.3f} s (an epoch {result['epoch_s']:.0f} s): {result['lr_pct_of_epoch']:.4f}% of the epoch "
            f"[{result['machine']}]"
        )
    return result


if __name__ == "__main__":
    main()
