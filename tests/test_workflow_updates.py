"""One `snakemake` brings a study up to date after any change, and the next `snakemake -n` has nothing to
do (issue 20.1). Each test starts from a copy of one finished tiny study (100 training images, width 4,
2 epochs, one seed of two variants)."""

import hashlib
import json
import shutil

import pandas as pd
import pytest
import synthetic_archive
from conftest import Workflow, job_counts, small_study, synthetic_md5

pytestmark = pytest.mark.workflow


def tiny_study(archive, **changes) -> dict:
    study = small_study(archive, epochs=2)
    study["seeds"] = [0]
    study.update(changes)
    return study


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    return [
        synthetic_archive.write_archive(folder / f"a{i}.tar.gz", train_per_batch=20, test=50, seed=i) for i in (1, 2)
    ]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, archives):
    wf = Workflow(tmp_path_factory.mktemp("finished") / "wf")
    wf.snakemake("--configfile", str(wf.write_config(tiny_study(archives[0]))))
    return wf


@pytest.fixture
def study(finished, tmp_path):
    return Workflow.copy_of(finished, tmp_path / "wf")


def converges(wf: Workflow, config: dict, name: str) -> None:
    """One plain run, then a dry run that plans nothing."""
    path = str(wf.write_config(config, name))
    wf.snakemake("--configfile", path)
    assert wf.planned_jobs("--configfile", path) == {}, wf.snakemake("-n", "--configfile", path).stdout


def run_md5s(wf: Workflow) -> set[str]:
    return {
        json.loads(p.read_text())["dataset"]["md5"] for p in (wf.root / "results/runs").glob("*/seed*/summary.json")
    }


def test_a_new_dataset_retrains_every_run_in_one_command(study, archives):
    new = tiny_study(archives[1])
    assert study.planned_jobs("--configfile", str(study.write_config(new, "new.yaml"))) == {
        "download": 1,
        "prepare_data": 1,
        "train": 2,
        "aggregate": 1,
        "figures": 1,
        "tables": 1,
        "report": 1,
        "tensorboard": 1,
        "all": 1,
    }
    converges(study, new, "new.yaml")
    assert run_md5s(study) == {synthetic_md5(archives[1])}
    summary = json.loads((study.root / "results/runs/lr_x5/seed0/summary.json").read_text())
    metrics = (study.root / "results/runs/lr_x5/seed0/metrics.csv").read_bytes()
    assert summary["metrics_sha256"] == hashlib.sha256(metrics).hexdigest()  # issue 20.5: what validation checks
    assert f"md5: {synthetic_md5(archives[1])}" in (study.root / "report.html").read_text()


def test_another_source_of_the_same_data_fetches_and_retrains_nothing(study, archives):
    moved = tiny_study(archives[0])
    moved["dataset"]["url"] = "https://example.org/elsewhere/cifar-10-python.tar.gz"
    jobs = study.planned_jobs("--configfile", str(study.write_config(moved, "moved.yaml")))
    assert set(jobs) <= {"report", "all"}, jobs  # the report shows the config; the data is the same
    converges(study, moved, "moved.yaml")


def test_recipe_and_grid_changes_each_take_one_command(study, archives):
    recipe = tiny_study(archives[0])
    recipe["variants"]["lr_x5"]["lr_windows"][0]["factor"] = 3.0
    converges(study, recipe, "recipe.yaml")
    lrs = pd.read_csv(study.root / "results/runs/lr_x5/seed0/metrics.csv")["lr"]
    base = pd.read_csv(study.root / "results/runs/baseline/seed0/metrics.csv")["lr"]
    assert lrs[1] == pytest.approx(3 * base[1])

    grid = {**recipe, "grid": [{"windows": [{"start": 2, "end": 3}], "factors": [2]}]}
    converges(study, grid, "grid.yaml")
    assert "lr_x2_e2-3" in set(pd.read_csv(study.root / "results/aggregate/summary.csv")["variant"])


def test_tensorboard_follows_the_runs_and_turning_it_back_on_fixes_their_folders(study, archives):
    """Issue 29.4: a run retrained with execution.tensorboard off kept its old recipe's event files as its
    curves, and turning TensorBoard back on did not fix them."""
    import numpy as np
    from test_engine import board_scalars

    from lrstudy.train.tensorboard import EVENT_FILE

    board = study.root / "results/tensorboard"
    assert (board / EVENT_FILE).is_file() and (board / "lr_x5/seed0" / EVENT_FILE).is_file()
    changed = tiny_study(archives[0])
    changed["variants"]["lr_x5"]["lr_windows"][0]["factor"] = 3.0
    changed["execution"]["tensorboard"] = False
    converges(study, changed, "off.yaml")
    assert not (board / "lr_x5/seed0").exists(), "the old recipe's curves outlived its run"
    assert (board / "baseline/seed0" / EVENT_FILE).is_file()

    changed["execution"]["tensorboard"] = True
    on = str(study.write_config(changed, "on.yaml"))
    ran = study.snakemake("--configfile", on)
    assert job_counts(ran.stdout + ran.stderr) == {"tensorboard": 1, "report": 1, "all": 1}  # report: the config
    assert study.planned_jobs("--configfile", on) == {}
    lr = pd.read_csv(study.root / "results/runs/lr_x5/seed0/metrics.csv")["lr"]
    assert [v for _, v in board_scalars(board / "lr_x5/seed0")["lr"]] == [float(np.float32(x)) for x in lr]


@pytest.mark.parametrize(
    "target, plan",
    [
        ((), {"train": 1, "aggregate": 1, "figures": 1, "tables": 1, "report": 1, "tensorboard": 1, "all": 1}),
        (("report.html",), {"train": 1, "aggregate": 1, "figures": 1, "tables": 1, "report": 1}),
        (("results/aggregate/stats.md",), {"train": 1, "aggregate": 1, "tables": 1}),
        (("results/runs/lr_x5/summary.csv",), {"train": 1, "variant_summary": 1}),
    ],
)
def test_a_dry_run_plans_what_the_run_does_after_a_run_is_deleted(study, archives, target, plan):
    """Issue 20.3: `snakemake -n` said "Nothing to be done" where `snakemake` retrained the run; with an
    explicit target, so did the plain run where the target was made from the tables (stats.md)."""
    config = str(study.write_config(tiny_study(archives[0]), "same.yaml"))
    if "variant_summary" in plan:  # made before the deletion, so that it lists the deleted run
        study.snakemake("--configfile", config, "--", "results/runs/lr_x5/summary.csv")
    shutil.rmtree(study.root / "results/runs/lr_x5/seed0")
    planned = study.planned_jobs("--configfile", config, "--", *target)
    assert planned == plan
    ran = study.snakemake("--configfile", config, "--", *target)
    assert job_counts(ran.stdout + ran.stderr) == planned
    assert study.planned_jobs("--configfile", config, "--", *target) == {}
    retrained = (study.root / "results/runs/lr_x5/seed0/summary.json").stat().st_mtime_ns
    made_from_runs = ["results/aggregate/summary.csv", "results/aggregate/stats.md", "results/figures/accuracy.png"]
    for path in [study.root / p for p in [*made_from_runs, "report.html", "results/runs/lr_x5/summary.csv"]]:
        assert not path.exists() or path.stat().st_mtime_ns >= retrained, f"{path} was made before the retrained run"
