"""Collect every run's metrics.csv and summary.json into the study's three tables.

- epochs:  every epoch of every run, long form (a diverged run keeps its partial curve);
- summary: one row per run;
- stats:   one row per variant (lrstudy.analysis.stats.study_stats).

summary and stats describe each variant in the columns of lrstudy.analysis.variants.DESCRIPTION_COLUMNS (its lr
windows, every other recipe key and the dataset sizes), so that they can be filtered and plotted without
a join; summary also names the code of each run (CODE_COLUMNS).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lrstudy.analysis import adaptive, design_power
from lrstudy.analysis.stats import FIXED, reference_variant, resolution_pct, study_stats
from lrstudy.analysis.stats import STATS_COLUMNS as VARIANT_STATS_COLUMNS
from lrstudy.analysis.variants import DESCRIPTION_COLUMNS, description, per_variant
from lrstudy.atomic import atomic_path
from lrstudy.config import Stats
from lrstudy.metrics import METRIC_COLUMNS
from lrstudy.validation import read_run

EPOCH_COLUMNS = ["variant", "seed", *METRIC_COLUMNS, "diverged"]
# The code that made a run (summary.json's `code`): the git commit, whether the tree had uncommitted
# changes, and the fingerprint of the engine's source files (None where a run did not record them).
CODE_COLUMNS = {"commit": "commit", "commit_dirty": "dirty", "engine_fingerprint": "engine_fingerprint"}
SUMMARY_COLUMNS = [
    "variant",
    "seed",
    *DESCRIPTION_COLUMNS,
    "final_test_acc",
    "best_test_acc",
    "best_epoch",
    "epochs_completed",
    "diverged",
    "diverged_epoch",
    "train_seconds",
    "seconds_per_epoch",
    "device",
    "device_name",
    "config_hash",
    "dataset_md5",
    *CODE_COLUMNS,
]
STATS_COLUMNS = [*VARIANT_STATS_COLUMNS[:2], *DESCRIPTION_COLUMNS, *VARIANT_STATS_COLUMNS[2:]]


def run_tables(run_dirs: Iterable[str | Path], variants: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(epochs, summary) from run directories that each hold metrics.csv and summary.json."""
    epochs, runs = [], []
    for run_dir in map(Path, run_dirs):
        s, m = read_run(run_dir)
        # Losses of a diverged epoch may be inf; NaN keeps them out of means and plots alike.
        m = m.replace([np.inf, -np.inf], np.nan)
        m["epoch"] = m["epoch"].astype(int)
        epochs.append(m.assign(variant=s["variant"], seed=int(s["seed"]), diverged=bool(s["diverged"])))
        runs.append(
            {
                **{k: s.get(k) for k in SUMMARY_COLUMNS},
                **description(s, str(run_dir / "summary.json")),
                "seconds_per_epoch": s["train_seconds"] / max(s["epochs_completed"], 1),
                "dataset_md5": s["dataset"]["md5"],
                **{col: (s.get("code") or {}).get(key) for col, key in CODE_COLUMNS.items()},
            }
        )
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


def variant_table(
    summary: pd.DataFrame, variants: Sequence[str], settings: Stats = FIXED, seeds: Sequence[int] = ()
) -> pd.DataFrame:
    """One row per variant: its statistics (in an adaptive design, the design's verdicts), and the
    description columns after its name and reference."""
    verdicts = None
    design = adaptive.design_of(settings)
    if design is not None:
        reference, points = reference_variant(variants), adaptive.final_points(summary)
        plan = looks(summary, variants, design, seeds)
        verdicts = adaptive.design_verdicts(
            design, plan, points, variants, reference, seeds, resolution_pct(summary["test_size"])
        )
    stats = study_stats(summary, variants, settings, verdicts)
    described = per_variant(summary, variants).reset_index(names="variant")
    return stats.merge(described, on="variant", how="left")[STATS_COLUMNS]


def aggregate(
    run_dirs: Iterable[str | Path], variants: Sequence[str], settings: Stats = FIXED, seeds: Sequence[int] = ()
) -> dict[str, pd.DataFrame]:
    """The three tables; in an adaptive design (`settings.adaptive`, and the configured `seeds`, its first
    stage) the verdicts are the design's."""
    epochs, summary = run_tables(run_dirs, variants)
    return {"epochs": epochs, "summary": summary, "stats": variant_table(summary, variants, settings, seeds)}


def seed_plan(summary: pd.DataFrame, variants: Sequence[str], settings: Stats, seeds: Sequence[int]) -> pd.DataFrame:
    """The adaptive design's looks at these runs (one row per run, as summary.csv has them), with the
    power the design has at each (lrstudy.analysis.design_power)."""
    design = adaptive.design_of(settings)
    return design_power.with_power(design, looks(summary, variants, design, seeds), _resolution(summary))


def looks(summary: pd.DataFrame, variants: Sequence[str], design: adaptive.Design, seeds: Sequence[int]):
    """The adaptive design's looks at these runs: decisions, statistics and reasons."""
    points = adaptive.final_points(summary)
    return adaptive.study_plan(design, points, variants, reference_variant(variants), seeds, _resolution(summary))


def _resolution(summary: pd.DataFrame) -> float:
    return resolution_pct(summary["test_size"]) if len(summary) else 0.0


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def drop_seed_plans(folder: str | Path) -> list[Path]:
    """The tables of a fixed design are being written to `folder` (results/aggregate): the adaptive design's
    seed plans beside them (seed_plan.csv, seed_plan/stage*.csv) describe a design no longer configured, so
    they go; turning `adaptive` on again makes them again from the runs. Returns what was removed."""
    folder = Path(folder)
    stale = [p for p in [folder / "seed_plan.csv", *sorted((folder / "seed_plan").glob("stage*.csv"))] if p.exists()]
    for path in stale:
        path.unlink()
    if (folder / "seed_plan").is_dir() and not any((folder / "seed_plan").iterdir()):
        (folder / "seed_plan").rmdir()
    return stale
