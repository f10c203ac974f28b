"""The published run's recipe on one screen, in its order: ResNet18, SGD with momentum and weight decay,
the epoch's lr (lrstudy.schedule), every image once per epoch with RandomCrop(32, padding=4) and a
horizontal flip, cross-entropy, then an evaluation on the whole test set.

Everything a step needs is passed in. The augmentation and the loss are in the steps (lrstudy.train.steps:
one batch eagerly or replayed from CUDA graphs, behind one interface); checkpoints, resume and divergence
are the run's business (lrstudy.train.engine), the device's choice lrstudy.train.device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from lrstudy.config import Recipe
from lrstudy.schedule import lr_for_epoch
from lrstudy.train.augment import draw_epoch
from lrstudy.train.model import ResNet18
from lrstudy.train.steps import BatchProgress, EagerSteps


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


def build_model(recipe: Recipe, seed: int, device: torch.device) -> torch.nn.Module:
    """The seed's initial weights, built on the CPU so that every device starts alike."""
    torch.manual_seed(seed)
    model = ResNet18(width=recipe.width).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def build_optimizer(model: torch.nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
        **({"fused": True} if device.type == "cuda" else {"foreach": True}),
    )


def train_epoch(
    steps: EagerSteps,
    data: DeviceData,
    generator: torch.Generator,
    lr: float,
    batch_size: int,
    progress: BatchProgress | None = None,
) -> tuple[float, float]:
    """One pass over every image at `lr`, in the order and with the crops and flips the generator draws;
    the last batch is the remainder, as with a DataLoader (drop_last=False). Mean loss and accuracy."""
    steps.set_lr(lr)
    steps.model.train()
    n = data.y_train.numel()
    order, top, left, flip = (t.to(steps.device, non_blocking=True) for t in draw_epoch(generator, n))
    steps.reset_sums()
    steps.train_batches(order, top, left, flip, batch_size, progress)
    return steps.loss_sum.item() / n, steps.correct.item() / n


@torch.no_grad()
def evaluate(steps: EagerSteps, data: DeviceData, eval_batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy on the whole test set, without augmentation."""
    steps.model.eval()
    steps.reset_sums()
    steps.eval_batches(data.x_test, data.y_test, eval_batch_size)
    n = data.y_test.numel()
    return steps.loss_sum.item() / n, steps.correct.item() / n


def run_epoch(
    epoch: int,
    recipe: Recipe,
    steps: EagerSteps,
    data: DeviceData,
    generator: torch.Generator,
    eval_batch_size: int,
    progress: BatchProgress | None = None,
) -> dict:
    """Epoch `epoch` (1-based) of a run of `recipe`: its metrics.csv row."""
    lr = lr_for_epoch(epoch, recipe)
    t0 = time.perf_counter()
    train_loss, train_acc = train_epoch(steps, data, generator, lr, recipe.batch_size, progress)
    test_loss, test_acc = evaluate(steps, data, eval_batch_size)
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "epoch_seconds": time.perf_counter() - t0,
    }
