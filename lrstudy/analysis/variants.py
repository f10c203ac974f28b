"""What each variant is: its description columns in the aggregate tables, and the short label beside
its name in the report's tables and the figures' legends.

The columns come from each run's own summary.json (its complete train config and the dataset's sizes),
so the tables say what was run. A window's `end` is exclusive, as in the config (`start <= epoch < end`).
A variant with several lr windows has them in order of start, joined with ';' in each window column:
window_start "50;120", window_end "100;150", window_factor "5;0.5" is x5 for epochs 50-99 and x0.5 for
epochs 120-149. A variant without a window leaves the three window columns empty. Every other recipe key
is a column of its own; the schedule's family is `schedule`, each of its parameters `schedule.<parameter>`
(empty where the family has none; milestones joined with ';', knots as epoch:factor joined with ';'), the
warmup's `warmup.epochs` and `warmup.start_factor`, and `lr_schedule` says the whole schedule in words.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lrstudy import config, schedule

WINDOW_COLUMNS = ["window_start", "window_end", "window_factor"]
# The schedule's columns: its family, every family's parameters by dotted name (as a sweep names them),
# the warmup's, when it advances, and all of it in words.
SCHEDULE_PARAMS = list(dict.fromkeys(p for family in schedule.FAMILIES.values() for p in family))
SCHEDULE_COLUMNS = [
    "schedule",
    *(f"schedule.{p}" for p in SCHEDULE_PARAMS),
    *(f"warmup.{p}" for p in schedule.WARMUP),
    "lr_update",
    "lr_schedule",
]
# Every recipe key of the run's train config (lr_windows is in the window columns), so that a researcher
# filters on any of them without reading summary.json.
RECIPE_KEYS = [
    c
    for k in config.RECIPE_KEYS
    if k not in ("lr_windows", "warmup", "lr_update")
    for c in (SCHEDULE_COLUMNS if k == "schedule" else [k])
]
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
    "lr_schedule": "{}",
    "width": "width {}",
    "precision": "{} precision",
    "train_size": "{} train images",
    "test_size": "{} test images",
}


def description(summary: dict, where: str) -> dict:
    """The description columns of one run from its summary.json (`where` names the file in errors)."""
    train, dataset = summary.get("config") or {}, summary.get("dataset") or {}
    keys = [k for k in config.RECIPE_KEYS if k not in ("warmup", "lr_update")]  # none in a run made before them
    missing = [f"config.{k}" for k in keys if k not in train] + [f"dataset.{k}" for k in DATA_KEYS if k not in dataset]
    try:
        recipe = None if missing else config.parsed_recipe(train, "config")
    except (config.ConfigError, KeyError, TypeError, ValueError) as exc:
        missing = [f"readable config ({exc})"]
    if missing:
        raise ValueError(
            f"{where}: no {', '.join(missing)}; this file was not written by this version's "
            "train rule: rerun the run (snakemake --forcerun train)"
        )
    windows = sorted(train.get("lr_windows") or [], key=lambda w: w["start"])
    plain = {k: train[k] for k in RECIPE_KEYS if k in keys and k != "schedule"}
    return {
        **{col: _joined([w[col.removeprefix("window_")] for w in windows]) for col in WINDOW_COLUMNS},
        **plain,
        **schedule_columns(recipe),
        **{k: dataset[k] for k in DATA_KEYS},
    }


def schedule_columns(recipe: config.Recipe) -> dict:
    """The SCHEDULE_COLUMNS of a recipe."""
    params = dict(recipe.schedule.params)
    warmup = recipe.warmup.as_dict() if recipe.warmup else {}
    return {
        "schedule": recipe.schedule.name,
        **{f"schedule.{p}": _cell(params.get(p)) for p in SCHEDULE_PARAMS},
        **{f"warmup.{p}": warmup.get(p) for p in schedule.WARMUP},
        "lr_update": recipe.lr_update,
        "lr_schedule": schedule.words(recipe),
    }


def recipe_of_row(row: pd.Series) -> config.Recipe:
    """The recipe a row of description columns describes, as written or read back from a CSV (where
    numbers may come back as floats or text): what draws its lr at every step."""
    name = row["schedule"]
    params = {p: _uncell(row[f"schedule.{p}"], schedule.FAMILIES[name][p].kind) for p in schedule.FAMILIES[name]}
    warmup = None if _missing(row["warmup.epochs"]) else {p: float(row[f"warmup.{p}"]) for p in schedule.WARMUP}
    train = {k: _plain(row[k]) for k in ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay")}
    return config.parsed_recipe(
        {
            **train,
            "schedule": {"name": name, **params},
            "warmup": warmup,
            "lr_update": row["lr_update"],
            "lr_windows": [{"start": s, "end": e, "factor": f} for s, e, f in windows(row)],
            "width": _plain(row["width"]),
            "precision": row["precision"],
        },
        "the description columns",
    )


def _uncell(value, kind):
    """A parameter's cell back: the inverse of _cell, also from a CSV's floats and text."""
    if _missing(value):
        return None
    if kind == "milestones":
        return [int(float(m)) for m in str(value).split(SEPARATOR)]
    if kind == "knots":
        return [[float(x) for x in knot.split(":")] for knot in str(value).split(SEPARATOR)]
    if kind == "bool":
        return value if isinstance(value, (bool, np.bool_)) else str(value) == "True"
    return value if isinstance(value, str) else _plain(value)


def _missing(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _cell(value):
    """A parameter as one cell: milestones 101;151, knots 0:0;15:1;30:0."""
    if isinstance(value, tuple):
        return SEPARATOR.join(":".join(f"{x:g}" for x in v) if isinstance(v, tuple) else f"{v:g}" for v in value)
    return value


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
    recipe or data value in which it differs from the reference (a schedule in words, "WSD: 20% sqrt
    decay, 5-epoch warmup"); "base recipe" where there is neither. Where the variants' schedules differ,
    every label says its schedule, the reference's too: it is what the study compares.

    `table` has one row per variant (index: variant) with the description columns."""
    ref = table.loc[reference]
    schedules_differ = table["lr_schedule"].nunique() > 1
    out = {}
    for v, row in table.iterrows():
        parts = [window_text(*w) for w in windows(row)]
        parts += [
            _DIFFERENCE[k].format(_number(_plain(row[k])))
            for k in [*RECIPE_KEYS, *DATA_KEYS]
            if k in _DIFFERENCE and (v != reference or k == "lr_schedule" and schedules_differ)
            if not _same(row[k], ref[k]) or k == "lr_schedule" and schedules_differ
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
