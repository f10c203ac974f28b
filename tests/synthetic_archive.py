"""Small archives in the official cifar-10-python.tar.gz format, for the tests.

Each class has its own colour, plus noise and a random square, so a narrow network learns it in a
few epochs while crop and flip still matter."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from lrstudy.data.cifar10 import MEMBER_DIR, NUM_CLASSES


def _images(rng: np.random.Generator, palette: np.ndarray, n: int) -> tuple[np.ndarray, list[int]]:
    labels = rng.integers(0, NUM_CLASSES, size=n)
    x = palette[labels][:, :, None, None] + rng.normal(0, 40, size=(n, 3, 32, 32))
    for i in range(n):  # a bright square somewhere: clutter the crop moves around
        r, c = rng.integers(0, 24, size=2)
        x[i, :, r : r + 8, c : c + 8] = 255
    return np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072), labels.tolist()


def write_archive(path: str | Path, *, train_per_batch: int = 100, test: int = 100, seed: int = 0) -> Path:
    """Write a learnable CIFAR-10-format archive: 5 train batches of `train_per_batch`, one test batch."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(30, 225, size=(NUM_CLASSES, 3))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, payload: bytes) -> None:
            info = tarfile.TarInfo(f"{MEMBER_DIR}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))

        batches = [(f"data_batch_{i}", train_per_batch) for i in range(1, 6)] + [("test_batch", test)]
        for name, n in batches:
            data, labels = _images(rng, palette, n)
            batch = {
                b"batch_label": name.encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
            }
            add(name, pickle.dumps(batch, protocol=2))
        add("batches.meta", pickle.dumps({b"label_names": [f"class{c}".encode() for c in range(NUM_CLASSES)]}))
    return path
