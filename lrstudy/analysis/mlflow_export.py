"""Export a study to MLflow (`snakemake mlflow`), for reading with MLflow's own client and UI.

The study is an experiment named after it. In it, one parent run `study <name>` carries the report
(report.html, the figures, stats.md/.tex) and has a child run `{variant}/seed{seed}` per run of the study:
the recipe, seed and variant as params; every metrics.csv column per epoch with the time the epoch ended;
final/best test accuracy and train seconds as metrics; metrics.csv, summary.json and model.pt as artifacts;
MLflow's standard tags (git commit, source, user). A diverged run ends FAILED.

Transactional: a run counts as exported only once its last step (the DONE_TAG, set after everything else)
is written; anything else found in the store, a run half exported by a killed or failed export, is deleted
and exported again. Runs belong to *this* study by its key (STUDY_TAG, a random id kept in
results/mlflow/study_key), not by the study's name, so a study of the same name exported from another
checkout to the same server is never touched. Exporting again adds nothing; a run trained again, or one no
longer in the study (a removed variant), has its old export deleted (MLflow's soft delete: `mlflow gc`
removes it for good).

The default store is SQLite (results/mlflow/mlflow.db, artifacts in results/mlflow/artifacts), which
MLflow 3 reads as it is. It records artifact folders as absolute paths: after the project folder moves,
the next export points them at the store's new place.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import math
import os
import socket
import sqlite3
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lrstudy.atomic import NoSpaceError, atomic_write_text, disk_full
from lrstudy.metrics import METRIC_COLUMNS, run_times

STUDY_TAG = "lrstudy.study_key"  # which exported study a run belongs to
KIND_TAG = "lrstudy.kind"  # "study" (the parent run) or "run"
RUN_TAG = "lrstudy.run"  # variant/seed
DONE_TAG = "lrstudy.exported_sha256"  # set last: what was exported; a run without it is a half export
# Part of DONE_TAG: a change of what an export holds exports every run again.
EXPORT_FORMAT = "2"
SUMMARY_METRICS = ("final_test_acc", "best_test_acc", "train_seconds")
BATCH = 1000  # MLflow's limit on metrics per log_batch call
# A server that does not answer: a bounded wait (MLflow's defaults retry for minutes).
CONNECT_TIMEOUT_S = 10
HTTP_RETRIES, HTTP_TIMEOUT_S = "2", "30"


class ExportError(ValueError):
    """The store cannot be reached, written or read: a sentence naming it and what to do."""


@dataclass(frozen=True)
class Store:
    """Where runs go: MLflow's tracking URI; for a SQLite store, the folder new experiments keep their
    artifacts in; `own`: the default store, whose artifact folders follow it when the project moves."""

    uri: str
    artifacts: Path | None = None
    own: bool = False

    @classmethod
    def of(cls, tracking_uri: str | None, default_directory: str | Path) -> Store:
        """mlflow.tracking_uri; None: the default store, default_directory/mlflow.db with its artifacts in
        default_directory/artifacts. A SQLite file's new experiments keep their artifacts beside it."""
        if not tracking_uri:
            directory = Path(default_directory).resolve()
            return cls(f"sqlite:///{directory / 'mlflow.db'}", directory / "artifacts", own=True)
        db = sqlite_path(tracking_uri)
        return cls(tracking_uri, db.parent / "artifacts" if db else None)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (relative paths from the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri[len("sqlite:///") :])).resolve()


def study_key(path: str | Path) -> str:
    """This study's identity in MLflow: a random id made on its first export and kept in `path`."""
    path = Path(path)
    if path.is_file() and (key := path.read_text().strip()):
        return key
    key = uuid.uuid4().hex
    atomic_write_text(path, key + "\n")
    return key


@dataclass(frozen=True)
class Study:
    """What is exported: the study's name (the experiment), its key, its runs' folders and the files its
    parent run carries, each in a folder of its artifacts ("" for the top)."""

    name: str
    key: str
    run_dirs: list[Path]
    report: list[tuple[str, Path]]


def export(study: Study, store: Store) -> dict:
    """Export the study; returns what exported.json records: the store, the experiment, the parent run
    and each run's MLflow id."""
    with _sentences(store):
        client = _connect(store)
        experiment_id = _experiment(client, study.name, store)
        if store.own:
            _follow_moved_store(store, experiment_id)
        ours = _search(client, experiment_id, f"tags.`{STUDY_TAG}` = '{study.key}'")
        parents = [r for r in ours if r.data.tags.get(KIND_TAG) == "study"]
        previous = [r for r in ours if r.data.tags.get(KIND_TAG) != "study"]
        runs = [RunRecord.read(d) for d in study.run_dirs]
        parent_digest = _digest(EXPORT_FORMAT, *(r.digest for r in runs), *_file_digests(study.report))
        parent = next((p for p in parents if _done(p, parent_digest)), None)
        if parent is None:
            parent = _open_parent(client, experiment_id, study, runs, parents)
        parent_id = parent.info.run_id
        exported = {}
        for run in runs:
            done = [
                r
                for r in previous
                if r.data.tags.get(RUN_TAG) == run.name
                and r.data.tags.get("mlflow.parentRunId") == parent_id
                and _done(r, run.digest)
            ]
            exported[run.name] = (
                done[0].info.run_id if done else _export_run(client, experiment_id, run, study, parent_id)
            )
        for stale in previous:  # retrained, half exported, or no longer in the study
            if stale.info.run_id not in exported.values():
                client.delete_run(stale.info.run_id)
        if not _done(parent, parent_digest):
            for folder, file in study.report:
                client.log_artifact(parent_id, str(file), folder or None)
            client.set_terminated(parent_id, "FINISHED", end_time=max((r.end_ms for r in runs), default=None))
            client.set_tag(parent_id, DONE_TAG, parent_digest)
        for other in parents:
            if other.info.run_id != parent_id:
                client.delete_run(other.info.run_id)
        return {"tracking_uri": store.uri, "experiment_id": experiment_id, "study_run": parent_id, "runs": exported}


@dataclass(frozen=True)
class RunRecord:
    """One run's files, read once: its summary, metrics, and the times MLflow records."""

    folder: Path
    summary: dict
    summary_text: str
    metrics: pd.DataFrame
    digest: str
    start_ms: int
    end_ms: int
    epoch_ms: list[int]

    @property
    def name(self) -> str:
        return f"{self.summary['variant']}/seed{self.summary['seed']}"

    @classmethod
    def read(cls, folder: Path) -> RunRecord:
        summary_text = (folder / "summary.json").read_text()
        metrics_text = (folder / "metrics.csv").read_text()
        summary = json.loads(summary_text)
        metrics = pd.read_csv(folder / "metrics.csv")
        start, end, epochs = run_times(summary, folder / "summary.json", metrics["epoch_seconds"].tolist())
        return cls(
            folder,
            summary,
            summary_text,
            metrics,
            _digest(EXPORT_FORMAT, summary_text, metrics_text),
            start,
            end,
            epochs,
        )


def _export_run(client, experiment_id: str, run: RunRecord, study: Study, parent_id: str) -> str:
    """One run, its DONE_TAG last: killed anywhere before, it is not done and the next export redoes it."""
    from mlflow.entities import Metric, Param, RunTag

    summary = run.summary
    code = summary.get("code") or {}
    tags = {
        RUN_TAG: run.name,
        STUDY_TAG: study.key,
        KIND_TAG: "run",
        "mlflow.parentRunId": parent_id,
        **_standard_tags(code.get("commit")),
        "lrstudy.commit_dirty": code.get("dirty"),
        "lrstudy.engine_fingerprint": code.get("engine_fingerprint"),
        "lrstudy.config_hash": summary.get("config_hash"),
        "lrstudy.device": summary.get("device_name"),
    }
    created = client.create_run(
        experiment_id,
        start_time=run.start_ms,
        run_name=run.name,
        tags={k: str(v) for k, v in tags.items() if v is not None},
    )
    run_id = created.info.run_id
    params = {**summary["config"], "seed": summary["seed"], "variant": summary["variant"]}
    client.log_batch(
        run_id, params=[Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)) for k, v in params.items()]
    )
    points = [
        Metric(column, float(value), stamp, int(epoch))
        for epoch, stamp, (_, row) in zip(run.metrics["epoch"], run.epoch_ms, run.metrics.iterrows(), strict=True)
        for column, value in row.items()
        if column in METRIC_COLUMNS and column != "epoch"
    ]
    last_epoch = int(run.metrics["epoch"].iloc[-1]) if len(run.metrics) else 0
    points += [
        Metric(key, float(summary[key]), run.end_ms, last_epoch)
        for key in SUMMARY_METRICS
        if isinstance(summary.get(key), (int, float)) and math.isfinite(summary[key])
    ]
    for start in range(0, len(points), BATCH):
        client.log_batch(run_id, metrics=points[start : start + BATCH])
    for name in ("metrics.csv", "summary.json", "model.pt"):
        if (run.folder / name).is_file():
            client.log_artifact(run_id, str(run.folder / name))
    client.set_terminated(run_id, "FAILED" if summary.get("diverged") else "FINISHED", end_time=run.end_ms)
    client.log_batch(run_id, tags=[RunTag(DONE_TAG, run.digest)])
    return run_id


def _open_parent(client, experiment_id: str, study: Study, runs: list[RunRecord], parents: list) -> object:
    """The study's parent run, not done while this export changes it: the one there (its DONE_TAG
    removed first), or a new one spanning its runs' times."""
    if parents:
        parent = parents[0]
        if DONE_TAG in parent.data.tags:
            client.delete_tag(parent.info.run_id, DONE_TAG)
        client.update_run(parent.info.run_id, status="RUNNING")
        return parent
    variants = list(dict.fromkeys(r.summary["variant"] for r in runs))
    tags = {
        STUDY_TAG: study.key,
        KIND_TAG: "study",
        **_standard_tags(next(((r.summary.get("code") or {}).get("commit") for r in runs), None)),
        "mlflow.note.content": (
            f"Study {study.name}: {len(runs)} runs of {len(variants)} variants ({', '.join(variants)}), one child "
            "run each. Artifacts: report.html, the figures and the per-variant table (stats.md, stats.tex)."
        ),
    }
    return client.create_run(
        experiment_id,
        start_time=min((r.start_ms for r in runs), default=None),
        run_name=f"study {study.name}",
        tags={k: str(v) for k, v in tags.items() if v is not None},
    )


def _standard_tags(commit: str | None) -> dict:
    return {
        "mlflow.source.name": "Snakefile",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": commit,
        "mlflow.user": _user(),
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid())


def _done(run, digest: str) -> bool:
    return run.data.tags.get(DONE_TAG) == digest and run.info.status in ("FINISHED", "FAILED")


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _file_digests(files: list[tuple[str, Path]]) -> Iterable[str]:
    for folder, file in sorted(files):
        yield f"{folder}/{file.name}"
        yield hashlib.sha256(file.read_bytes()).hexdigest()


def _search(client, experiment_id: str, filter_string: str) -> list:
    """Every active run matching, page by page (a study can have more runs than one page holds)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _experiment(client, name: str, store: Store) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = str(store.artifacts) if store.artifacts is not None else None
        return client.create_experiment(name, artifact_location=location)
    if experiment.lifecycle_stage == "deleted":  # deleted in the UI; exporting again brings it back
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def _follow_moved_store(store: Store, experiment_id: str) -> None:
    """A SQLite store records its artifact folders as absolute paths: when the store has moved (with the
    project folder), point the experiment and its runs at the artifacts beside it now."""
    db, new = sqlite_path(store.uri), str(store.artifacts)
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        (old,) = con.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id = ?", (int(experiment_id),)
        ).fetchone()
        if old == new:
            return
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (new, int(experiment_id)))
        con.execute(
            "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
            "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
            (new, len(old) + 1, int(experiment_id), len(old), old),
        )


def _connect(store: Store):
    """MLflow's client for the store, refusing at once a server that does not answer."""
    from mlflow.tracking import MlflowClient

    parsed = urllib.parse.urlsplit(store.uri)
    if parsed.scheme in ("http", "https"):
        for variable, value in (
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", HTTP_RETRIES),
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_S),
        ):
            os.environ.setdefault(variable, value)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ExportError(
                f"cannot reach the MLflow server at {store.uri} (mlflow.tracking_uri): {exc.strerror or exc}. "
                "Start the server (mlflow server) or correct mlflow.tracking_uri; null exports to the local "
                "store, results/mlflow/mlflow.db"
            ) from None
    elif parsed.scheme == "file":
        # MLflow 3 keeps the file store in maintenance mode behind this switch (reading it needs it too).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    db = sqlite_path(store.uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=store.uri)


@contextlib.contextmanager
def _sentences(store: Store) -> Iterator[None]:
    """Whatever MLflow, its database or the disk raise, as one sentence naming the store."""
    try:
        yield
    except (ExportError, NoSpaceError):
        raise
    except ImportError:
        raise ExportError("the MLflow export needs MLflow: pip install '.[mlflow]'") from None
    except Exception as exc:
        where = sqlite_path(store.uri) or store.uri
        if disk_full(exc) or "database or disk is full" in str(exc):
            raise NoSpaceError(
                f"no space left on {store.artifacts or where} while exporting to MLflow: the runs not finished "
                "are not counted as exported. Free some space and run `snakemake mlflow` again."
            ) from exc
        if not _store_error(exc):
            raise
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]  # SQLAlchemy's: the driver's words
        db = sqlite_path(store.uri)
        if db is not None and db.exists():
            raise ExportError(
                f"the MLflow store {db} cannot be read ({reason}): it is damaged or not an MLflow database. Move "
                f"it away (mv {db} {db}.damaged) and run `snakemake mlflow` again: every run is exported anew"
            ) from None
        raise ExportError(
            f"the MLflow store {store.uri} (mlflow.tracking_uri) cannot be used: {type(exc).__name__}: {reason}. "
            "Correct mlflow.tracking_uri, or set it to null for the local store, results/mlflow/mlflow.db"
        ) from None


def _store_error(exc: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    errors: tuple[type[BaseException], ...] = (MlflowException, OSError, sqlite3.Error)
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc

        errors += (sqlalchemy.exc.SQLAlchemyError,)
    return isinstance(exc, errors)
