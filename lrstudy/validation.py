"""Checks of a run's files before the analysis believes them: metrics.csv and summary.json as the train rule
wrote them. A hand-edited or corrupted file is refused with its path, row and column, never averaged into a
report.

- every cell a number, the epochs 1, 2, ...;
- every value finite and in range: accuracies in [0, 1], losses and seconds >= 0 (a diverged run's last
  epoch may have a nan or inf loss: that is how it diverged);
- the lr of every epoch is the recipe's schedule (summary.json's `config`) at the epoch's first optimizer
  step, and its lr_last at the last (runs made before lr_last was recorded changed their lr once per epoch:
  their lr_last is their lr);
- summary.json agrees with metrics.csv, and metrics.csv is byte for byte what the run wrote (the sha256
  summary.json records; runs made before it was recorded are checked without it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lrstudy.config import ConfigError, parsed_recipe
from lrstudy.metrics import ADDED_COLUMNS, METRIC_COLUMNS, bad_value
from lrstudy.schedule import epoch_lrs, steps_per_epoch

# The lr column is written as repr() of the float the schedule gave: equal up to the last bits at most.
# lr_last is read back from the optimizer, which with CUDA graphs holds it in a float32 tensor (the
# float32 parameters' update rounds the lr to float32 in any case).
LR_REL_TOL = {"lr": 1e-12, "lr_last": 1e-6}


def read_run(run_dir: str | Path) -> tuple[dict, pd.DataFrame]:
    """(summary.json, metrics.csv as floats) of a run, both checked."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir / "summary.json")
    metrics = read_metrics(run_dir / "metrics.csv")
    check_digest(run_dir / "metrics.csv", summary)
    check_values(run_dir / "metrics.csv", metrics, summary)
    check_agreement(run_dir, summary, metrics)
    return summary, metrics


def check_digest(path: Path, summary: Mapping) -> None:
    recorded = summary.get("metrics_sha256")
    if recorded is None:
        return  # a run made before the digest was recorded
    actual = hashlib.sha256(path.read_bytes()).hexdigest()  # what metrics.metrics_sha256 gave for its text
    if actual != recorded:
        raise ValueError(
            f"{path} was changed after its run wrote it: its sha256 is {actual}, summary.json recorded "
            f"{recorded}. Restore it, or delete {path.parent} and train the run again."
        )


def check_values(path: Path, metrics: pd.DataFrame, summary: Mapping) -> None:
    """Finite, in range, and the recipe's lr; the first bad cell is named by row and column."""
    diverged_epoch = summary.get("diverged_epoch") if summary.get("diverged") else None
    for i, row in enumerate(metrics.to_dict("records")):
        bad = bad_value(row, diverged=i + 1 == diverged_epoch)
        if bad:
            raise _bad_cell(path, i, *bad)
    recipe = summary.get("config")
    if not isinstance(recipe, Mapping) or len(metrics) > int(recipe.get("epochs", 0)):
        raise ValueError(
            f"{path}: {len(metrics)} epochs, but the recipe in {path.parent / 'summary.json'} has "
            f"{recipe.get('epochs') if isinstance(recipe, Mapping) else 'no recipe'}"
        )
    where = path.parent / "summary.json"
    try:
        recipe = parsed_recipe(recipe, "config")
    except KeyError as exc:
        raise ValueError(
            f"{where}: no config.{exc.args[0]}; this file was not written by this version's train rule: "
            "rerun the run (snakemake --forcerun train)"
        ) from None
    except (ConfigError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: its recipe cannot be read ({exc})") from None
    steps = summary.get("steps_per_epoch") or _steps_before_recorded(summary, recipe)
    for i in range(len(metrics)):
        for column, want in zip(("lr", "lr_last"), epoch_lrs(recipe, i + 1, steps), strict=True):
            value = float(metrics[column].iloc[i])
            if not math.isclose(value, want, rel_tol=LR_REL_TOL[column], abs_tol=0.0):
                where = "first" if column == "lr" else "last"
                why = f"is not the recipe's schedule at epoch {i + 1}'s {where} step ({want!r})"
                raise _bad_cell(path, i, column, value, why)


def _steps_before_recorded(summary: Mapping, recipe) -> int:
    """Steps per epoch of a run made before summary.json recorded them: its schedule advanced once per
    epoch, so any count gives its lrs; the loader's, from the dataset's size, where it is recorded."""
    size = (summary.get("dataset") or {}).get("train_size")
    return steps_per_epoch(int(size), recipe.batch_size) if size else 1


def _bad_cell(path: Path, i: int, col: str, value: float, why: str) -> ValueError:
    return ValueError(f"{path}: row {i + 1} (line {i + 2}), column {col}: {value!r} {why}")


def read_summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def read_metrics(path: Path) -> pd.DataFrame:
    """metrics.csv as floats: every cell a number (nan and inf are: the losses of a diverged epoch), the
    epochs 1, 2, ..."""
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(METRIC_COLUMNS) - set(text.columns) - set(ADDED_COLUMNS)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    if "lr_last" not in text.columns:  # a run made before lr_last: its lr changed once per epoch
        text.insert(text.columns.get_loc("lr") + 1, "lr_last", text["lr"])
    m = text[METRIC_COLUMNS].apply(pd.to_numeric, errors="coerce")
    for col in METRIC_COLUMNS:
        bad = m[col].isna() & (text[col].str.strip().str.lower() != "nan")
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: row {row + 1} (line {row + 2}), column {col}: {text[col].iloc[row]!r} is not a number"
            )
    if m.empty or m["epoch"].tolist() != list(range(1, len(m) + 1)):
        raise ValueError(f"{path}: the epochs are {m['epoch'].tolist()}, not 1, 2, ..., one row per epoch")
    return m


def check_agreement(run_dir: Path, summary: dict, metrics: pd.DataFrame) -> None:
    """summary.json is written from the same floats as metrics.csv; where they differ, one was edited
    (or comes from another run), and the tables and the curves would tell different stories."""
    diverged_epoch = summary.get("diverged_epoch") if summary.get("diverged") else None
    finite = metrics[metrics["epoch"] != diverged_epoch]
    best = finite.loc[finite["test_acc"].idxmax()] if finite["test_acc"].notna().any() else None
    expected = {
        "epochs_completed": len(metrics),
        "final_test_acc": None if diverged_epoch is not None else float(metrics["test_acc"].iloc[-1]),
        "best_test_acc": None if best is None else float(best["test_acc"]),
        "best_epoch": None if best is None else int(best["epoch"]),
    }
    for key, want in expected.items():
        got = summary.get(key)
        if not _agree(got, want):
            raise ValueError(
                f"{run_dir / 'summary.json'} and {run_dir / 'metrics.csv'} disagree: {key} is {got!r} in "
                f"summary.json but {want!r} by metrics.csv. One of them was edited or comes from another run: "
                f"restore both, or delete {run_dir} and train the run again."
            )


def _agree(got, want) -> bool:
    if got is None or want is None:
        return got is None and want is None
    # Both are written from the same float (repr round-trips): anything beyond rounding is an edit.
    return isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - want) <= 1e-12
