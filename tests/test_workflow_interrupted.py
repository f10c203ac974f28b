"""An adaptive study killed at any point of a later stage resumes, in one command, to the plan, runs,
tables and report of the same study run without interruption (issue 20.2).

The study: stage 1 ran under a design that stopped lr_x1.2 as futile; then effect_pct and power are raised,
so the look after stage 1 is made again, says `continue`, and stage 2 adds seeds. That second
command is killed (SIGKILL to Snakemake and its jobs, as a node failure or the OOM killer does) at four
points; after `--unlock`, one `snakemake` must end where the uninterrupted command ended, and the next
`snakemake -n` must have nothing to do."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import Workflow, small_study

from lrstudy.analysis import adaptive as ad

pytestmark = pytest.mark.workflow

TWO_AT_ONCE = ["--set-threads", "train=1"]
# Columns and keys that time a run (they differ between any two runs of the same seed); the rest must agree.
TIMINGS = {"epoch_seconds", "train_seconds", "seconds_per_epoch", "train_seconds_mean", "finished_at"}
# Set by the run and by its resumption respectively; not part of what the run computed.
RUN_HISTORY = {"resumed_from_epoch", "metrics_sha256"}


def stopped_study(archive) -> dict:
    """Two seeds a stage, 200 images, 6 short epochs (a run is long enough to be killed mid-way). With
    power 0.5 the look after stage 1 stops lr_x1.2 as futile (its conditional power to show 0.01 points
    is about 0)."""
    study = small_study(archive, epochs=6)
    study["dataset"].update(train_limit=200, test_limit=100)
    study["variants"] = {"baseline": {}, "lr_x1.2": {"lr": 0.06}}
    study["adaptive"] = {"max_seeds": 4, "effect_pct": 0.01, "power": 0.5}
    return study


def raised_study(archive) -> dict:
    """power 0.9999 leaves no room for futility: lr_x1.2 continues to the second stage (max_seeds 4)."""
    return {**stopped_study(archive), "adaptive": {"max_seeds": 4, "effect_pct": 0.02, "power": 0.9999}}


def stage_plan(root, stage):
    """The stage's plan, or None. Polled while Snakemake runs: a job that makes it again removes the old one
    first, which may happen between any check and the read."""
    try:
        return pd.read_csv(root / f"results/aggregate/seed_plan/stage{stage}.csv")
    except FileNotFoundError:
        return None


def looked_again_after_stage_1(root) -> bool:
    plan = stage_plan(root, 1)
    return plan is not None and ad.OPEN in set(plan["decision"])


def later_runs(root, name) -> list:
    return [p for p in (root / "results/runs").glob(f"*/seed*/{name}") if int(p.parent.name[4:]) >= 2]


def checkpoints(root) -> list:
    return list((root / "results/checkpoints").glob("*/seed*.pt"))


# Where the second command is killed: (when to kill, what must then be true, so that the test knows it
# interrupted that point and not a later one).
KILL_POINTS = {
    "during the look after stage 1": (
        lambda root, out: "checkpoint plan_stage:" in out,
        lambda root: not looked_again_after_stage_1(root),
    ),
    "after the look, before stage 2 trained": (
        lambda root, out: looked_again_after_stage_1(root),
        lambda root: not later_runs(root, "summary.json"),
    ),
    "in the middle of a stage-2 run": (
        lambda root, out: bool(checkpoints(root)),
        lambda root: any(
            not (root / "results/runs" / p.parent.name / p.stem / "summary.json").exists() for p in checkpoints(root)
        ),
    ),
    "during the look after stage 2": (
        lambda root, out: "stage=2" in out and len(later_runs(root, "summary.json")) >= 4,
        lambda root: stage_plan(root, 2) is None,
    ),
}


def start(wf: Workflow, config) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config), *TWO_AT_ONCE]
    out = open(wf.root / "interrupted.out", "w")  # noqa: SIM115 (closed by kill_when)
    return subprocess.Popen(cmd, cwd=wf.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(wf: Workflow, proc: subprocess.Popen, condition, timeout: float = 600) -> None:
    """SIGKILL Snakemake and every job it started as soon as `condition` holds."""
    deadline = time.monotonic() + timeout
    out_path = wf.root / "interrupted.out"
    try:
        while not condition(wf.root, out_path.read_text()):
            if proc.poll() is not None:
                raise AssertionError(f"the study ended before the kill point:\n{out_path.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the kill point never came:\n{out_path.read_text()}")
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout and proc.stdout.close()


def without(columns: set, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if c in columns])


def report_without_timings(html: str) -> str:
    """The report's text less the training-time row of the summary and the last (time per run) column of
    the per-variant table."""
    html = re.sub(r"\s+", " ", html)
    html = re.sub(r"<tr><th>training time per run</th>.*?</tr>", "", html)
    return re.sub(r'<td class="n">[^<]*</td> </tr>', "</tr>", html)


def outcome(root) -> dict:
    """Everything the study computed, less the timings: plans, every run's metrics and summary, tables,
    and the report's text from the summary through the adaptive section."""
    aggregate = root / "results/aggregate"
    runs = {}
    for metrics in sorted((root / "results/runs").glob("*/seed*/metrics.csv")):
        summary = json.loads((metrics.parent / "summary.json").read_text())
        key = f"{metrics.parent.parent.name}/{metrics.parent.name}"
        runs[key] = (
            without(TIMINGS, pd.read_csv(metrics)).to_csv(),
            {k: v for k, v in summary.items() if k not in TIMINGS | RUN_HISTORY},
        )
    html = (root / "report.html").read_text()
    sections = sorted(html.index(f'id="{s}"') for s in ("summary", "variants", "adaptive", "figures"))
    return {
        "plans": {p.name: p.read_text() for p in sorted((aggregate / "seed_plan").glob("stage*.csv"))},
        "seed_plan": (aggregate / "seed_plan.csv").read_text(),
        "runs": runs,
        "summary": without(TIMINGS, pd.read_csv(aggregate / "summary.csv")).to_csv(),
        "stats": without(TIMINGS, pd.read_csv(aggregate / "stats.csv")).to_csv(),
        "report": report_without_timings(html[sections[0] : sections[-1]]),
    }


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, archive):
    """The study after its first command: stage 1, lr_x1.2 stopped as futile."""
    wf = Workflow(tmp_path_factory.mktemp("interrupted") / "stopped")
    wf.snakemake("--configfile", str(wf.write_config(stopped_study(archive))), *TWO_AT_ONCE)
    assert stage_plan(wf.root, 1).set_index("variant").loc["lr_x1.2", "decision"] == ad.FUTILE
    wf.write_config(raised_study(archive), "raised.yaml")
    return wf


@pytest.fixture(scope="module")
def uninterrupted(stopped, tmp_path_factory):
    wf = Workflow.copy_of(stopped, tmp_path_factory.mktemp("interrupted") / "uninterrupted")
    wf.snakemake("--configfile", str(wf.root / "raised.yaml"), *TWO_AT_ONCE)
    result = outcome(wf.root)
    assert set(result["plans"]) == {"stage1.csv", "stage2.csv"}, "the study must reach stage 2"
    return result


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_killed_study_resumes_to_the_uninterrupted_result(stopped, uninterrupted, tmp_path, point):
    kill_at, interrupted_there = KILL_POINTS[point]
    wf = Workflow.copy_of(stopped, tmp_path / "wf")
    raised = str(wf.root / "raised.yaml")
    kill_when(wf, start(wf, raised), kill_at)
    assert interrupted_there(wf.root), f"killed later than {point}"

    wf.snakemake("--unlock", "--configfile", raised)
    wf.snakemake("--configfile", raised, *TWO_AT_ONCE)
    assert wf.planned_jobs("--configfile", raised) == {}, "a second command still had work to do"
    assert outcome(wf.root) == uninterrupted
