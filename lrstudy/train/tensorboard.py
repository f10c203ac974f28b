"""TensorBoard event files written while a run trains: `tensorboard --logdir results/tensorboard` shows a
study live, one run per results/tensorboard/{variant}/seed{seed}/ (runs grouped by variant).

Per epoch: loss/train, loss/test, accuracy/train, accuracy/test (fractions, as metrics.csv), lr and
epoch_seconds, stored in double precision so that they equal metrics.csv; the recipe and seed as hparams.

A resumed run rewrites its folder from the checkpoint's metrics: the curves continue without the epochs
trained after the last checkpoint twice, and without a gap where events had not reached the disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Tag -> metrics.csv column.
TAGS = {
    "loss/train": "train_loss",
    "loss/test": "test_loss",
    "accuracy/train": "train_acc",
    "accuracy/test": "test_acc",
    "lr": "lr",
    "epoch_seconds": "epoch_seconds",
}


class TensorBoardLog:
    """The run's event files, an on_epoch object (lrstudy.train.run.EpochLog): entered, it starts the folder
    afresh; called with the metrics after each epoch, it writes the rows not yet written."""

    def __init__(self, directory: Path, recipe: dict, seed: int):
        self.directory, self.recipe, self.seed = directory, recipe, seed
        self.writer = None
        self.written = 0

    def __enter__(self) -> TensorBoardLog:
        from torch.utils.tensorboard import SummaryWriter  # imported only where TensorBoard is on
        from torch.utils.tensorboard.summary import hparams

        shutil.rmtree(self.directory, ignore_errors=True)  # a fresh start or a resume: rewritten from epoch 1
        self.writer = SummaryWriter(str(self.directory))
        self.written = 0
        # TensorBoard's hparams take numbers, strings and flags: lists (lr windows) as JSON text.
        params = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v) for k, v in self.recipe.items()}
        for summary in hparams({**params, "seed": self.seed}, {"accuracy/test": None}):
            self.writer.file_writer.add_summary(summary)
        return self

    def __call__(self, metrics: list[dict]) -> None:
        for row in metrics[self.written :]:
            for tag, column in TAGS.items():
                self.writer.add_scalar(tag, row[column], row["epoch"], new_style=True, double_precision=True)
        self.written = len(metrics)
        self.writer.flush()  # live: each epoch is on disk when its line is logged

    def __exit__(self, *exc: object) -> None:
        self.writer.close()
