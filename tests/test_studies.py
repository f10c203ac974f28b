"""A study is a named thing: the card's commands work as typed, a named study keeps its files and its
config in a place of its own, and machine-local settings are read by every command."""

import fcntl
import json

import pytest
import yaml
from conftest import small_study
from test_engine import cache, run  # noqa: F401 (the cache fixture is shared)

from lrstudy.train.run import RunBusyError


def local_yaml(wf, archive):
    """The machine-local file: where the archive is, once for every command."""
    study = small_study(archive)
    (wf.root / "local.yaml").write_text(yaml.safe_dump({"dataset": study["dataset"], "execution": {"device": "cpu"}}))


def tiny_defaults(wf):
    """Shrink the project's defaults (config.yaml) so that the default study trains in seconds."""
    cfg = yaml.safe_load((wf.root / "config.yaml").read_text())
    cfg["train"].update(epochs=2, batch_size=50, width=4, precision="fp32")
    cfg["variants"] = {"baseline": {}, "lr_x5": {"lr_windows": [{"start": 2, "end": 3, "factor": 5.0}]}}
    cfg["seeds"] = [0]
    (wf.root / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_the_cards_commands_work_as_typed(workflow, archive):
    local_yaml(workflow, archive)
    tiny_defaults(workflow)
    proc = workflow.snakemake("report.html", cores=False)  # no --cores: the workflow profile gives it
    assert proc.returncode == 0 and (workflow.root / "report.html").is_file()
    proc = workflow.snakemake("--cores", "1", "--resources", "gpu=1", cores=False)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    proc = workflow.snakemake("results/runs/lr_x5/summary.csv", cores=False)
    assert (workflow.root / "results/runs/lr_x5/summary.csv").is_file()


def test_a_named_study_lives_apart_and_remembers_its_config(workflow, archive):
    local_yaml(workflow, archive)
    demo = small_study(archive, epochs=2)
    demo = {"study": "demo", **{k: demo[k] for k in ("train", "variants", "seeds")}}
    demo["seeds"] = [0]
    cfg = workflow.write_config(demo, "demo.yaml")
    workflow.snakemake("--configfile", str(cfg))
    home = workflow.root / "studies/demo"
    assert (home / "report.html").is_file() and (home / "results/runs/lr_x5/seed0/summary.json").is_file()
    assert not (workflow.root / "results").exists() and not (workflow.root / "report.html").exists()
    assert yaml.safe_load((home / "study.yaml").read_text())["train"]["epochs"] == 2
    # Later commands name the study only; its files and config are found again.
    assert workflow.planned_jobs("--config", "study=demo") == {}
    jobs = workflow.planned_jobs(
        "--config", "study=demo", "--forcerun", "train", "--", "results/runs/lr_x5/summary.csv"
    )
    assert jobs == {"train": 1, "variant_summary": 1}
    workflow.snakemake("--config", "study=demo", "--report", "results/snakemake-report.zip")
    assert (home / "results/snakemake-report.zip").stat().st_size > 10_000
    # The default study is another study: it plans its own (full-size) runs, leaving the demo alone.
    assert workflow.planned_jobs()["train"] == 12


def test_a_study_never_named_before_needs_its_config(workflow):
    proc = workflow.snakemake("-n", "--config", "study=nothing", check=False)
    assert proc.returncode != 0 and "study 'nothing' has no remembered config" in proc.stdout + proc.stderr


def test_local_settings_outside_dataset_and_execution_are_refused(workflow):
    (workflow.root / "local.yaml").write_text("train: {epochs: 3}\n")
    proc = workflow.snakemake("-n", check=False)
    assert proc.returncode != 0 and "local.yaml: only machine-local settings belong here" in proc.stdout + proc.stderr


def test_a_second_trainer_on_the_same_run_stops_with_a_message(cache, tmp_path):  # noqa: F811
    ckpt = tmp_path / "ckpt" / "seed0.pt"
    ckpt.parent.mkdir()
    with open(ckpt.with_name("seed0.pt.lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on somewhere\n")
        held.flush()
        with pytest.raises(RunBusyError, match="is being trained by pid 4242 on somewhere"):
            run(cache, tmp_path / "second", checkpoint=ckpt)
    assert not (tmp_path / "second" / "metrics.csv").exists()
    run(cache, tmp_path / "after", checkpoint=ckpt)  # released: the run goes ahead
    assert (tmp_path / "after" / "metrics.csv").is_file()


def test_the_thread_count_is_the_runs_own_and_survives_a_resume(cache, tmp_path, monkeypatch):  # noqa: F811
    import torch

    from lrstudy.train.engine import Trainer

    torch.set_num_threads(1)  # as a job started under --cores 1 would be
    straight = run(cache, tmp_path / "straight", cpu_threads=2)
    assert straight["execution"]["cpu_threads_used"] == 2

    ckpt = tmp_path / "c.pt"
    real_run = Trainer.run

    def stop_after_one(self, checkpoint_path=None, on_epoch=None, on_batch=None):
        def hook(row):
            if row["epoch"] == 1:
                raise KeyboardInterrupt

        return real_run(self, checkpoint_path, on_epoch=hook, on_batch=on_batch)

    monkeypatch.setattr(Trainer, "run", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        run(cache, tmp_path / "killed", checkpoint=ckpt, cpu_threads=2)
    monkeypatch.setattr(Trainer, "run", real_run)
    resumed = run(cache, tmp_path / "resumed", checkpoint=ckpt, cpu_threads=1)  # resumed under fewer cores
    assert resumed["resumed_from_epoch"] == 1 and resumed["execution"]["cpu_threads_used"] == 2
    strip = lambda p: [line.rsplit(",", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp_path / "resumed/metrics.csv") == strip(tmp_path / "straight/metrics.csv")
    assert json.loads((tmp_path / "resumed/summary.json").read_text())["final_test_acc"] == straight["final_test_acc"]
