"""Export finished runs to MLflow (`snakemake mlflow`): the study is the experiment, each run one MLflow
run named `{variant}/seed{seed}`.

params: the recipe, seed and variant; metrics: every metrics.csv column per epoch (step = epoch);
tags: the commit, engine fingerprint, config hash and summary.json's scalar fields; summary.json itself
as an artifact. Exporting again adds nothing: a run already exported with the same summary.json is left
as it is, and one whose summary.json changed (the run was trained again) replaces the old export.

MLflow is an optional extra (`pip install .[mlflow]`, mlflow-skinny); by default runs go to a local file
store in results/mlflow/mlruns, or to `mlflow.tracking_uri` when set.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lrstudy.metrics import METRIC_COLUMNS

RUN_TAG = "lrstudy.run"  # variant/seed: the identity of an export
SUMMARY_TAG = "lrstudy.summary_sha256"  # what was exported: unchanged -> nothing to do
BATCH = 1000  # MLflow's limit on metrics per log_batch call


def local_store(directory: str | Path) -> str:
    return Path(directory).resolve().as_uri()


def export(run_dirs: Iterable[str | Path], study: str, tracking_uri: str) -> dict[str, str]:
    """Export each run directory (metrics.csv + summary.json); returns `variant/seed{seed}` -> run id."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ValueError("the MLflow export needs MLflow: pip install '.[mlflow]' (or mlflow-skinny)") from None
    if tracking_uri.startswith("file:"):
        # MLflow 3 keeps the file store in maintenance mode behind this switch; it needs no database.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(study)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(study)
    exported = {}
    for run_dir in map(Path, run_dirs):
        text = (run_dir / "summary.json").read_text()
        summary = json.loads(text)
        name = f"{summary['variant']}/seed{summary['seed']}"
        digest = hashlib.sha256(text.encode()).hexdigest()
        previous = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{name}'")
        if any(r.data.tags.get(SUMMARY_TAG) == digest for r in previous):
            exported[name] = next(r.info.run_id for r in previous if r.data.tags.get(SUMMARY_TAG) == digest)
            continue
        for stale in previous:  # the run was trained again: its old export goes
            client.delete_run(stale.info.run_id)
        run = client.create_run(experiment_id, run_name=name, tags={RUN_TAG: name, SUMMARY_TAG: digest})
        run_id = run.info.run_id
        metrics = pd.read_csv(run_dir / "metrics.csv")
        points = [
            Metric(column, float(row[column]), 0, int(row["epoch"]))
            for _, row in metrics.iterrows()
            for column in METRIC_COLUMNS
            if column != "epoch" and column in metrics  # lr_last: not in a run made before it was recorded
        ]
        code = summary.get("code") or {}
        tags = {
            "commit": code.get("commit"),
            "commit_dirty": code.get("dirty"),
            "engine_fingerprint": code.get("engine_fingerprint"),
            **{f"summary.{k}": v for k, v in summary.items() if not isinstance(v, (dict, list))},
        }
        params = {**summary["config"], "seed": summary["seed"], "variant": summary["variant"]}
        client.log_batch(
            run_id,
            params=[Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        for start in range(0, len(points), BATCH):
            client.log_batch(run_id, metrics=points[start : start + BATCH])
        client.log_text(run_id, text, "summary.json")
        client.set_terminated(run_id, "FAILED" if summary.get("diverged") else "FINISHED")
        exported[name] = run_id
    return exported
