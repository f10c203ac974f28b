"""The per-epoch metrics file of a run: its columns and the values they may hold, shared by the engine
that writes it (and checks a checkpoint's rows) and the analysis that reads it; and the times of a run's
epochs, which TensorBoard and MLflow record. Plain Python: neither torch for the analysis jobs nor pandas
for the training jobs."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

# lr: the schedule's lr at the epoch's first optimizer step; lr_last: the optimizer's lr at its last step.
METRIC_COLUMNS = ["epoch", "lr", "lr_last", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds"]
# Written by every run since lr_last was added; a run made before has the others only.
ADDED_COLUMNS = ["lr_last"]

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


def run_times(summary: dict, summary_path: Path, epoch_seconds: list[float]) -> tuple[int, int, list[int]]:
    """The run's start, end and each epoch's end, in ms since 1970 (as MLflow records them). The end is
    summary.json's `finished_at` (runs trained before it was recorded: the file's modification time);
    each epoch ended its later epochs' epoch_seconds before that, and the run started train_seconds before
    it (a resumed run's pause between its attempts is left out)."""
    end = summary.get("finished_at")
    end_s = datetime.fromisoformat(end).timestamp() if end else summary_path.stat().st_mtime
    later, epoch_ends = 0.0, []
    for seconds in reversed(epoch_seconds):
        epoch_ends.append(end_s - later)
        later += seconds
    start_s = end_s - max(float(summary.get("train_seconds") or 0.0), later)
    return round(start_s * 1000), round(end_s * 1000), [round(t * 1000) for t in reversed(epoch_ends)]
