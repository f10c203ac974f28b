"""The whole workflow on CPU, on a small learnable archive: every output, real learning, and reruns
that touch only what changed."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import small_study, synthetic_md5

RUNS = [(v, s) for v in ("baseline", "lr_x5") for s in (0, 1)]


pytestmark = pytest.mark.workflow  # every test here plans or runs a study through Snakemake


@pytest.fixture(scope="module")
def finished(tmp_path_factory, archive):
    """One complete study, shared by the tests below (they only read it or dry-run against it)."""
    from conftest import Workflow

    wf = Workflow(tmp_path_factory.mktemp("study") / "wf")
    cfg = wf.write_config(small_study(archive))
    wf.snakemake("--configfile", str(cfg), "--resources", "gpu=1")
    return wf, cfg


def test_the_reports_config_leaves_out_this_machines_archive_path(finished, archive):
    wf, _ = finished
    html = (wf.root / "report.html").read_text()
    assert str(archive) not in html and "archive:" not in html
    assert f"md5: {synthetic_md5(archive)}" in html  # the data is still named


def test_every_output_is_there(finished):
    wf, _ = finished
    root = wf.root
    for variant, seed in RUNS:
        run = root / f"results/runs/{variant}/seed{seed}"
        for name in ("metrics.csv", "summary.json", "model.pt"):
            assert (run / name).is_file(), run / name
        assert (root / f"logs/train/{variant}/seed{seed}.log").is_file()
        # The trainer's own log, which a refused second job cannot empty (tests/test_studies.py).
        assert f"run {variant} seed {seed} done" in (root / f"logs/train/{variant}/seed{seed}.trainer.log").read_text()
        assert (root / f"benchmarks/train/{variant}/seed{seed}.tsv").is_file()
        assert not (root / f"results/checkpoints/{variant}/seed{seed}.pt").exists()
    for name in ("epochs.csv", "summary.csv", "stats.csv"):
        assert (root / "results/aggregate" / name).is_file()
    assert list((root / "results/figures").glob("*.png"))
    html = (root / "report.html").read_text()
    assert "lr_x5" in html and "data:image/png;base64," in html
    assert (root / "resources/cifar-10-python.tar.gz").is_symlink()
    assert (root / "results/data/cifar10.npz").is_file()


def test_tables_and_report_say_what_each_variant_ran(finished):
    wf, _ = finished
    stats = pd.read_csv(wf.root / "results/aggregate/stats.csv").set_index("variant")
    described = [
        "window_start",
        "window_end",
        "window_factor",
        "epochs",
        "lr",
        "batch_size",
        "schedule",
        "width",
        "train_size",
        "test_size",
    ]
    assert stats.loc["lr_x5", described].tolist() == [2, 3, 5, 4, 0.05, 50, "cosine", 4, 1000, 300]
    html = (wf.root / "report.html").read_text()
    assert "Scale: 4 epochs, 1,000 training images and 300 test images, ResNet18 at width 4, batch 50" in html
    assert (
        "not at the published run's scale: 4 epochs instead of 200, 1,000 training images instead of 50,000, "
        "300 test images instead of 10,000, width 4 instead of 64, batch 50 instead of 256."
    ) in html
    assert "lr_x5 (x5 for epoch 2)" in html and "cuda (training)" not in html


def test_runs_learn_and_record_the_schedule(finished):
    wf, _ = finished
    for variant, seed in RUNS:
        m = pd.read_csv(wf.root / f"results/runs/{variant}/seed{seed}/metrics.csv")
        assert list(m.columns) == [
            "epoch",
            "lr",
            "lr_last",
            "train_loss",
            "train_acc",
            "test_loss",
            "test_acc",
            "epoch_seconds",
        ]
        assert (m["lr_last"] == m["lr"]).all()  # per epoch: every step of an epoch at its lr
        assert m["epoch"].tolist() == [1, 2, 3, 4]
        summary = json.loads((wf.root / f"results/runs/{variant}/seed{seed}/summary.json").read_text())
        # 10 classes: chance is 0.1. The lr_x5 window (lr 0.25 for an epoch) costs accuracy in so short a run.
        assert summary["final_test_acc"] > (0.6 if variant == "baseline" else 0.3), (variant, seed)
        assert summary["final_test_acc"] == m["test_acc"].iloc[-1]
    base = pd.read_csv(wf.root / "results/runs/baseline/seed0/metrics.csv")["lr"]
    bumped = pd.read_csv(wf.root / "results/runs/lr_x5/seed0/metrics.csv")["lr"]
    assert bumped[1] == pytest.approx(5 * base[1]) and bumped[2] == pytest.approx(base[2])
    epochs = pd.read_csv(wf.root / "results/aggregate/epochs.csv")
    assert len(epochs) == 4 * len(RUNS)


def test_nothing_to_do_after_a_full_run(finished):
    wf, cfg = finished
    assert wf.planned_jobs("--configfile", str(cfg)) == {}


def test_changing_one_variant_reruns_only_that_variant(finished, archive):
    wf, _ = finished
    study = small_study(archive)
    study["variants"]["lr_x5"]["lr_windows"][0]["factor"] = 3.0
    changed = wf.write_config(study, "changed.yaml")
    out = wf.snakemake("-n", "--configfile", str(changed)).stdout
    jobs = wf.planned_jobs("--configfile", str(changed))
    assert jobs.get("train") == 2, out  # lr_x5 seeds 0 and 1; the baseline is untouched
    assert "wildcards: variant=lr_x5, seed=0" in out and "variant=baseline" not in out
    assert "download" not in jobs and "prepare_data" not in jobs


def test_one_run_target_builds_only_that_run(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    jobs = workflow.planned_jobs("--configfile", str(cfg), "--", "results/runs/lr_x5/seed1/metrics.csv")
    assert jobs == {"download": 1, "prepare_data": 1, "train": 1}


def test_one_variant_target_builds_exactly_that_variant(workflow, archive):
    cfg = workflow.write_config(small_study(archive))
    out = workflow.snakemake("-n", "--configfile", str(cfg), "--", "results/runs/lr_x5/summary.csv").stdout
    jobs = workflow.planned_jobs("--configfile", str(cfg), "--", "results/runs/lr_x5/summary.csv")
    assert jobs == {"download": 1, "prepare_data": 1, "train": 2, "variant_summary": 1}
    assert "variant=baseline" not in out


def test_variant_summary_has_one_row_per_seed_and_the_recipe(finished):
    wf, cfg = finished
    wf.snakemake("--configfile", str(cfg), "--", "results/runs/lr_x5/summary.csv")
    table = pd.read_csv(wf.root / "results/runs/lr_x5/summary.csv")
    assert table["variant"].tolist() == ["lr_x5", "lr_x5"] and table["seed"].tolist() == [0, 1]
    assert wf.planned_jobs("--configfile", str(cfg)) == {}  # the default target did not need it


def test_execution_settings_never_retrain(finished, archive):
    wf, _ = finished
    study = small_study(
        archive, eval_batch_size=7, checkpoint_every=3, compile=True, cuda_graph=True, cpu_threads=2, tensorboard=False
    )
    jobs = wf.planned_jobs("--configfile", str(wf.write_config(study, "exec.yaml")))
    assert set(jobs) == {"report", "all"}, jobs  # the report shows the config; nothing is retrained


def test_figure_settings_redraw_only_the_figures_and_the_report(finished, archive):
    wf, _ = finished
    study = {**small_study(archive), "figures": {"seed_lines": True}}
    jobs = wf.planned_jobs("--configfile", str(wf.write_config(study, "figures.yaml")))
    assert set(jobs) == {"figures", "report", "all"}, jobs


def test_an_identical_archive_elsewhere_retrains_nothing(finished, archive, tmp_path):
    wf, _ = finished
    copy = tmp_path / "elsewhere" / "copy.tar.gz"
    copy.parent.mkdir()
    copy.write_bytes(archive.read_bytes())
    study = small_study(archive)
    study["dataset"]["archive"] = str(copy)
    jobs = wf.planned_jobs("--configfile", str(wf.write_config(study, "moved.yaml")))
    assert set(jobs) <= {"download"}, jobs  # the link is remade; the data and the runs are the same


def test_every_run_records_its_code_and_execution(finished):
    wf, _ = finished
    s = json.loads((wf.root / "results/runs/baseline/seed0/summary.json").read_text())
    assert len(s["code"]["engine_fingerprint"]) == 16
    assert set(s["code"]) == {"commit", "dirty", "engine_fingerprint"}
    assert s["execution"]["device"] == "cpu" and s["execution"]["cpu_threads_used"] == 1
    assert "eval_batch_size" not in s["config"] and s["config"]["width"] == 4
    assert s["execution"]["tensorboard"] and list((wf.root / "results/tensorboard/baseline/seed0").glob("events.out.*"))
    html = (wf.root / "report.html").read_text()
    assert s["code"]["engine_fingerprint"] in html and "Mixed code" not in html


def test_moving_the_project_reruns_nothing(finished, tmp_path):
    wf, cfg = finished
    moved = tmp_path / "moved" / "wf"
    shutil.copytree(wf.root, moved, symlinks=True)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "-n", "--configfile", str(moved / cfg.name)],
        cwd=moved,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("how", ["absolute", "dotdot", "equals", "plugin", "hardlink"])
def test_snakemakes_report_never_replaces_the_studys(finished, how):
    wf, cfg = finished
    before = (wf.root / "report.html").read_bytes()
    alias = wf.root / "results" / "alias.html"
    if how == "hardlink" and not alias.exists():
        os.link(wf.root / "report.html", alias)
    args = {
        "absolute": ["--report", str(wf.root / "report.html")],
        "dotdot": ["--report", f"../{wf.root.name}/report.html"],
        "equals": ["--report=./report.html"],
        "plugin": ["--reporter", "html", "--report-html-path", "report.html"],
        "hardlink": ["--report", "results/alias.html"],
    }[how]
    proc = wf.snakemake("--configfile", str(cfg), *args, check=False)
    assert proc.returncode != 0 and "over the study report" in proc.stdout + proc.stderr
    assert (wf.root / "report.html").read_bytes() == before


def test_a_target_swallowed_by_forcerun_retrains_nothing(finished):
    wf, cfg = finished
    runs = {p: p.stat().st_mtime_ns for p in (wf.root / "results/runs").glob("*/seed*/summary.json")}
    proc = wf.snakemake("--configfile", str(cfg), "--forcerun", "train", "results/runs/lr_x5/summary.csv", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "every run forced to retrain" in out
    # the user's own command, --configfile kept (without it, it acted on the default study)
    assert f"snakemake --cores 2 --configfile {cfg} --forcerun train -- results/runs/lr_x5/summary.csv" in out
    assert {p: p.stat().st_mtime_ns for p in runs} == runs


def test_a_damaged_cache_loses_no_run_and_says_how_to_rebuild(finished, archive):
    wf, cfg = finished
    npz = wf.root / "results/data/cifar10.npz"
    runs = {p: p.stat().st_mtime_ns for p in (wf.root / "results/runs").glob("*/seed*/summary.json")}
    with open(npz, "r+b") as fh:
        fh.truncate(1000)
    proc = wf.snakemake("--configfile", str(cfg))
    assert "cifar10.npz is damaged" in proc.stderr and "snakemake --forcerun prepare_data" in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in runs} == runs  # nothing retrained, nothing deleted
    study = small_study(archive)
    study["seeds"] = [0, 1, 2]
    more = wf.write_config(study, "more.yaml")
    proc = wf.snakemake("--configfile", str(more), "--", "results/runs/baseline/seed2/metrics.csv", check=False)
    assert proc.returncode != 0 and "results/data/cifar10.npz is damaged" in proc.stdout + proc.stderr
    wf.snakemake("--configfile", str(cfg), "--forcerun", "prepare_data", "--", "results/data/cifar10.npz")
    assert {p: p.stat().st_mtime_ns for p in runs} == runs
    assert wf.planned_jobs("--configfile", str(cfg)) == {}


def test_a_deleted_run_is_trained_again_and_leaves_the_report(finished):
    wf, cfg = finished
    shutil.rmtree(wf.root / "results/runs/lr_x5/seed1")
    proc = wf.snakemake("--configfile", str(cfg))
    assert "runs deleted since the tables were made: lr_x5/seed1" in proc.stderr
    assert (wf.root / "results/runs/lr_x5/seed1/summary.json").is_file()
    assert len(pd.read_csv(wf.root / "results/aggregate/summary.csv")) == 4
    assert wf.planned_jobs("--configfile", str(cfg)) == {}
