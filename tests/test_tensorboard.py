"""TensorBoard as a user opens it: `tensorboard --logdir results/tensorboard` (its default, fast loader),
asked through the HTTP API its page uses, over loopback (issue 32.1). The log folder is what the workflow
makes: rule tensorboard's folder from finished runs (one diverged), beside a run still training, written
live by the trainer's writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import KNOWN, grid_finals, write_study
from tensorboard_server import TensorBoardServer

from lrstudy.train.tensorboard import (
    EVENT_FILE,
    FINAL_TAG,
    TAGS,
    TensorBoardLog,
    hparams_of,
    study_hparams,
    write_folder,
)

FINALS = {"baseline": KNOWN["baseline"][:2], **dict(list(grid_finals(3, seeds=2).items())[1:])}
SWEPT = [v for v in FINALS if v != "baseline"]


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("study")
    runs = write_study(root, FINALS, diverged={(SWEPT[0], 1): 5})
    out = root / "results/tensorboard"
    recipes = [(json.loads((r / "summary.json").read_text())["config"], r.parent.name, int(r.name[4:])) for r in runs]
    write_folder(out, runs, study_hparams(recipes))
    # A run still training: the trainer's writer, entered and given three epochs, not yet exited.
    live = TensorBoardLog(out / "training/seed0", recipes[0][0], "training", 0).__enter__()
    live(pd.read_csv(runs[0] / "metrics.csv").head(3).to_dict("records"))
    yield out, runs
    live.__exit__(None, None, None)


@pytest.mark.system
def test_the_real_server_shows_every_curve_the_hparams_and_each_runs_status(logdir):
    out, runs = logdir
    names = [f"{r.parent.name}/{r.name}" for r in runs]
    with TensorBoardServer(out) as server:
        assert server.data_server(), "TensorBoard's default loader here is the fast data server"
        tags = server.scalar_tags(len(runs) + 1)
        assert set(tags) == {*names, "training/seed0"}, server.said
        for name, run in zip(names, runs, strict=True):
            summary = json.loads((run / "summary.json").read_text())
            assert set(tags[name]) == set(TAGS) | ({FINAL_TAG} if not summary["diverged"] else set()), name
        metrics = pd.read_csv(runs[0] / "metrics.csv")
        for tag, column in TAGS.items():
            points = server.get("/data/plugin/scalars/scalars", run=names[0], tag=tag)
            assert [(p[1], p[2]) for p in points] == list(
                zip(metrics["epoch"], np.float32(metrics[column]), strict=True)
            )
        assert [p[1] for p in server.get("/data/plugin/scalars/scalars", run="training/seed0", tag="lr")] == [1, 2, 3]

        experiment = server.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        columns = {h["name"]: h for h in experiment["hparamInfos"]}
        assert columns["variant"]["type"] == "DATA_TYPE_STRING"
        assert set(columns["variant"]["domainDiscrete"]) == set(FINALS)
        for key in ("start", "end", "factor"):
            assert columns[f"lr_window1.{key}"]["type"] == "DATA_TYPE_FLOAT64", key
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [FINAL_TAG]

        request = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [{"metric": {"tag": FINAL_TAG}}, *({"hparam": h} for h in columns)],
            "startIndex": 0,
            "sliceSize": 100,
        }
        groups = server.post("/data/plugin/hparams/session_groups", request)["sessionGroups"]
    sessions = {s["name"]: (g, s) for g in groups for s in g["sessions"]}
    assert set(sessions) == {*names, "training/seed0"}
    for name, run in zip(names, runs, strict=True):
        summary = json.loads((run / "summary.json").read_text())
        group, session = sessions[name]
        assert group["hparams"] == hparams_of(summary["config"], summary["variant"], summary["seed"])
        finals = [m["value"] for m in session.get("metricValues", [])]
        if summary["diverged"]:
            assert session["status"] == "STATUS_FAILURE" and finals == [], name
        else:
            assert session["status"] == "STATUS_SUCCESS", name
            assert finals == [pytest.approx(summary["final_test_acc"], rel=1e-6)], name
    assert sessions["training/seed0"][1].get("status", "STATUS_UNKNOWN") == "STATUS_UNKNOWN"  # not SUCCESS


def test_the_folder_is_made_again_from_the_runs_without_other_event_files(logdir, tmp_path):
    """Rule tensorboard's folder: one event file per run, whatever was there before."""
    out, runs = logdir
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*tfevents*")) == sorted(
        [EVENT_FILE, "training/seed0/" + EVENT_FILE, *(f"{r.parent.name}/{r.name}/{EVENT_FILE}" for r in runs)]
    )
    stale = tmp_path / "v/seed0"
    stale.mkdir(parents=True)
    (stale / "events.out.tfevents.1.host.1.0").write_bytes(b"an old writer's file")
    from lrstudy.train.tensorboard import write_run

    write_run(stale, runs[0] / "metrics.csv", runs[0] / "summary.json")
    assert [p.name for p in stale.iterdir()] == [EVENT_FILE]
