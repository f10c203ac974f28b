"""The published run's recipe on one screen, in its order: ResNet18, SGD with momentum and weight decay, every
image once per epoch with RandomCrop(32, padding=4) and a horizontal flip, the lr of each optimizer step
from the schedule (lrstudy.schedule), cross-entropy, then an evaluation on the whole test set.

Everything a step needs is passed in. How a step is launched (eagerly, or replayed from a CUDA graph) is
lrstudy.train.steps' business; checkpoints, resume and divergence are the run's (lrstudy.train.engine), the
device's choice lrstudy.train.device's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lrstudy.config import Recipe
from lrstudy.schedule import lr_at, steps_per_epoch
from lrstudy.train.augment import crop_flip, draw_epoch
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


class Sums:
    """An epoch's summed loss and correct predictions, kept on the device: nothing waits for it mid-epoch."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)

    def reset(self) -> None:
        self.loss.zero_()  # in place: a CUDA graph adds into these very tensors
        self.correct.zero_()

    def means(self, n: int) -> tuple[float, float]:
        return self.loss.item() / n, self.correct.item() / n


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


def train_step(model, optimizer, images, labels, sums: Sums, autocast_dtype: torch.dtype | None = None) -> None:
    """One SGD step on a batch at the lr in the optimizer's groups: cross-entropy, backward, update."""
    with _autocast(images.device, autocast_dtype):
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=False)  # in place: a CUDA graph replays into the same gradients
    loss.backward()
    optimizer.step()
    sums.loss += loss.detach().float() * labels.numel()
    sums.correct += (logits.detach().argmax(1) == labels).sum()


@torch.no_grad()
def eval_step(model, images, labels, sums: Sums, autocast_dtype: torch.dtype | None = None) -> None:
    with _autocast(images.device, autocast_dtype):
        logits = model(images)
    sums.loss += F.cross_entropy(logits.float(), labels, reduction="sum")
    sums.correct += (logits.argmax(1) == labels).sum()


def _autocast(device: torch.device, dtype: torch.dtype | None):
    # No weight cache: a cached low-precision copy made inside a CUDA graph's capture would be freed when
    # it ends; each weight is cast once per forward anyway.
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=False)


def batch_steps(optimizer, data: DeviceData, normalize, sums: Sums, autocast_dtype: torch.dtype | None):
    """The recipe's steps on batches named by position in the device-resident data, as lrstudy.train.steps
    calls (or captures and replays) them: train(model, idx, top, left, flip) and evaluate(model, x, y)."""

    def train(model, idx, top, left, flip) -> None:
        images = normalize(crop_flip(data.x_train[idx], top, left, flip))
        train_step(model, optimizer, images, data.y_train[idx], sums, autocast_dtype)

    def evaluate(model, x_uint8, y) -> None:
        eval_step(model, normalize(x_uint8), y, sums, autocast_dtype)

    return train, evaluate


def run_epoch(
    epoch: int,
    recipe: Recipe,
    steps: EagerSteps,
    sums: Sums,
    data: DeviceData,
    generator: torch.Generator,
    eval_batch_size: int,
    progress: BatchProgress | None = None,
) -> dict:
    """Epoch `epoch` (1-based) of a run of `recipe`: every image once, in the order and with the crops and
    flips the generator draws, the last batch the remainder (as a DataLoader's); each step at the schedule's
    lr; then the test set. Its metrics.csv row."""
    t0 = time.perf_counter()
    n, size = data.y_train.numel(), recipe.batch_size
    per_epoch, first = steps_per_epoch(n, size), (epoch - 1) * steps_per_epoch(n, size)
    order, top, left, flip = (t.to(steps.device, non_blocking=True) for t in draw_epoch(generator, n))
    steps.model.train()
    sums.reset()
    for i, start in enumerate(range(0, n, size)):
        end = start + size
        steps.train(
            lr_at(recipe, first + i, per_epoch), order[start:end], top[start:end], left[start:end], flip[start:end]
        )
        if progress is not None:
            progress(min(end, n), n)
    train_loss, train_acc = sums.means(n)
    lr_last = steps.lr()  # what the optimizer used last, not what the schedule says it should have
    steps.model.eval()
    sums.reset()
    for start in range(0, data.y_test.numel(), eval_batch_size):
        steps.evaluate(data.x_test[start : start + eval_batch_size], data.y_test[start : start + eval_batch_size])
    test_loss, test_acc = sums.means(data.y_test.numel())
    return {
        "epoch": epoch,
        "lr": lr_at(recipe, first, per_epoch),
        "lr_last": lr_last,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "epoch_seconds": time.perf_counter() - t0,
    }
