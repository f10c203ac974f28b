"""The MLflow export, read back with MLflow's own client as a user reads it: a fresh MlflowClient on the
tracking URI that exported.json records, with no environment switch. Skipped only where MLflow is not
installed (requirements.txt pins it, so CI runs these)."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from synthetic_runs import KNOWN, ONE_PIXEL_PNG, write_study

from lrstudy.analysis import mlflow_export
from lrstudy.analysis.mlflow_export import DONE_TAG, ExportError, Store, Study, export, study_key
from lrstudy.atomic import NoSpaceError

mlflow = pytest.importorskip("mlflow")
sqlalchemy = pytest.importorskip("sqlalchemy")

FINALS = {"baseline": KNOWN["baseline"][:2], "lr_x5": KNOWN["lr_x5"][:2]}
FINISHED_AT = "2026-01-02T03:04:05+00:00"


@pytest.fixture(autouse=True)
def no_switch(monkeypatch):
    """A user's shell: MLflow 3 reads a file store only with MLFLOW_ALLOW_FILE_STORE; ours needs none."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An empty MLflow database, made once (MLflow's migrations take seconds) and copied per store."""
    db = tmp_path_factory.mktemp("empty") / "mlflow.db"
    mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def default_store(directory: Path, empty_store: Path) -> Store:
    """The default store in `directory` (results/mlflow of a project), as the rule makes it."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_store, directory / "mlflow.db")
    return Store.of(None, directory)


def a_study(root: Path, name: str = "s", finals=FINALS, diverged=None) -> Study:
    """Synthetic runs, one of them with its end time recorded, and the report's files."""
    run_dirs = write_study(root, finals, diverged=diverged)
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    summary.update(finished_at=FINISHED_AT, code={"commit": "c" * 40, "dirty": False, "engine_fingerprint": "e" * 16})
    (run_dirs[0] / "summary.json").write_text(json.dumps(summary))
    (run_dirs[0] / "model.pt").write_bytes(b"weights")
    report = root / "report.html"
    report.write_text("<html>the report</html>")
    (root / "stats.md").write_text("| variant |\n")
    (root / "accuracy.png").write_bytes(ONE_PIXEL_PNG)
    files = [("", report), ("figures", root / "accuracy.png"), ("tables", root / "stats.md")]
    return Study(name, study_key(root / "results/mlflow/study_key"), run_dirs, files)


def client_of(exported: dict):
    return mlflow.tracking.MlflowClient(tracking_uri=exported["tracking_uri"])


def active_runs(client, experiment: str) -> dict:
    ids = [client.get_experiment_by_name(experiment).experiment_id]
    return {r.info.run_name: r for r in client.search_runs(ids)}


def artifacts(client, run_id: str, path: str | None = None) -> list[str]:
    return sorted(f.path for f in client.list_artifacts(run_id, path))


def test_a_fresh_client_reads_the_study_its_runs_times_metrics_and_artifacts(tmp_path, empty_store):
    study = a_study(tmp_path, diverged={("lr_x5", 1): 5})
    exported = export(study, default_store(tmp_path / "results/mlflow", empty_store))
    assert exported["tracking_uri"] == f"sqlite:///{tmp_path.resolve()}/results/mlflow/mlflow.db"
    client = client_of(exported)
    runs = active_runs(client, "s")
    assert sorted(runs) == ["baseline/seed0", "baseline/seed1", "lr_x5/seed0", "lr_x5/seed1", "study s"]

    parent = runs["study s"]
    assert parent.info.run_id == exported["study_run"] and parent.info.status == "FINISHED"
    assert artifacts(client, parent.info.run_id) == ["figures", "report.html", "tables"]
    assert artifacts(client, parent.info.run_id, "figures") == ["figures/accuracy.png"]
    assert artifacts(client, parent.info.run_id, "tables") == ["tables/stats.md"]
    report = client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path / "dl"))
    assert Path(report).read_text() == "<html>the report</html>"

    run = runs["baseline/seed0"]
    assert run.info.run_id == exported["runs"]["baseline/seed0"] and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    tags = run.data.tags
    assert tags["mlflow.source.git.commit"] == "c" * 40 and tags["mlflow.source.name"] == "Snakefile"
    assert tags["mlflow.user"] and tags["lrstudy.engine_fingerprint"] == "e" * 16
    assert run.data.params["variant"] == "baseline" and run.data.params["seed"] == "0"
    # Real times, from the run: it ended at finished_at and took train_seconds (12 epochs of 1.5 s).
    end_ms = round(datetime.fromisoformat(FINISHED_AT).timestamp() * 1000)
    assert (run.info.start_time, run.info.end_time) == (end_ms - 18_000, end_ms)
    metrics = pd.read_csv(study.run_dirs[0] / "metrics.csv")
    history = client.get_metric_history(run.info.run_id, "test_acc")
    assert [(m.step, m.value) for m in history] == list(zip(metrics["epoch"], metrics["test_acc"], strict=True))
    assert [m.timestamp for m in history] == [end_ms - 1500 * (12 - e) for e in metrics["epoch"]]
    summary = json.loads((study.run_dirs[0] / "summary.json").read_text())
    assert run.data.metrics["final_test_acc"] == summary["final_test_acc"]
    assert run.data.metrics["best_test_acc"] == summary["best_test_acc"]
    assert run.data.metrics["train_seconds"] == summary["train_seconds"]
    assert artifacts(client, run.info.run_id) == ["metrics.csv", "model.pt", "summary.json"]
    model = client.download_artifacts(run.info.run_id, "model.pt", str(tmp_path / "dl"))
    assert Path(model).read_bytes() == b"weights"

    diverged = runs["lr_x5/seed1"]
    assert diverged.info.status == "FAILED" and "final_test_acc" not in diverged.data.metrics
    # A run trained before finished_at was recorded: its summary.json's time.
    mtime = (study.run_dirs[1] / "summary.json").stat().st_mtime
    assert runs["baseline/seed1"].info.end_time == round(mtime * 1000)


def test_again_adds_nothing_a_retrained_run_replaces_its_export_a_removed_variant_leaves(tmp_path, empty_store):
    store = default_store(tmp_path / "results/mlflow", empty_store)
    study = a_study(tmp_path)
    first = export(study, store)
    assert export(study, store) == first
    client = client_of(first)
    assert len(active_runs(client, "s")) == 5

    summary = json.loads((study.run_dirs[0] / "summary.json").read_text())
    summary["train_seconds"] += 1  # trained again: another summary.json
    (study.run_dirs[0] / "summary.json").write_text(json.dumps(summary))
    without_lr_x5 = Study(study.name, study.key, study.run_dirs[:2], study.report)
    second = export(without_lr_x5, store)
    assert sorted(second["runs"]) == ["baseline/seed0", "baseline/seed1"]
    assert second["runs"]["baseline/seed0"] != first["runs"]["baseline/seed0"]
    assert second["runs"]["baseline/seed1"] == first["runs"]["baseline/seed1"]
    assert sorted(active_runs(client, "s")) == ["baseline/seed0", "baseline/seed1", "study s"]
    for gone in (first["runs"]["baseline/seed0"], first["runs"]["lr_x5/seed0"], first["runs"]["lr_x5/seed1"]):
        assert client.get_run(gone).info.lifecycle_stage == "deleted"


def test_a_study_of_the_same_name_from_another_checkout_is_left_alone(tmp_path, empty_store):
    store = default_store(tmp_path / "shared", empty_store)  # one server, two checkouts
    ours = export(a_study(tmp_path / "ours"), store)
    theirs = export(a_study(tmp_path / "theirs", finals={"baseline": KNOWN["baseline"][2:4]}), store)
    client = client_of(ours)
    experiment = client.get_experiment_by_name("s").experiment_id
    active = {r.info.run_id for r in client.search_runs([experiment])}
    assert {ours["study_run"], *ours["runs"].values(), theirs["study_run"], *theirs["runs"].values()} == active


def done_runs(client) -> set[str]:
    experiment = client.get_experiment_by_name("s").experiment_id
    return {
        r.info.run_name
        for r in client.search_runs([experiment])
        if DONE_TAG in r.data.tags and r.info.status in ("FINISHED", "FAILED")
    }


@pytest.mark.parametrize("failure", ["killed", "disk full"])
def test_an_export_stopped_midway_leaves_nothing_counted_as_done_and_the_next_completes(
    tmp_path, empty_store, monkeypatch, failure
):
    store = default_store(tmp_path / "results/mlflow", empty_store)
    study = a_study(tmp_path)
    real = mlflow.tracking.MlflowClient.log_artifact
    calls = []

    def stops_on_the_fifth(self, *args, **kwargs):  # the second run's second artifact
        calls.append(args)
        if len(calls) == 5:
            if failure == "killed":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "log_artifact", stops_on_the_fifth)
    expected = KeyboardInterrupt if failure == "killed" else NoSpaceError
    with pytest.raises(expected, match=None if failure == "killed" else "no space left on .*artifacts"):
        export(study, store)
    client = mlflow.tracking.MlflowClient(tracking_uri=store.uri)
    assert done_runs(client) == {"baseline/seed0"}  # the one run finished before; not the half one, nor the study
    half = active_runs(client, "s")["baseline/seed1"]
    assert half.info.status == "RUNNING" and DONE_TAG not in half.data.tags

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "log_artifact", real)
    exported = export(study, store)
    assert done_runs(client) == {*exported["runs"], "study s"}
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"


def test_a_full_disk_under_the_store_is_named(tmp_path, empty_store):
    small = tmp_path / "small_fs"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs to fill; the simulated full disk above still runs")
    try:
        store = default_store(small, empty_store)  # 1 MiB of database: half a MiB left
        study = a_study(tmp_path)
        (study.run_dirs[1] / "model.pt").write_bytes(b"0" * 1024 * 1024)
        with pytest.raises(NoSpaceError, match=f"no space left on {small}"):
            export(study, store)
        assert "baseline/seed1" not in done_runs(mlflow.tracking.MlflowClient(tracking_uri=store.uri))
    finally:
        subprocess.run(["umount", "--lazy", str(small)], check=True)


def test_the_local_store_follows_the_project_folder_when_it_moves(tmp_path, empty_store):
    old = tmp_path / "project"
    export(a_study(old), default_store(old / "results/mlflow", empty_store))
    new = tmp_path / "moved"
    old.rename(new)
    study = Study("s", study_key(new / "results/mlflow/study_key"), sorted(new.glob("results/runs/*/seed*")), [])
    exported = export(study, Store.of(None, new / "results/mlflow"))
    client = client_of(exported)
    assert client.get_experiment_by_name("s").artifact_location == str(new.resolve() / "results/mlflow/artifacts")
    for run in active_runs(client, "s").values():
        assert run.info.artifact_uri.startswith(str(new.resolve() / "results/mlflow/artifacts"))
    local = client.download_artifacts(exported["runs"]["baseline/seed0"], "summary.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text())["variant"] == "baseline"


@pytest.mark.parametrize(
    "uri, says",
    [
        ("http://127.0.0.1:9", "cannot reach the MLflow server at http://127.0.0.1:9 .*Connection refused"),
        ("file:///proc/lrstudy/mlruns", "the MLflow store file:///proc/lrstudy/mlruns .* cannot be used"),
    ],
    ids=["refused", "unwritable"],
)
def test_a_bad_tracking_uri_is_a_sentence_after_a_bounded_wait(tmp_path, uri, says):
    started = time.monotonic()
    with pytest.raises(ExportError, match=says):
        export(a_study(tmp_path), Store.of(uri, tmp_path))
    assert time.monotonic() - started < 30


def test_a_damaged_store_is_a_sentence(tmp_path):
    (tmp_path / "results/mlflow").mkdir(parents=True)
    (tmp_path / "results/mlflow/mlflow.db").write_bytes(b"not a database, half written " * 100)
    with pytest.raises(ExportError, match="mlflow.db cannot be read .file is not a database.: it is damaged"):
        export(a_study(tmp_path), Store.of(None, tmp_path / "results/mlflow"))


def test_the_study_key_is_kept(tmp_path):
    key = study_key(tmp_path / "k")
    assert len(key) == 32 and study_key(tmp_path / "k") == key != study_key(tmp_path / "other")
    assert mlflow_export.sqlite_path("sqlite:///rel/x.db") == Path("rel/x.db").resolve()
