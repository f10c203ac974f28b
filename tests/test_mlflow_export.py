"""The MLflow export, read back with MLflow's own client; skipped only where MLflow is not installed
(requirements.txt pins it, so CI runs these)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from synthetic_runs import KNOWN, write_study

from lrstudy.analysis.mlflow_export import export, local_store

mlflow = pytest.importorskip("mlflow")

FINALS = {"baseline": KNOWN["baseline"][:2], "lr_x5": KNOWN["lr_x5"][:2]}


def runs_of(client, study: str) -> dict:
    experiment = client.get_experiment_by_name(study)
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def test_every_run_is_exported_once_with_its_recipe_metrics_and_code(tmp_path):
    from mlflow.tracking import MlflowClient

    run_dirs = write_study(tmp_path, FINALS)
    summary = json.loads((run_dirs[2] / "summary.json").read_text())
    summary["code"] = {"commit": "c" * 40, "dirty": False, "engine_fingerprint": "e" * 16}
    (run_dirs[2] / "summary.json").write_text(json.dumps(summary))
    uri = local_store(tmp_path / "mlruns")
    first = export(run_dirs, "my_study", uri)
    client = MlflowClient(tracking_uri=uri)
    runs = runs_of(client, "my_study")
    assert sorted(runs) == ["baseline/seed0", "baseline/seed1", "lr_x5/seed0", "lr_x5/seed1"]
    run = runs["lr_x5/seed0"]
    assert run.info.status == "FINISHED" and run.info.run_id == first["lr_x5/seed0"]
    params = run.data.params
    assert params["variant"] == "lr_x5" and params["seed"] == "0" and params["lr"] == "0.1"
    assert json.loads(params["lr_windows"]) == summary["config"]["lr_windows"]
    tags = run.data.tags
    assert tags["commit"] == "c" * 40 and tags["engine_fingerprint"] == "e" * 16
    assert tags["summary.config_hash"] == summary["config_hash"]
    metrics = pd.read_csv(run_dirs[2] / "metrics.csv")
    history = client.get_metric_history(run.info.run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == list(zip(metrics["epoch"], metrics["test_acc"], strict=True))
    artifact = client.download_artifacts(run.info.run_id, "summary.json", str(tmp_path))
    assert json.loads(open(artifact).read()) == summary

    assert export(run_dirs, "my_study", uri) == first  # again: nothing new
    assert len(client.search_runs([client.get_experiment_by_name("my_study").experiment_id])) == 4


def test_a_run_trained_again_replaces_its_export(tmp_path):
    from mlflow.tracking import MlflowClient

    run_dirs = write_study(tmp_path, FINALS)
    uri = local_store(tmp_path / "mlruns")
    first = export(run_dirs, "s", uri)
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    summary["train_seconds"] += 1  # retrained: another summary.json
    (run_dirs[0] / "summary.json").write_text(json.dumps(summary))
    second = export(run_dirs, "s", uri)
    assert second["baseline/seed0"] != first["baseline/seed0"] and second["lr_x5/seed1"] == first["lr_x5/seed1"]
    runs = runs_of(MlflowClient(tracking_uri=uri), "s")
    assert len(runs) == 4 and runs["baseline/seed0"].info.run_id == second["baseline/seed0"]
