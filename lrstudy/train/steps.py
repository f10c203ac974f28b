"""How the recipe's steps (lrstudy.train.loop.batch_steps) are launched: called as they come, or replayed from
CUDA graphs.

At batch 256 ResNet18 is too small to keep an H100 busy: most of an eager step is Python and kernel
launches. A CUDA graph replays a whole captured step as one launch. With `execution.cuda_graph` one graph
holds the whole train step (gather the batch from the device-resident data, crop, flip, normalise, forward,
loss, backward, SGD, the epoch's sums), and a second graph one evaluation batch.

A replay is only correct when it reads and writes the tensors the capture saw, so:
- each batch's indices, crop offsets and flips are copied into static buffers before the replay;
- the lr is a device tensor that the SGD kernel reads, refilled before every step: the schedule may change
  it at every step without a recapture;
- gradients, momentum buffers and the sums are allocated before the capture and never freed; the
  gradients are zeroed in place inside the step;
- a batch of another size (an epoch's remainder, as with a DataLoader's last batch) runs the same step
  eagerly on the same tensors, through the uncompiled model so that a new shape never recompiles.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Steps run before a capture, on a side stream as torch.cuda.graphs asks: cuDNN's autotuning, the
# momentum buffers and compilation happen there, never inside the captured region.
WARMUP_STEPS = 3
# Called after each train batch with (images done, images in the epoch): a CPU run's in-epoch progress.
BatchProgress = Callable[[int, int], None]
TrainStep = Callable[..., None]  # (model, idx, top, left, flip): one step on the batch at those positions
EvalStep = Callable[..., None]  # (model, x_uint8, y)


class EagerSteps:
    """Each step called from Python as it comes: the reference path, and the one used on the CPU.
    `forward` is the model, possibly compiled; evaluation runs the model itself."""

    def __init__(self, model, forward, optimizer, train: TrainStep, evaluate: EvalStep, device: torch.device):
        self.model, self.forward, self.optimizer = model, forward, optimizer
        self.train_step, self.eval_step, self.device = train, evaluate, device

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def lr(self) -> float:
        """The lr in the optimizer now: the one its last step used."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train(self, lr: float, idx, top, left, flip) -> None:
        self.set_lr(lr)
        self.train_step(self.forward, idx, top, left, flip)

    def evaluate(self, x_uint8, y) -> None:
        self.eval_step(self.model, x_uint8, y)


class GraphedSteps(EagerSteps):
    """Full batches replayed from CUDA graphs, captured once per run after WARMUP_STEPS eager steps.

    With `capture=False` (the CPU, where there are no CUDA graphs) every step runs eagerly through the
    same static buffers and tensor lr, which is how tests check this path's arithmetic."""

    def __init__(self, *args, batch_size: int, eval_batch: tuple[int, ...], capture: bool):
        super().__init__(*args)
        device = self.device
        self.capture = capture
        self.lr_tensor = torch.zeros((), device=device)
        self.idx = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.top = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.left = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.flip = torch.zeros(batch_size, dtype=torch.bool, device=device)
        self.x_eval = torch.zeros(eval_batch, dtype=torch.uint8, device=device)
        self.y_eval = torch.zeros(eval_batch[0], dtype=torch.int64, device=device)
        self.train_graph = self.eval_graph = None
        self.train_warmups = self.eval_warmups = 0

    def set_lr(self, lr: float) -> None:
        self.lr_tensor.fill_(lr)
        # Assigned every time: loading an optimizer state puts the saved float back in the group.
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_tensor

    def forget_graphs(self) -> None:
        """After the optimizer's state is replaced (a checkpoint restored), the captured tensors are stale."""
        self.train_graph = self.eval_graph = None
        self.train_warmups = self.eval_warmups = 0

    def train(self, lr: float, idx, top, left, flip) -> None:
        self.set_lr(lr)
        if idx.numel() != self.idx.numel():
            self.train_step(self.model, idx, top, left, flip)
            return
        for static, batch in ((self.idx, idx), (self.top, top), (self.left, left), (self.flip, flip)):
            static.copy_(batch, non_blocking=True)
        self.train_graph, self.train_warmups = self._run(
            self.train_graph,
            self.train_warmups,
            lambda: self.train_step(self.forward, self.idx, self.top, self.left, self.flip),
        )

    def evaluate(self, x_uint8, y) -> None:
        if y.numel() != self.y_eval.numel():
            self.eval_step(self.model, x_uint8, y)
            return
        self.x_eval.copy_(x_uint8, non_blocking=True)
        self.y_eval.copy_(y, non_blocking=True)
        self.eval_graph, self.eval_warmups = self._run(
            self.eval_graph, self.eval_warmups, lambda: self.eval_step(self.forward, self.x_eval, self.y_eval)
        )

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
