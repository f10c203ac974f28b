"""One `snakemake` brings a study up to date after any change, and the next `snakemake -n` has nothing to
do (issue 20.1); no ordinary command loses a finished run, and commands that plan or list write nothing
(issue 29). Each test starts from one finished tiny named study (100 training images, width 4, 2 epochs,
one seed of two variants): read-only checks use it as it is, the others a copy of it."""

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import synthetic_archive
import yaml
from conftest import Workflow, job_counts, small_study, synthetic_md5

from lrstudy import run_cache
from lrstudy.study_status import study_status

pytestmark = pytest.mark.workflow
NAME = "tiny"
ANALYSIS = {"aggregate": 1, "figures": 1, "tables": 1, "report": 1, "tensorboard": 1, "all": 1}


def tiny_study(archive, **changes) -> dict:
    study = small_study(archive, epochs=2)
    study["seeds"] = [0]
    study.update(study=NAME, **changes)
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


def home(wf: Workflow) -> Path:
    return wf.root / "studies" / NAME


def converges(wf: Workflow, config: dict, name: str) -> str:
    """One plain run, then a dry run that plans nothing; the run's output."""
    path = str(wf.write_config(config, name))
    ran = wf.snakemake("--configfile", path)
    assert wf.planned_jobs("--configfile", path) == {}, wf.snakemake("-n", "--configfile", path).stdout
    return ran.stdout + ran.stderr


def run_md5s(wf: Workflow) -> set[str]:
    return {
        json.loads(p.read_text())["dataset"]["md5"] for p in (home(wf) / "results/runs").glob("*/seed*/summary.json")
    }


def files(wf: Workflow) -> dict[str, tuple[int, int]]:
    """Every file under the workflow folder but Snakemake's own (.snakemake/): size, mtime."""
    return {
        str(p.relative_to(wf.root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in wf.root.rglob("*")
        if p.is_file() and ".snakemake" not in p.parts
    }


def trained(wf: Workflow, run: str) -> str:
    return (home(wf) / "logs/train" / f"{run}.log").read_text()


def test_a_partial_config_for_a_named_study_changes_only_what_it_names(finished, archives):
    """Issue 29.1: a later --configfile/--config replaced the remembered study, so a file naming only an
    mlflow store planned 12 full-size runs of config.yaml's recipe. Dry runs: the study is left as it was."""
    before = files(finished)
    store = finished.root / "store.yaml"
    store.write_text(f"study: {NAME}\nmlflow: {{tracking_uri: 'file:///data/mlruns'}}\n")
    # The report shows the study's config, the mlflow key included: made again, and nothing trains.
    assert finished.planned_jobs("--configfile", str(store), "--", "mlflow") == {"report": 1, "mlflow": 1}
    assert finished.planned_jobs("--config", f"study={NAME}", "stats={multiplicity: none}") == {
        **{k: v for k, v in ANALYSIS.items() if k != "tensorboard"}  # TensorBoard's folder holds no statistics
    }
    store.unlink()
    assert study_status(finished.root, NAME).up_to_date  # the workflow's own check, for lrstudy-compare
    assert files(finished) == before


def test_commands_that_plan_or_list_write_nothing(study, archives):
    """Issue 29.3: --dag with a run folder missing deleted report.html and every table and figure; --dag,
    --rulegraph, --list-changes and a run refused by the directory lock rewrote study.yaml."""
    shutil.rmtree(home(study) / "results/runs/lr_x5/seed0")
    other = str(study.write_config(tiny_study(archives[0], seeds=[0, 1]), "other.yaml"))
    before = files(study)
    for listing in (["--dag"], ["--rulegraph"], ["--list-changes", "params"]):
        study.snakemake("--configfile", other, *listing)
        assert files(study) == before, listing
    status = study_status(study.root, NAME)
    assert not status.up_to_date and status.jobs["train"] == 1
    assert status.reasons["output files have to be generated"] == ["train"]
    assert files(study) == before
    locks = home(study) / ".snakemake/locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text("report.html\n")  # as a running Snakemake holds it
    refused = study.snakemake("--configfile", other, check=False)
    assert refused.returncode != 0 and "Directory cannot be locked" in refused.stdout + refused.stderr
    assert files(study) == before


def test_a_new_dataset_retrains_every_run_in_one_command_and_going_back_none(study, archives):
    first = {p: p.read_bytes() for p in (home(study) / "results/runs").glob("*/seed0/metrics.csv")}
    new = tiny_study(archives[1])
    assert study.planned_jobs("--configfile", str(study.write_config(new, "new.yaml"))) == {
        "download": 1,
        "prepare_data": 1,
        "train": 2,
        **ANALYSIS,
    }
    out = converges(study, new, "new.yaml")
    assert run_md5s(study) == {synthetic_md5(archives[1])}
    why = f"data: md5 {synthetic_md5(archives[0])} -> {synthetic_md5(archives[1])}"
    assert all(out.count(f"{run}/seed0: {why}") == 1 for run in ("baseline", "lr_x5")), out  # said once, first
    summary = json.loads((home(study) / "results/runs/lr_x5/seed0/summary.json").read_text())
    metrics = (home(study) / "results/runs/lr_x5/seed0/metrics.csv").read_bytes()
    assert summary["metrics_sha256"] == hashlib.sha256(metrics).hexdigest()  # issue 20.5: what validation checks
    assert f"md5: {synthetic_md5(archives[1])}" in (home(study) / "report.html").read_text()

    # Issue 29.2: back to the first dataset, the cache is decoded again and every run comes back as it was.
    out = converges(study, tiny_study(archives[0]), "back.yaml")
    assert job_counts(out) == {"download": 1, "prepare_data": 1, "train": 2, **ANALYSIS}
    assert all("put in place from the run cache" in trained(study, f"{v}/seed0") for v in ("baseline", "lr_x5"))
    assert {p: p.read_bytes() for p in first} == first


def test_another_source_of_the_same_data_fetches_and_retrains_nothing(study, archives):
    moved = tiny_study(archives[0])
    moved["dataset"]["url"] = "https://example.org/elsewhere/cifar-10-python.tar.gz"
    jobs = study.planned_jobs("--configfile", str(study.write_config(moved, "moved.yaml")))
    assert set(jobs) <= {"report", "all"}, jobs  # the report shows the config; the data is the same
    converges(study, moved, "moved.yaml")


def test_a_changed_recipe_is_kept_and_going_back_trains_nothing(study, archives):
    """Issue 29.2 and 29.4: the superseded run is kept and comes back when the config asks for it again;
    a rebuilt dataset cache retrains nothing; -f still trains; a variant summary follows its runs."""
    original = tiny_study(archives[0])
    study.snakemake(
        "--configfile", str(study.write_config(original, "original.yaml")), "--", "results/runs/lr_x5/summary.csv"
    )
    first = (home(study) / "results/runs/lr_x5/seed0/metrics.csv").read_bytes()

    recipe = tiny_study(archives[0])
    recipe["variants"]["lr_x5"]["lr_windows"][0]["factor"] = 3.0
    out = converges(study, recipe, "recipe.yaml")
    assert out.count("lr_x5/seed0: recipe: lr_windows") == 1, out  # named once, with why, before any job
    lrs = pd.read_csv(home(study) / "results/runs/lr_x5/seed0/metrics.csv")["lr"]
    base = pd.read_csv(home(study) / "results/runs/baseline/seed0/metrics.csv")["lr"]
    assert lrs[1] == pytest.approx(3 * base[1])
    variant_summary = pd.read_csv(home(study) / "results/runs/lr_x5/summary.csv")
    assert variant_summary["window_factor"].tolist() == [3.0]  # the summary follows its runs

    assert study.planned_jobs("--configfile", str(study.write_config(original, "original.yaml"))) == {
        "train": 1,
        "variant_summary": 1,
        **ANALYSIS,
    }
    converges(study, original, "original.yaml")
    assert "put in place from the run cache" in trained(study, "lr_x5/seed0")
    assert (home(study) / "results/runs/lr_x5/seed0/metrics.csv").read_bytes() == first
    kept = {e.config_hash: run_cache.in_place(home(study), e) for e in run_cache.entries(home(study))}
    assert sorted(kept.values()) == [False, True, True]  # the factor-3 run is kept, superseded

    # The dataset cache rebuilt on the same content: nothing downstream of it is made again.
    rebuilt = study.snakemake(
        "--config", f"study={NAME}", "--forcerun", "prepare_data", "--", "results/data/cifar10.npz"
    )
    assert job_counts(rebuilt.stdout + rebuilt.stderr) == {"prepare_data": 1}
    assert study.planned_jobs("--config", f"study={NAME}") == {}

    forced = study.snakemake("--config", f"study={NAME}", "-f", "--", "results/runs/lr_x5/seed0/metrics.csv")
    assert "its kept copy" in forced.stdout + forced.stderr
    assert "run lr_x5 seed 0 done" in trained(study, "lr_x5/seed0")  # -f trains again, as asked


def test_a_grid_takes_one_command(study, archives):
    grid = {**tiny_study(archives[0]), "grid": [{"windows": [{"start": 2, "end": 3}], "factors": [2]}]}
    converges(study, grid, "grid.yaml")
    assert "lr_x2_e2-3" in set(pd.read_csv(home(study) / "results/aggregate/summary.csv")["variant"])
    remembered = yaml.safe_load((home(study) / "study.yaml").read_text())
    assert remembered["grid"] == grid["grid"]


def test_tensorboard_follows_the_runs_and_turning_it_back_on_fixes_their_folders(study, archives):
    """Issue 29.4: a run retrained with execution.tensorboard off kept its old recipe's event files as its
    curves, and turning TensorBoard back on did not fix them."""
    import numpy as np
    from test_engine import board_scalars

    from lrstudy.train.tensorboard import EVENT_FILE

    board = home(study) / "results/tensorboard"
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
    lr = pd.read_csv(home(study) / "results/runs/lr_x5/seed0/metrics.csv")["lr"]
    assert [v for _, v in board_scalars(board / "lr_x5/seed0")["lr"]] == [float(np.float32(x)) for x in lr]


@pytest.mark.parametrize(
    "target, plan",
    [
        ((), {"train": 1, **ANALYSIS}),
        (("report.html",), {"train": 1, "aggregate": 1, "figures": 1, "tables": 1, "report": 1}),
        (("results/aggregate/stats.md",), {"train": 1, "aggregate": 1, "tables": 1}),
        (("results/runs/lr_x5/summary.csv",), {"train": 1, "variant_summary": 1}),
    ],
)
def test_a_dry_run_plans_what_the_run_does_after_a_run_is_deleted(study, archives, target, plan):
    """Issue 20.3: `snakemake -n` said "Nothing to be done" where `snakemake` retrained the run; with an
    explicit target, so did the plain run where the target was made from the tables (stats.md). The run
    comes back from the run cache; the dry run deletes nothing (issue 29.3)."""
    config = str(study.write_config(tiny_study(archives[0]), "same.yaml"))
    if "variant_summary" in plan:  # made before the deletion, so that it lists the deleted run
        study.snakemake("--configfile", config, "--", "results/runs/lr_x5/summary.csv")
    shutil.rmtree(home(study) / "results/runs/lr_x5/seed0")
    before = files(study)
    planned = study.planned_jobs("--configfile", config, "--", *target)
    assert planned == plan and files(study) == before
    ran = study.snakemake("--configfile", config, "--", *target)
    assert job_counts(ran.stdout + ran.stderr) == planned
    assert study.planned_jobs("--configfile", config, "--", *target) == {}
    retrained = (home(study) / "results/runs/lr_x5/seed0/summary.json").stat().st_mtime_ns
    made_by = {
        "results/aggregate/summary.csv": "aggregate",
        "results/aggregate/stats.md": "tables",
        "results/figures/accuracy.png": "figures",
        "report.html": "report",
        "results/runs/lr_x5/summary.csv": "variant_summary",
    }
    made_here = [home(study) / p for p, rule in made_by.items() if rule in plan]
    assert all(p.stat().st_mtime_ns >= retrained for p in made_here), "a file the target needed is older than its run"
    # Outside the target nothing was remade; the run came back byte for byte from the run cache, so
    # Snakemake (which compares the inputs' checksums) finds it current, and so it is.


def test_a_run_on_a_full_disk_ends_with_a_sentence(finished, tmp_path):
    """Issue 29.8: the report on a full disk ended in Snakemake's OSError from tempfile (it writes each
    rule's script to a temporary file before the job's own code runs)."""
    study = Workflow.copy_of(finished, tmp_path / "wf")
    folder, full = home(study), home(study).with_name("full")
    (folder / "report.html").unlink()
    folder.rename(full)
    folder.mkdir()
    size = sum(p.stat().st_size for p in full.rglob("*") if p.is_file())
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size + 2**20}", "tmpfs", str(folder)], check=False)
    if mount.returncode != 0:
        pytest.skip("cannot mount a small tmpfs to fill")
    try:
        shutil.copytree(full, folder, dirs_exist_ok=True, symlinks=True)
        with open(folder / "filler", "wb") as fh, pytest.raises(OSError, match="No space left"):
            fh.write(b"\0" * 2 * 2**20)
        proc = study.snakemake("--config", f"study={NAME}", "--", "report.html", check=False)
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"no space left on {folder} (0.0 MiB free)" in out, out
    assert "tempfile" not in out and "OSError" not in out
