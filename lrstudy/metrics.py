"""The per-epoch metrics file of a run: its columns and the values they may hold, shared by the engine
that writes it (and checks a checkpoint's rows) and the analysis that reads it. Plain Python: neither
torch for the analysis jobs nor pandas for the training jobs."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Mapping

METRIC_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"]

# column -> (lowest, highest) allowed value.
RANGES = {
    "train_loss": (0.0, math.inf),
    "train_acc": (0.0, 1.0),
    "test_loss": (0.0, math.inf),
    "test_acc": (0.0, 1.0),
    "epoch_seconds": (0.0, math.inf),
}
LOSSES = ("train_loss", "test_loss")


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


def bad_value(row: Mapping, diverged: bool = False) -> tuple[str, float, str] | None:
    """(column, value, why) of the first value of one epoch's metrics that is not finite or out of range, or
    None. The losses of the epoch a run diverged in may be nan or inf. Also checks a checkpoint's rows."""
    for col, (low, high) in RANGES.items():
        value = float(row[col])
        if col in LOSSES and diverged and not math.isfinite(value):
            continue
        if not math.isfinite(value):
            return col, value, "is not a finite number"
        if not low <= value <= high:
            within = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
            return col, value, f"is out of range (must be {within})"
    return None
