"""TensorBoard event files: `tensorboard --logdir results/tensorboard` shows a study, live while it trains,
one run per results/tensorboard/{variant}/seed{seed}/ (runs grouped by variant), each folder holding one
event file (EVENT_FILE) that belongs to the run.

Per epoch: loss/train, loss/test, accuracy/train, accuracy/test (fractions, as metrics.csv), lr, lr_last
(not in a run made before it was recorded) and epoch_seconds, as float32 scalars, which TensorBoard's
default (fast) loader reads; metrics.csv stays the exact record. HPARAMS: the variant, seed and recipe, the
schedule's and warmup's parameters one by one (`schedule.name`, `schedule.pct_start`, `warmup.epochs`),
each lr window's start, end and factor as numbers (`lr_window1.start`, ...), and the final test accuracy as
the metric (FINAL_TAG, written when the run ends with one). The run's status is written when it ends:
SUCCESS, or FAILURE for a diverged run; a run still training, or stopped before its end, has none
(TensorBoard shows it as unknown).

Two writers, one format. TensorBoardLog writes while a run trains: a fresh start or a resume rewrites the
file from epoch 1 (from the checkpoint's metrics), so the curves continue without repeated or missing
epochs. write_folder() makes the study's whole folder again from its runs' metrics.csv and summary.json,
with the runs' own times, and the study's HPARAMS columns at its top (rule tensorboard: after the runs
train, and for runs trained while TensorBoard was off; runs no longer in the study leave it).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from lrstudy.atomic import atomic_path, naming_a_full_disk
from lrstudy.metrics import run_times
from lrstudy.schedule import recorded

# Tag -> metrics.csv column.
TAGS = {
    "loss/train": "train_loss",
    "loss/test": "test_loss",
    "accuracy/train": "train_acc",
    "accuracy/test": "test_acc",
    "lr": "lr",
    "lr_last": "lr_last",
    "epoch_seconds": "epoch_seconds",
}
FINAL_TAG = "final_test_acc"  # the HPARAMS metric
EVENT_FILE = "events.out.tfevents.lrstudy"  # TensorBoard reads every file whose name has "tfevents"
# What a full disk means for an event file, and what to do (lrstudy.atomic.naming_a_full_disk).
FULL_DISK = ("TensorBoard's event file stops here", ": the run resumes from its last checkpoint")


def hparams_of(recipe: dict, variant: str, seed: int) -> dict[str, float | str | bool]:
    """A run's HPARAMS values: numbers, text and flags (TensorBoard's kinds). Each lr window's start, end
    and factor, and each parameter of the schedule and the warmup, as values of their own, so that a sweep
    can be plotted against them. A recipe recorded before schedules were mappings is read in today's form."""
    values: dict[str, float | str | bool] = {"variant": variant, "seed": seed}
    for key, value in {**recipe, **recorded(recipe)}.items():
        if key in ("step_milestones", "step_gamma"):  # the old spelling, in recorded()'s schedule now
            continue
        if isinstance(value, dict):
            values.update(
                {f"{key}.{k}": v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in value.items()}
            )
        elif key == "lr_windows":
            values[key] = json.dumps(value)
            for i, window in enumerate(value, 1):
                values.update({f"lr_window{i}.{k}": float(window[k]) for k in ("start", "end", "factor")})
        elif isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif value is not None:
            values[key] = json.dumps(value)
    return values


def study_hparams(runs: Iterable[tuple[dict, str, int]]) -> dict[str, list]:
    """Every HPARAMS column of a study's runs (recipe, variant, seed) with its values: rule tensorboard's
    params, so that a change of the study's variants or seeds writes the columns again."""
    columns: dict[str, set] = {}
    for recipe, variant, seed in runs:
        for name, value in hparams_of(recipe, variant, seed).items():
            columns.setdefault(name, set()).add(value)
    return {name: sorted(values, key=lambda v: (str(type(v)), v)) for name, values in sorted(columns.items())}


class TensorBoardLog:
    """The run's event file while it trains, an on_epoch object (lrstudy.train.run.EpochLog): entered, it
    starts the file afresh; called with the metrics after each epoch, it writes the rows not yet written;
    exited after the run's last epoch, it writes the final accuracy and the run's status."""

    def __init__(self, directory: Path, recipe: dict, variant: str, seed: int):
        self.file = Path(directory) / EVENT_FILE
        self.recipe, self.variant, self.seed = recipe, variant, seed
        self.events: _Events | None = None
        self.written, self.last = 0, None  # rows written, and the last of them

    def __enter__(self) -> TensorBoardLog:
        with naming_a_full_disk(self.file, *FULL_DISK):
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.events = _Events(open(self.file, "wb"))
        self.written, self.last = 0, None
        self._write(_start(hparams_of(self.recipe, self.variant, self.seed), time.time()))
        return self

    def __call__(self, metrics: list[dict]) -> None:
        self._write(_scalars(metrics[self.written :], time.time()))
        self.written, self.last = len(metrics), metrics[-1] if metrics else self.last

    def _write(self, events: list) -> None:
        """Live: each epoch is on disk when its line is logged. A write that fails closes the file."""
        try:
            with naming_a_full_disk(self.file, *FULL_DISK):
                self.events.write(events)
                self.events.flush()
        except BaseException:
            self.events.close_quietly()
            raise

    def __exit__(self, kind, *exc: object) -> None:
        events, self.events = self.events, None
        if kind is not None:  # stopped before its end: no status (it resumes, rewriting the file)
            events.close_quietly()
            return
        with naming_a_full_disk(self.file, *FULL_DISK):
            diverged = self.last is not None and not _finite(self.last)
            final = None if diverged or self.last is None else self.last["test_acc"]
            events.write(_end(final, self.last["epoch"] if self.last else 0, diverged, time.time()))
            events.close()


def write_folder(out: Path, run_dirs: Iterable[Path], columns: dict[str, list]) -> None:
    """A study's TensorBoard folder made from its runs' files (rule tensorboard): each run's event file
    (write_run) in out/{variant}/seed{seed}, and the study's HPARAMS columns (write_study) at the top."""
    for run in map(Path, run_dirs):
        write_run(out / run.parent.name / run.name, run / "metrics.csv", run / "summary.json")
    write_study(out / EVENT_FILE, columns)


def write_run(directory: Path, metrics_csv: Path, summary_json: Path) -> Path:
    """The run's event file made again from its files, atomically, with the run's own times; any other
    event file in the folder (an earlier writer's) goes. Returns the file."""
    summary = json.loads(summary_json.read_text())
    with open(metrics_csv, newline="") as fh:
        rows = [{k: float(v) if k != "epoch" else int(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    start_ms, end_ms, epoch_ms = run_times(summary, summary_json, [r["epoch_seconds"] for r in rows])
    hparams = hparams_of(summary["config"], summary["variant"], summary["seed"])
    target = Path(directory) / EVENT_FILE
    with atomic_path(target) as tmp, _Events(open(tmp, "wb")) as events:
        events.write(_start(hparams, start_ms / 1000))
        for row, stamp in zip(rows, epoch_ms, strict=True):
            events.write(_scalars([row], stamp / 1000))
        last = rows[-1]["epoch"] if rows else 0
        events.write(_end(summary.get("final_test_acc"), last, bool(summary.get("diverged")), end_ms / 1000))
    for other in Path(directory).glob("*tfevents*"):
        if other.name != EVENT_FILE:
            other.unlink()
    return target


def write_study(target: Path, columns: dict[str, list]) -> None:
    """The study's HPARAMS columns (study_hparams) and its metric, the final test accuracy: TensorBoard
    reads them from the top of the log folder (its run "."), atomically."""
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    infos = []
    for name, values in columns.items():
        info = api_pb2.HParamInfo(name=name)
        if all(isinstance(v, bool) for v in values):
            info.type = api_pb2.DATA_TYPE_BOOL
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            info.type = api_pb2.DATA_TYPE_FLOAT64
            info.domain_interval.min_value, info.domain_interval.max_value = min(values), max(values)
        else:
            info.type = api_pb2.DATA_TYPE_STRING
            info.domain_discrete.extend(str(v) for v in values)
        infos.append(info)
    experiment = api_pb2.Experiment(
        hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=FINAL_TAG), display_name="final test accuracy")],
        time_created_secs=time.time(),
    )
    data = plugin_data_pb2.HParamsPluginData(experiment=experiment, version=metadata.PLUGIN_DATA_VERSION)
    with atomic_path(target) as tmp, _Events(open(tmp, "wb")) as events:
        events.write([_summary_event(metadata.EXPERIMENT_TAG, data, time.time())])


# -- the events -------------------------------------------------------------------------------------
def _start(hparams: dict, wall_time: float) -> list:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(start_time_secs=wall_time)
    for name, value in hparams.items():
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            info.hparams[name].number_value = value
        else:
            info.hparams[name].string_value = value
    data = plugin_data_pb2.HParamsPluginData(session_start_info=info, version=metadata.PLUGIN_DATA_VERSION)
    return [
        event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2"),
        _summary_event(metadata.SESSION_START_INFO_TAG, data, wall_time),
    ]


def _scalars(rows: list[dict], wall_time: float) -> list:
    from tensorboard.compat.proto import event_pb2, summary_pb2

    return [
        event_pb2.Event(
            wall_time=wall_time,
            step=int(row["epoch"]),
            summary=summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(tag=tag, simple_value=row[column])
                    for tag, column in TAGS.items()
                    if column in row  # lr_last: not in a run made before it was recorded
                ]
            ),
        )
        for row in rows
    ]


def _end(final: float | None, last_epoch: int, diverged: bool, wall_time: float) -> list:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    events = []
    if final is not None:
        value = summary_pb2.Summary.Value(tag=FINAL_TAG, simple_value=final)
        events.append(event_pb2.Event(wall_time=wall_time, step=last_epoch, summary=summary_pb2.Summary(value=[value])))
    status = api_pb2.STATUS_FAILURE if diverged else api_pb2.STATUS_SUCCESS
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=wall_time)
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info, version=metadata.PLUGIN_DATA_VERSION)
    return [*events, _summary_event(metadata.SESSION_END_INFO_TAG, data, wall_time)]


def _summary_event(tag: str, data, wall_time: float):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.hparams import metadata

    value = summary_pb2.Summary.Value(
        tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
    )
    return event_pb2.Event(wall_time=wall_time, summary=summary_pb2.Summary(value=[value]))


class _Events:
    """An event file being written: TensorBoard's record framing around each event."""

    def __init__(self, fh: BinaryIO):
        from tensorboard.summary.writer.record_writer import RecordWriter

        self.records = RecordWriter(fh)

    def write(self, events: list) -> None:
        for event in events:
            self.records.write(event.SerializeToString())

    def flush(self) -> None:
        self.records.flush()

    def close(self) -> None:
        self.records.close()

    def close_quietly(self) -> None:
        """Closed after a failure: what could not be written (a full disk) is not written."""
        with contextlib.suppress(OSError):
            self.records.close()

    def __enter__(self) -> _Events:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(row: dict) -> bool:
    """As the engine decides divergence: both losses finite."""
    return math.isfinite(row["train_loss"]) and math.isfinite(row["test_loss"])
