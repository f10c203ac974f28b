"""What a study's files say when the workflow starts, read before Snakemake plans any job (reads only).

Snakemake treats a deleted intermediate file as harmless when what was made from it is up to date, so a
deleted run would stay in the tables; it knows nothing of a run's recipe beyond its job's params; and a
damaged dataset cache must be named before a training job trips over it.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from lrstudy.config import ConfigError, Dataset, Recipe, parsed_recipe
from lrstudy.data import cifar10
from lrstudy.run_cache import RUNS, finished_summary
from lrstudy.studies import CACHE_META, CACHE_NPZ, rebuild_cache_command

log = logging.getLogger(__name__)

AGGREGATE_SUMMARY = Path("results/aggregate/summary.csv")


def run_name(variant: str, seed: int) -> str:
    return f"{variant}/seed{seed}"


def _listed(path: Path) -> set[tuple[str, int]]:
    try:
        with open(path, newline="") as fh:
            return {(row["variant"], int(row["seed"])) for row in csv.DictReader(fh)}
    except (OSError, KeyError, ValueError):
        return set()


def runs_in_tables(home: Path) -> set[tuple[str, int]]:
    """The runs the study's tables list: the aggregate summary and every variant's summary.csv."""
    listed = _listed(home / AGGREGATE_SUMMARY)
    for path in (home / RUNS).glob("*/summary.csv"):
        listed |= _listed(path)
    return listed


def missing_runs(home: Path, variants: Iterable[str]) -> list[str]:
    """Runs of configured variants that a table lists but whose files are gone. (A run the config asks
    for that was never made is Snakemake's business: the tables' set of inputs changed.)"""
    variants = set(variants)
    return sorted(
        run_name(v, s)
        for v, s in runs_in_tables(home)
        if v in variants and not (home / RUNS / v / f"seed{s}" / "summary.json").exists()
    )


def finished_runs(home: Path, variants: Iterable[str]) -> dict[str, dict]:
    """ "variant/seedN" -> summary.json of every finished run in place of a configured variant."""
    out = {}
    for variant in variants:
        for folder in sorted((home / RUNS / variant).glob("seed*")):
            summary = finished_summary(folder)
            if summary is not None and folder.name[4:].isdigit():
                out[run_name(variant, int(folder.name[4:]))] = summary
    return out


def made_variant_summaries(home: Path, variants: Iterable[str]) -> list[str]:
    """The variant summaries (results/runs/{variant}/summary.csv) someone made, of configured variants."""
    return [f"results/runs/{v}/summary.csv" for v in variants if (home / RUNS / v / "summary.csv").is_file()]


def why_replaced(summary: Mapping, recipe: Recipe, dataset: Dataset, meta: Mapping | None) -> tuple[bool, str | None]:
    """(whether the finished run `summary` describes is the configured run, why not). The reason is None
    where it cannot be told (the data's md5 is not configured, or the run predates the cache on disk): the
    train job then decides from the decoded data's checksum (lrstudy.run_cache). `meta` is the dataset
    cache's description when the cache is the configured data's (cache_is_current), else None."""
    configured = recipe.identity()
    recorded = summary.get("config") or {}
    try:  # the run's recipe as it names the run today (a run made before schedules were mappings included)
        recorded = parsed_recipe(recorded, "summary.json config").identity()
    except (ConfigError, KeyError, TypeError, ValueError):
        pass  # compared as written: a key that differs is named
    changed = sorted(k for k in configured.keys() | recorded.keys() if recorded.get(k) != configured.get(k))
    reasons = [f"recipe: {', '.join(changed)}"] if changed else []
    data = summary.get("dataset") or {}
    md5 = dataset.identity()["md5"]
    known = True
    if meta is not None and meta.get("sha256") and data.get("sha256") == meta["sha256"]:
        pass  # decoded from exactly the data configured now
    elif md5 is not None and str(data.get("md5", "")).lower() != md5:
        reasons.append(f"data: md5 {data.get('md5')} -> {md5}")
    elif meta is not None and meta.get("sha256"):
        reasons.append(f"data: the subsets changed ({data.get('train_size')}/{data.get('test_size')} images)")
    else:
        known = False
    if reasons:
        return False, "; ".join(reasons)
    return known, None


def read_meta(home: Path) -> dict | None:
    try:
        recorded = json.loads((home / CACHE_META).read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def cache_is_current(meta: Mapping | None, identity: dict) -> bool:
    """Whether the dataset cache described by `meta` was decoded from the data `identity` names (the archive's
    md5 and the subsets, as config.Dataset.identity() gives them). Without a configured md5 the data has no
    identity known before it is read: False."""
    if identity["md5"] is None or meta is None or "md5" not in meta:
        return False
    # A cache made before the subsets were recorded is taken at its md5: a study made with an older version
    # keeps its runs (a changed subset still reruns prepare_data and the runs, through their params).
    limits = [k for k in ("train_limit", "test_limit") if k in meta]
    return str(meta["md5"]).lower() == identity["md5"] and all(meta[k] == identity[k] for k in limits)


def dataset_sizes(meta: Mapping | None, dataset: Dataset, current: bool) -> tuple[int, int]:
    """The train and test images each run will see: the cache's (`meta`) when it is `current`, otherwise
    the official archive's, cut to the configured limits."""
    if current and meta is not None:
        try:
            return int(meta["train_size"]), int(meta["test_size"])
        except (KeyError, TypeError, ValueError):
            pass
    return (
        min(dataset.train_limit or cifar10.TRAIN_IMAGES, cifar10.TRAIN_IMAGES),
        min(dataset.test_limit or cifar10.TEST_IMAGES, cifar10.TEST_IMAGES),
    )


def warn_if_cache_damaged(home: Path, meta: Mapping | None, study: str) -> bool:
    """True (with a warning saying what to do, for this study) when the cache's size differs from the one
    recorded."""
    npz = home / CACHE_NPZ
    expected = (meta or {}).get("npz_size")
    if expected is None or not npz.exists() or npz.stat().st_size == expected:
        return False
    log.warning(
        "%s is damaged (%d bytes, %d recorded when it was made). Finished runs are kept; rebuild it with: %s",
        npz,
        npz.stat().st_size,
        expected,
        rebuild_cache_command(study),
    )
    return True
