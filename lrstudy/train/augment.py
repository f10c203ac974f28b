"""Device-side augmentation: RandomCrop(32, padding=4) + RandomHorizontalFlip, then normalisation.

The crop offsets and flips are drawn by the caller (from the run's seeded generator) so that the same
seed augments identically on CPU and GPU, and so that tests can compare against torchvision with the
same offsets. Everything here is tensor indexing on the batch's device: no host round trip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
PAD = 4
SIZE = 32


def crop_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Crop each uint8 image (B, C, 32, 32) at (top, left) of its zero-padded 40x40 version, mirrored
    where `flip` is true; offsets are in 0..2*PAD as in torchvision's RandomCrop."""
    b, c = images.shape[:2]
    padded = F.pad(images, (PAD, PAD, PAD, PAD))
    ar = torch.arange(SIZE, device=images.device)
    rows = top[:, None] + ar
    cols = left[:, None] + torch.where(flip[:, None], SIZE - 1 - ar, ar)
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    ci = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


class Normalize:
    """uint8 -> (x/255 - mean) / std as one multiply-add, in the compute dtype and memory format."""

    def __init__(self, device: torch.device, dtype: torch.dtype, channels_last: bool):
        std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = -torch.tensor(MEAN, device=device).view(1, 3, 1, 1) / std
        self.dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.shift, images.float(), self.scale)
        return x.to(dtype=self.dtype, memory_format=self.memory_format)


def draw_epoch(generator: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch's randomness, on the CPU generator: image order, crop offsets and flips."""
    order = torch.randperm(n, generator=generator)
    top = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * PAD + 1, (n,), generator=generator)
    flip = torch.randint(0, 2, (n,), generator=generator).bool()
    return order, top, left, flip
