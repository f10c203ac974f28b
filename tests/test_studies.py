"""A study is a named thing: the card's commands work as typed, a named study keeps its files and its
config in a place of its own, and machine-local settings are read by every command."""

import fcntl
import json
import logging
import os
import shutil

import pytest
import synthetic_archive
import yaml
from conftest import REPO, job_counts, small_study
from test_engine import cache, run  # noqa: F401 (the cache fixture is shared)

from lrstudy.logs import run_logged
from lrstudy.train.run import RunBusyError, run_lock


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
    # The whole study is report.html and, with execution.tensorboard, results/tensorboard/ made from the runs
    # (docs/report-and-statistics.md): `report.html` leaves the study's TensorBoard folder to the plain run.
    proc = workflow.snakemake("--cores", "1", "--resources", "gpu=1", cores=False)
    assert job_counts(proc.stdout + proc.stderr) == {"tensorboard": 1, "all": 1}
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
    # A cache damaged in place (the same size: the plan cannot tell) stops the job that reads it, with the
    # command that rebuilds it for this study; rebuilding it retrains nothing.
    runs = {p: p.stat().st_mtime_ns for p in home.glob("results/runs/*/seed0/summary.json")}
    npz = home / "results/data/cifar10.npz"
    damaged = bytearray(npz.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    npz.write_bytes(damaged)
    more_seeds = workflow.write_config({"study": "demo", "seeds": [0, 1]}, "more-seeds.yaml")
    proc = workflow.snakemake("--configfile", str(more_seeds), check=False)
    rebuild = ["--config", "study=demo", "--forcerun", "prepare_data", "--", "results/data/cifar10.npz"]
    assert proc.returncode != 0 and f"Rebuild it with: snakemake {' '.join(rebuild)} (finished" in proc.stderr
    workflow.snakemake(*rebuild)
    assert {p: p.stat().st_mtime_ns for p in runs} == runs
    assert workflow.planned_jobs("--configfile", str(cfg)) == {}
    # The default study is another study: it plans its own (full-size) runs, leaving the demo alone.
    assert workflow.planned_jobs()["train"] == 12


def test_a_study_never_named_before_needs_its_config(workflow):
    proc = workflow.snakemake("-n", "--config", "study=nothing", check=False)
    assert proc.returncode != 0 and "study 'nothing' has no remembered config" in proc.stdout + proc.stderr


def test_a_dry_run_of_a_new_study_writes_nothing(workflow, archive):
    local_yaml(workflow, archive)
    cfg = workflow.write_config({"study": "fresh", "seeds": [0]}, "fresh.yaml")
    before = sorted(workflow.root.rglob("*"))
    jobs = workflow.planned_jobs("--configfile", str(cfg))
    assert jobs["train"] == 4  # planned in full (4 variants, 1 seed): the study has no files yet
    proc = workflow.snakemake("-n", "--config", "study=never", check=False)
    assert "study 'never' has no remembered config" in proc.stdout + proc.stderr
    assert sorted(workflow.root.rglob("*")) == before


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


def test_a_refused_second_trainer_leaves_the_first_ones_log_alone(cache, tmp_path):  # noqa: F811
    """Snakemake empties a train job's declared log before the job starts, so the trainer keeps its own log
    (appended to, across resumes), opened only once it holds the run's lock: the refused job writes to
    its declared log alone, and says where the running trainer logs."""
    ckpt = tmp_path / "ckpt" / "seed0.pt"
    trainer_log = tmp_path / "logs" / "seed0.trainer.log"
    run(cache, tmp_path / "first", checkpoint=ckpt, trainer_log=trainer_log)
    first = trainer_log.read_text()
    assert "run v seed 0 done" in first

    root_handlers = list(logging.getLogger().handlers)
    job_log = tmp_path / "logs" / "seed0.log"
    try:
        with run_lock(ckpt, trainer_log):  # as the running trainer holds it
            with pytest.raises(SystemExit, match=f"is being trained by pid {os.getpid()}.*logging to {trainer_log}"):
                run_logged(
                    job_log,
                    lambda: run(cache, tmp_path / "second", checkpoint=ckpt, trainer_log=trainer_log),
                    expected=(RunBusyError,),
                )
    finally:  # run_logged's handlers belong to a job process; this one is pytest's
        for handler in set(logging.getLogger().handlers) - set(root_handlers):
            logging.getLogger().removeHandler(handler)
            handler.close()
    assert trainer_log.read_text() == first
    assert f"logging to {trainer_log}" in job_log.read_text()

    run(cache, tmp_path / "again", checkpoint=ckpt, trainer_log=trainer_log)  # the next trainer appends
    assert trainer_log.read_text().startswith(first) and trainer_log.read_text().count("run v seed 0 done") == 2


@pytest.mark.system  # trains with two threads on a two-core machine: make test, not the fast tier
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


def test_any_spelling_of_any_studys_report_is_found(tmp_path, monkeypatch):
    """Issue 20.4: from a named study, ../../report.html, an absolute path, a hard link or a symbolic link
    to the default study's report.html is that report (compared by device and inode)."""
    from lrstudy.studies import study_report_at

    project = tmp_path / "project"
    (project / "studies" / "m1").mkdir(parents=True)
    (project / "report.html").write_text("default")
    (project / "studies" / "m1" / "report.html").write_text("m1")
    monkeypatch.chdir(project / "studies" / "m1")
    os.link(project / "report.html", "hard.html")
    os.symlink(project / "report.html", "soft.html")
    for spelling in ("../../report.html", str(project / "report.html"), "hard.html", "soft.html"):
        assert study_report_at(spelling, project) == project / "report.html", spelling
    assert study_report_at("report.html", project) == project / "studies" / "m1" / "report.html"
    assert study_report_at("snakemake-report.html", project) is None
    (project / "report.html").unlink()
    assert study_report_at("../../report.html", project) == project / "report.html"  # not made yet: by path


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", ""])
def test_a_study_name_that_is_not_a_folder_name_is_refused_before_anything_is_suggested(tmp_path, name):
    """Issue 20.11: `--config study=../x` suggested starting it with `study: ../x`, a name then refused."""
    from lrstudy.config import ConfigError
    from lrstudy.studies import assemble

    (tmp_path / "config.yaml").write_text("study: default\n")
    with pytest.raises(ConfigError, match="invalid config: study: .* is not a study name") as error:
        assemble(tmp_path, {"study": name})
    assert "has no remembered config" not in str(error.value)


def test_a_damaged_archive_set_in_local_yaml_is_named_by_its_path(workflow, archive, tmp_path):
    """An archive that starts as one (the check as the workflow starts passes) but cannot be read: the
    prepare_data job names local.yaml's path (issue 32.8; it said "a truncated or corrupt download? Delete
    it", then "set in local.yaml or the study's config")."""
    from lrstudy.data.cifar10 import md5sum

    damaged = tmp_path / "cifar-10-python.tar.gz"
    damaged.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    (workflow.root / "local.yaml").write_text(
        yaml.safe_dump({"dataset": {"archive": str(damaged), "md5": md5sum(damaged)}, "execution": {"device": "cpu"}})
    )
    proc = workflow.snakemake("--until", "prepare_data", check=False)
    assert proc.returncode != 0
    assert f"it is {damaged}, dataset.archive (set in {workflow.root / 'local.yaml'}): point" in proc.stderr


def test_a_missing_archive_is_named_with_the_file_that_set_it(tmp_path):
    """Issue 20.8: a wrong dataset.archive in local.yaml passed `-n` and failed 30 s into the run without
    saying where it came from; now the config is refused before any job, naming local.yaml."""
    from lrstudy.config import ConfigError
    from lrstudy.studies import assemble

    (tmp_path / "config.yaml").write_text("study: default\ndataset: {archive: null}\n")
    (tmp_path / "local.yaml").write_text(f"dataset: {{archive: {tmp_path / 'gone.tar.gz'}}}\n")
    with pytest.raises(
        ConfigError, match=f"gone.tar.gz does not exist or is not a file \\(set in {tmp_path / 'local.yaml'}\\)"
    ):
        assemble(tmp_path, {})
    with pytest.raises(ConfigError, match="elsewhere.tar.gz does not exist .*set in the command line"):
        assemble(tmp_path, {"dataset": {"archive": str(tmp_path / "elsewhere.tar.gz")}})
    # A file that is not a CIFAR-10 archive (issue 32.8: prepare_data said "a truncated or corrupt
    # download? Delete it"): refused as it starts, naming local.yaml.
    shutil.copy(REPO / "README.md", tmp_path / "gone.tar.gz")
    where = f"\\(set in {tmp_path / 'local.yaml'}\\)"
    with pytest.raises(ConfigError, match=f"gone.tar.gz is not a CIFAR-10 archive: it is not gzip-compressed {where}"):
        assemble(tmp_path, {})
    synthetic_archive.write_archive(tmp_path / "gone.tar.gz", train_per_batch=2, test=2)
    assert assemble(tmp_path, {})[0]["dataset"]["archive"] == str(tmp_path / "gone.tar.gz")
