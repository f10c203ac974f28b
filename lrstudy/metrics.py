"""The per-epoch metrics file of a run: its columns, shared by the engine that writes it and the
analysis that reads it (kept free of torch so the analysis jobs need not import it)."""

from __future__ import annotations

import csv
import hashlib
import io

# lr: the schedule's lr at the epoch's first optimizer step; lr_last: the optimizer's lr at its last step.
METRIC_COLUMNS = ["epoch", "lr", "lr_last", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"]
# Written by every run since lr_last was added; a run made before has the others only.
ADDED_COLUMNS = ["lr_last"]


def metrics_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(float(row[k])) if k != "epoch" else int(row[k]) for k in METRIC_COLUMNS})
    return buf.getvalue()


def metrics_sha256(text: str) -> str:
    """The sha256 of the metrics.csv written with `text`: summary.json records it, the analysis checks it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
