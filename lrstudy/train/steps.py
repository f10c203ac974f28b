"""How an epoch's steps are computed: launched from Python kernel by kernel, or replayed from CUDA graphs.

At batch 256 ResNet18 is too small to keep an H100 busy: most of an eager step is Python and kernel
launches. A CUDA graph replays a whole captured step as one launch. With `execution.cuda_graph` the graph
holds the whole train step (gather the batch from the device-resident data, crop, flip, normalise,
forward, loss, backward, SGD, the epoch's loss and accuracy sums), and a second graph one evaluation batch.

A replay is only correct when it reads and writes the tensors the capture saw, so:
- each batch's indices, crop offsets and flips are copied into static buffers before the replay;
- the lr is a device tensor that the SGD kernel reads, refilled each epoch: a new lr needs no recapture;
- gradients, momentum buffers and the sums are allocated before the capture and never freed; the
  gradients are zeroed in place inside the step;
- autocast's weight cache is off (a cached bf16 copy would be freed when the captured region exits);
- a batch of another size (an epoch's remainder, as with a DataLoader's last batch) runs the same step
  eagerly on the same tensors, through the uncompiled model so that a new shape never recompiles.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lrstudy.train.augment import crop_flip

# Steps run before a capture, on a side stream as torch.cuda.graphs asks: cuDNN's autotuning, the
# momentum buffers and compilation happen there, never inside the captured region.
WARMUP_STEPS = 3
# Called after each train batch with (images done, images in the epoch): a CPU run's in-epoch progress.
BatchProgress = Callable[[int, int], None]


class EagerSteps:
    """Every kernel launched from Python. The reference path, and the one used on the CPU.

    Holds what a step reads and writes, given explicitly: the model (and `forward`, the model possibly
    compiled), the optimizer, the device-resident data, the normalisation and the autocast dtype (None: fp32)."""

    autocast_cache = True

    def __init__(self, model, forward, optimizer, data, normalize, autocast_dtype, device):
        self.model, self.forward, self.optimizer = model, forward, optimizer
        self.data, self.normalize, self.autocast_dtype, self.device = data, normalize, autocast_dtype, device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def reset_sums(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()

    def _autocast(self):
        enabled = self.autocast_dtype is not None
        return torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=enabled, cache_enabled=self.autocast_cache
        )

    def _zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, idx, top, left, flip, forward) -> None:
        x = self.normalize(crop_flip(self.data.x_train[idx], top, left, flip))
        y = self.data.y_train[idx]
        with self._autocast():
            logits = forward(x)
            loss = F.cross_entropy(logits, y)
        self._zero_grad()
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach().float() * y.numel()
        self.correct += (logits.detach().argmax(1) == y).sum()

    def eval_step(self, x_uint8, y, forward) -> None:
        with self._autocast():
            logits = forward(self.normalize(x_uint8))
        self.loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        self.correct += (logits.argmax(1) == y).sum()

    def train_batches(self, order, top, left, flip, batch_size: int, progress: BatchProgress | None = None) -> None:
        n = order.numel()
        for start in range(0, n, batch_size):
            end = start + batch_size
            self.train_step(order[start:end], top[start:end], left[start:end], flip[start:end], self.forward)
            if progress is not None:
                progress(min(end, n), n)

    def eval_batches(self, x_all, y_all, batch_size: int) -> None:
        for start in range(0, y_all.numel(), batch_size):
            self.eval_step(x_all[start : start + batch_size], y_all[start : start + batch_size], self.model)


class GraphedSteps(EagerSteps):
    """Full batches replayed from CUDA graphs, captured once per run after WARMUP_STEPS eager steps.

    With `capture=False` (the CPU, where there are no CUDA graphs) every step runs eagerly through the
    same static buffers, tensor lr and in-place zeroing, which is how tests check this path's arithmetic."""

    autocast_cache = False

    def __init__(self, *args, batch_size: int, eval_batch_size: int, capture: bool):
        super().__init__(*args)
        device = self.device
        self.capture = capture
        self.lr = torch.zeros((), device=device)
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.top = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.left = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.flip = torch.zeros(batch_size, dtype=torch.bool, device=device)
        self.x_eval = torch.zeros((eval_batch_size, *self.data.x_test.shape[1:]), dtype=torch.uint8, device=device)
        self.y_eval = torch.zeros(eval_batch_size, dtype=torch.int64, device=device)
        self.train_graph = self.eval_graph = None
        self.train_warmups = self.eval_warmups = 0

    def set_lr(self, lr: float) -> None:
        self.lr.fill_(lr)
        # Assigned every epoch: loading an optimizer state puts the saved float back in the group.
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def _zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=False)

    def forget_graphs(self) -> None:
        """After the optimizer's state is replaced (a checkpoint restored), the captured tensors are stale."""
        self.train_graph = self.eval_graph = None
        self.train_warmups = self.eval_warmups = 0

    def train_batches(self, order, top, left, flip, batch_size: int, progress: BatchProgress | None = None) -> None:
        n = order.numel()
        full = n - n % batch_size
        for start in range(0, full, batch_size):
            end = start + batch_size
            self.idx.copy_(order[start:end], non_blocking=True)
            self.top.copy_(top[start:end], non_blocking=True)
            self.left.copy_(left[start:end], non_blocking=True)
            self.flip.copy_(flip[start:end], non_blocking=True)
            self.train_graph, self.train_warmups = self._run(
                self.train_graph,
                self.train_warmups,
                lambda: self.train_step(self.idx, self.top, self.left, self.flip, self.forward),
            )
            if progress is not None:
                progress(end, n)
        if full < n:
            self.train_step(order[full:], top[full:], left[full:], flip[full:], self.model)

    def eval_batches(self, x_all, y_all, batch_size: int) -> None:
        n = y_all.numel()
        full = n - n % batch_size
        for start in range(0, full, batch_size):
            self.x_eval.copy_(x_all[start : start + batch_size], non_blocking=True)
            self.y_eval.copy_(y_all[start : start + batch_size], non_blocking=True)
            self.eval_graph, self.eval_warmups = self._run(
                self.eval_graph, self.eval_warmups, lambda: self.eval_step(self.x_eval, self.y_eval, self.forward)
            )
        if full < n:
            self.eval_step(x_all[full:], y_all[full:], self.model)

    def _run(self, graph, warmups: int, step) -> tuple[torch.cuda.CUDAGraph | None, int]:
        """One step on the static buffers: replayed if captured, else eagerly (capturing after the warm-up)."""
        if graph is not None:
            graph.replay()
            return graph, warmups
        if not self.capture:
            step()
            return None, warmups
        if warmups < WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                step()
            torch.cuda.current_stream().wait_stream(side)
            return None, warmups + 1
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        graph.replay()  # capturing only records: this batch is computed by the first replay
        return graph, warmups
