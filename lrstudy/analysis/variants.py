"""What each variant is: its description columns in the aggregate tables, and the short label beside
its name in the report's tables and the figures' legends.

The columns come from each run's own summary.json (its complete train config and the dataset's sizes),
so the tables say what was run. A window's `end` is exclusive, as in the config (`start <= epoch < end`).
A variant with several lr windows has them in order of start, joined with ';' in each window column:
window_start "50;120", window_end "100;150", window_factor "5;0.5" is x5 for epochs 50-99 and x0.5 for
epochs 120-149. A variant without a window leaves the three window columns empty. Every other recipe key
is a column of its own (step_milestones joined with ';' too).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lrstudy import config

WINDOW_COLUMNS = ["window_start", "window_end", "window_factor"]
# Every recipe key of the run's train config (lr_windows is in the window columns), so that a researcher
# filters on any of them without reading summary.json.
RECIPE_KEYS = [k for k in config.RECIPE_KEYS if k != "lr_windows"]
DATA_KEYS = ["train_size", "test_size"]  # from the run's dataset record
DESCRIPTION_COLUMNS = [*WINDOW_COLUMNS, *RECIPE_KEYS, *DATA_KEYS]
SEPARATOR = ";"

# How a recipe key reads in a label, where a variant differs from the reference in it.
_DIFFERENCE = {
    "epochs": "{} epochs",
    "batch_size": "batch {}",
    "lr": "lr {}",
    "momentum": "momentum {}",
    "nesterov": "nesterov={}",
    "weight_decay": "weight decay {}",
    "schedule": "{} schedule",
    "step_milestones": "step milestones {}",
    "step_gamma": "step gamma {}",
    "width": "width {}",
    "precision": "{} precision",
    "train_size": "{} train images",
    "test_size": "{} test images",
}


def description(summary: dict, where: str) -> dict:
    """The description columns of one run from its summary.json (`where` names the file in errors)."""
    train, dataset = summary.get("config") or {}, summary.get("dataset") or {}
    missing = [f"config.{k}" for k in RECIPE_KEYS if k not in train] + [
        f"dataset.{k}" for k in DATA_KEYS if k not in dataset
    ]
    if missing:
        raise ValueError(
            f"{where}: no {', '.join(missing)}; this file was not written by this version's "
            "train rule: rerun the run (snakemake --forcerun train)"
        )
    windows = sorted(train.get("lr_windows") or [], key=lambda w: w["start"])
    return {
        **{col: _joined([w[col.removeprefix("window_")] for w in windows]) for col in WINDOW_COLUMNS},
        **{k: _joined(train[k]) if isinstance(train[k], list) else train[k] for k in RECIPE_KEYS},
        **{k: dataset[k] for k in DATA_KEYS},
    }


def _joined(values: list) -> str | None:
    return SEPARATOR.join(f"{v:g}" for v in values) or None


def per_variant(runs: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """One row of description columns per variant (index: variant), from one row per run; every run of a
    variant must agree, or the study mixes runs of different configs."""
    rows = {}
    for v in variants:
        mine = runs.loc[runs["variant"] == v, DESCRIPTION_COLUMNS]
        for col in DESCRIPTION_COLUMNS:
            values = mine[col].dropna().astype(str).unique()
            if len(values) > 1:
                raise ValueError(
                    f"the runs of variant {v} disagree on {col} ({', '.join(values)}): some ran "
                    "with an older config; rerun them (snakemake --forcerun train)"
                )
        rows[v] = mine.iloc[0] if len(mine) else pd.Series(index=DESCRIPTION_COLUMNS, dtype=object)
    return pd.DataFrame.from_dict(rows, orient="index", columns=DESCRIPTION_COLUMNS)


def windows(row: pd.Series) -> list[tuple[int, int, float]]:
    """(start, end, factor) of each lr window in a row of description columns, as written or read back."""
    parts = [_split(row[col]) for col in WINDOW_COLUMNS]
    return [(int(s), int(e), f) for s, e, f in zip(*parts, strict=False)]


def _split(value) -> list[float]:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return []
    return [float(v) for v in str(value).split(SEPARATOR)]


def _number(x) -> str:
    if isinstance(x, bool):
        return str(x)
    return f"{x:,}" if isinstance(x, numbers.Integral) else f"{x:g}" if isinstance(x, numbers.Real) else str(x)


def epochs_text(start: int, end: int) -> str:
    """The epochs of a window [start, end): "epochs 50-99"."""
    return f"epoch {start}" if end - start == 1 else f"epochs {start}\u2013{end - 1}"


def window_text(start: int, end: int, factor: float) -> str:
    return f"x{factor:g} for {epochs_text(start, end)}"


def labels(table: pd.DataFrame, reference: str) -> dict[str, str]:
    """Variant -> what sets it apart, in a few words: its lr windows ("x5 for epochs 50-99") and every
    recipe or data value in which it differs from the reference; "base recipe" where there is neither.

    `table` has one row per variant (index: variant) with the description columns."""
    ref = table.loc[reference]
    out = {}
    for v, row in table.iterrows():
        parts = [window_text(*w) for w in windows(row)]
        parts += [
            _DIFFERENCE[k].format(_number(_plain(row[k])))
            for k in [*RECIPE_KEYS, *DATA_KEYS]
            if v != reference and not _same(row[k], ref[k])
        ]
        out[v] = ", ".join(parts) or "base recipe"
    return out


def _plain(x):
    """Numbers read back from a CSV as floats (50000.0) print as the integers they are; flags stay flags."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, numbers.Integral) or (isinstance(x, numbers.Real) and float(x).is_integer()):
        return int(x)
    return x


def _same(a, b) -> bool:
    if pd.isna(a) or pd.isna(b):
        return pd.isna(a) and pd.isna(b)
    return str(_plain(a)) == str(_plain(b))
