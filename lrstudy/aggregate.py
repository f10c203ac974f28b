"""Collect every run's metrics.csv and summary.json into the study's three tables.

- epochs:  every epoch of every run, long form (a diverged run keeps its partial curve);
- summary: one row per run;
- stats:   one row per variant (lrstudy.stats.study_stats).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from . import adaptive
from .atomic import atomic_path
from .metrics import METRIC_COLUMNS
from .stats import reference_variant, study_stats

EPOCH_COLUMNS = ["variant", "seed", *METRIC_COLUMNS, "diverged"]
SUMMARY_COLUMNS = [
    "variant", "seed", "final_test_acc", "best_test_acc", "best_epoch", "epochs", "epochs_completed",
    "diverged", "diverged_epoch", "train_seconds", "seconds_per_epoch", "device", "device_name",
    "config_hash", "dataset_md5",
]


def run_tables(run_dirs: Iterable[str | Path], variants: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(epochs, summary) from run directories that each hold metrics.csv and summary.json."""
    epochs, runs = [], []
    for run_dir in map(Path, run_dirs):
        s = json.loads((run_dir / "summary.json").read_text())
        m = pd.read_csv(run_dir / "metrics.csv")
        missing = set(METRIC_COLUMNS) - set(m.columns)
        if missing:
            raise ValueError(f"{run_dir / 'metrics.csv'}: missing columns {sorted(missing)}")
        # Losses of a diverged epoch may be inf; NaN keeps them out of means and plots alike.
        m = m[METRIC_COLUMNS].astype(float).replace([np.inf, -np.inf], np.nan)
        m["epoch"] = m["epoch"].astype(int)
        epochs.append(m.assign(variant=s["variant"], seed=int(s["seed"]), diverged=bool(s["diverged"])))
        runs.append({
            **{k: s.get(k) for k in SUMMARY_COLUMNS},
            "seconds_per_epoch": s["train_seconds"] / max(s["epochs_completed"], 1),
            "dataset_md5": s["dataset"]["md5"],
        })
    epochs_df = _in_config_order(pd.concat(epochs, ignore_index=True)[EPOCH_COLUMNS], variants, ["epoch"])
    summary_df = _in_config_order(pd.DataFrame(runs, columns=SUMMARY_COLUMNS), variants, [])
    for col in ("final_test_acc", "best_test_acc"):
        summary_df[col] = summary_df[col].astype(float)  # null (diverged early) -> NaN
    return epochs_df, summary_df


def _in_config_order(df: pd.DataFrame, variants: Sequence[str], then: list[str]) -> pd.DataFrame:
    unknown = set(df["variant"]) - set(variants)
    if unknown:
        raise ValueError(f"runs of unconfigured variants: {sorted(unknown)} (configured: {list(variants)})")
    order = df["variant"].map({v: i for i, v in enumerate(variants)})
    return df.assign(_order=order).sort_values(["_order", "seed", *then]).drop(columns="_order").reset_index(drop=True)


def aggregate(run_dirs: Iterable[str | Path], variants: Sequence[str], design: adaptive.Design | None = None,
              seeds: Sequence[int] = ()) -> dict[str, pd.DataFrame]:
    """The three tables; with an adaptive `design` (and the configured `seeds`, its first stage) the
    verdicts are the design's."""
    epochs, summary = run_tables(run_dirs, variants)
    stats = study_stats(summary, variants)
    if design is not None:
        stats = adaptive.with_design(stats, seed_plan(summary, variants, design, seeds))
    return {"epochs": epochs, "summary": summary, "stats": stats}


def seed_plan(summary: pd.DataFrame, variants: Sequence[str], design: adaptive.Design,
              seeds: Sequence[int]) -> pd.DataFrame:
    """The adaptive design's looks at these runs (one row per run, as summary.csv has them)."""
    return adaptive.study_plan(design, adaptive.final_points(summary), variants, reference_variant(variants), seeds)


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
