"""Checks of a study's files made when the workflow starts, before Snakemake plans any job.

Snakemake treats a deleted intermediate file as harmless when what was made from it is up to date, so a
deleted run would stay in the tables and the report. And a damaged dataset cache must be named before a
training job trips over it.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from lrstudy.config import Dataset
from lrstudy.data import cifar10

log = logging.getLogger(__name__)

AGGREGATE = Path("results/aggregate")


def runs_in_aggregate() -> list[tuple[str, int]]:
    path = AGGREGATE / "summary.csv"
    if not path.exists():
        return []
    try:
        with open(path, newline="") as fh:
            return [(row["variant"], int(row["seed"])) for row in csv.DictReader(fh)]
    except (OSError, KeyError, ValueError):
        return []


def missing_runs(variants: list[str]) -> list[str]:
    """Runs of configured variants that the tables list but whose files are gone. (A run the config asks
    for that was never made is Snakemake's business: the tables' set of inputs changed.)"""
    return sorted(
        f"{v}/seed{s}"
        for v, s in set(runs_in_aggregate())
        if v in variants and not Path(f"results/runs/{v}/seed{s}/summary.json").exists()
    )


def drop_stale_aggregate(variants: list[str], made_from_tables: list[str]) -> list[str]:
    """Remove what was made from a run that has since been deleted: the study's tables and every file made
    from them (`made_from_tables`: the analysis rules' outputs), and the variant's summary (Snakemake would
    keep them: their inputs are intermediate files). This run of the workflow then retrains the run and
    rebuilds them, whatever the target. Returns the missing runs."""
    missing = missing_runs(variants)
    if missing:
        log.warning(
            "runs deleted since the tables were made: %s; they are trained again and the tables, "
            "figures and report rebuilt",
            ", ".join(missing),
        )
        stale = [Path(p) for p in made_from_tables]
        stale += [Path(f"results/runs/{run.split('/')[0]}/summary.csv") for run in missing]
        for path in stale:
            path.unlink(missing_ok=True)
    return missing


def cache_is_current(meta: str | Path, identity: dict) -> bool:
    """Whether the dataset cache described by `meta` was decoded from the data `identity` names (the archive's
    md5 and the subsets, as config.Dataset.identity() gives them). Without a configured md5 the data has no
    identity known before it is read: False."""
    if identity["md5"] is None:
        return False
    try:
        recorded = json.loads(Path(meta).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or "md5" not in recorded:
        return False
    # A cache made before the subsets were recorded is taken at its md5: a study made with an older version
    # keeps its runs (a changed subset still reruns prepare_data and the runs, through their params).
    limits = [k for k in ("train_limit", "test_limit") if k in recorded]
    return str(recorded["md5"]).lower() == identity["md5"] and all(recorded[k] == identity[k] for k in limits)


def dataset_sizes(meta: str | Path, dataset: Dataset, current: bool) -> tuple[int, int]:
    """The train and test images each run will see: the cache's (`meta`) when it is `current`, otherwise
    the official archive's, cut to the configured limits."""
    if current:
        try:
            recorded = json.loads(Path(meta).read_text())
            return int(recorded["train_size"]), int(recorded["test_size"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return (
        min(dataset.train_limit or cifar10.TRAIN_IMAGES, cifar10.TRAIN_IMAGES),
        min(dataset.test_limit or cifar10.TEST_IMAGES, cifar10.TEST_IMAGES),
    )


def warn_if_cache_damaged(npz: str | Path, meta: str | Path) -> bool:
    """True (with a warning saying what to do) when the cache's size differs from the one recorded."""
    npz, meta = Path(npz), Path(meta)
    if not (npz.exists() and meta.exists()):
        return False
    try:
        expected = json.loads(meta.read_text()).get("npz_size")
    except (OSError, ValueError):
        expected = None
    if expected is None or npz.stat().st_size == expected:
        return False
    log.warning(
        "%s is damaged (%d bytes, %d recorded when it was made). Finished runs are kept; rebuild it with: "
        "snakemake --forcerun prepare_data -- %s",
        npz,
        npz.stat().st_size,
        expected,
        npz,
    )
    return True
