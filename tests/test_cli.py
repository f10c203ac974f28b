"""lrstudy-train: the published run's command line through the same engine and files as the workflow."""

import contextlib
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from lrstudy.config import RECIPE_KEYS, defaults, recipe_from_param, recipe_of, recipe_param
from lrstudy.data.cifar10 import prepare
from lrstudy.schedule import words
from lrstudy.train import cli
from lrstudy.train.run import run_lock


@contextlib.contextmanager
def logging_of_the_command():
    """run_logged's handlers belong to a command's process; this one is pytest's: they go when it ends."""
    root_handlers = list(logging.getLogger().handlers)
    try:
        yield
    finally:
        for handler in set(logging.getLogger().handlers) - set(root_handlers):
            logging.getLogger().removeHandler(handler)
            handler.close()


def test_cli_run_and_resume_flag(archive, tmp_path):
    args = [
        "--archive",
        str(archive),
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--batch-size",
        "64",
        "--width",
        "4",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--train-limit",
        "200",
        "--lr-window",
        "2:3:2",
        "--out",
        str(tmp_path),
        "--tensorboard",
        str(tmp_path / "tb"),
    ]
    cli.main(args)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs_completed"] == 2 and summary["config"]["lr_windows"] == [
        {"start": 2, "end": 3, "factor": 2.0}
    ]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[2].split(",")[1] == repr(0.05 * 0.5 * 2)
    assert "[cli/seed0] epoch 2/2  lr" in (tmp_path / "train.log").read_text()
    cli.main(args + ["--resume"])  # no checkpoint left after a finished run: trains again from epoch 1
    assert json.loads((tmp_path / "summary.json").read_text())["resumed_from_epoch"] == 0


def test_a_refused_second_command_leaves_the_running_ones_log_and_checkpoint(archive, tmp_path):
    """Without --resume the command starts afresh, but only once it holds the run's lock: a second command on
    a busy OUT is refused before it deletes the checkpoint or empties train.log."""
    (tmp_path / "train.log").write_text("the running trainer's lines\n")
    (tmp_path / "checkpoint.pt").write_bytes(b"the running trainer's checkpoint")
    args = ["--archive", str(archive), "--epochs", "2", "--width", "4", "--device", "cpu", "--out", str(tmp_path)]
    with logging_of_the_command(), run_lock(tmp_path / "checkpoint.pt"):
        with pytest.raises(SystemExit, match="is being trained by pid"):
            cli.main(args + ["--train-limit", "200"])
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"the running trainer's checkpoint"
    assert (tmp_path / "train.log").read_text().startswith("the running trainer's lines\n")


def test_a_damaged_data_cache_is_named_with_how_to_rebuild_it_outside_the_workflow(archive, tmp_path):
    npz = tmp_path / "cifar10.npz"
    prepare(archive, npz, npz.with_suffix(".json"), train_limit=100, test_limit=None)
    damaged = bytearray(npz.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # the same size: only the sha256 recorded by prepare() tells
    npz.write_bytes(damaged)
    args = ["--data", str(npz), "--epochs", "1", "--width", "4", "--device", "cpu", "--out", str(tmp_path / "out")]
    with logging_of_the_command(), pytest.raises(SystemExit) as refused:
        cli.main(args)
    assert f"{npz} is damaged: its size or sha256 differs" in str(refused.value)
    assert "Rebuild it in the study that made it (snakemake --forcerun prepare_data, with --config study=NAME" in str(
        refused.value
    )
    assert "give --archive instead of --data" in str(refused.value)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_cli_rejects_a_window_outside_the_run(archive, tmp_path):
    with pytest.raises(SystemExit, match="command line.lr_windows\\[0\\]: window \\[2, 9\\) lies outside"):
        cli.main(["--archive", str(archive), "--epochs", "2", "--lr-window", "2:9:2", "--out", str(tmp_path)])


def test_make_local_writes_the_archive_and_its_own_md5(archive, tmp_path):
    import subprocess
    import sys

    import yaml

    from lrstudy.data.cifar10 import md5sum

    out = subprocess.run(
        [sys.executable, "-m", "lrstudy.data.local_settings", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    assert yaml.safe_load(out) == {"dataset": {"archive": str(archive.resolve()), "md5": md5sum(archive)}}
    assert "not the official archive's" in out
    bad = subprocess.run(
        [sys.executable, "-m", "lrstudy.data.local_settings", str(tmp_path / "none.tar.gz")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "none.tar.gz does not exist" in bad.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_local_refuses_a_file_that_is_not_cifar10_and_keeps_local_yaml(archive, tmp_path):
    """`make local ARCHIVE=README.md` wrote README.md over a good local.yaml (issue 32.8)."""
    shutil.copy(REPO / "Makefile", tmp_path)
    good = f"dataset: {{archive: {archive}, md5: abc}}\n"
    (tmp_path / "local.yaml").write_text(good)
    venv = Path(sys.prefix)  # this venv, as it is: -o keeps make from rebuilding it
    make = ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", "local"]
    bad = subprocess.run([*make, f"ARCHIVE={REPO / 'README.md'}"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0
    assert f"{REPO / 'README.md'} is not a CIFAR-10 archive (cifar-10-python.tar.gz): it is not gzip" in bad.stderr
    assert (tmp_path / "local.yaml").read_text() == good and sorted(p.name for p in tmp_path.iterdir()) == [
        "Makefile",
        "local.yaml",
    ]
    ok = subprocess.run([*make, f"ARCHIVE={archive}"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert yaml.safe_load((tmp_path / "local.yaml").read_text())["dataset"]["archive"] == str(archive.resolve())
    assert ok.stdout.startswith("# Machine-local settings")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_ends_by_naming_the_report(tmp_path):
    """The Makefile's demo, with snakemake replaced by `true`: after it, the report's path (issue 32.8)."""
    shutil.copy(REPO / "Makefile", tmp_path)
    venv = Path(sys.prefix)
    done = subprocess.run(
        ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", "SNAKEMAKE=true", "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == (
        f"The demo's report: studies/demo/report.html (in a browser: file://{tmp_path}/studies/demo/report.html)"
    )


# A study's step-schedule variant with every recipe key away from config.yaml's defaults, in the old spelling
# (schedule: step beside step_milestones) and in the new.
STEP = dict(
    epochs=12,
    batch_size=64,
    lr=0.08,
    momentum=0.85,
    nesterov=True,
    weight_decay=1e-4,
    schedule="step",
    step_milestones=[4, 9],
    step_gamma=0.3,
    lr_windows=[{"start": 2, "end": 4, "factor": 1.5}, {"start": 6, "end": 8, "factor": 0.25}],
    width=8,
    precision="fp32",
)
RECIPES = {
    "old spelling": STEP,
    "default milestones": {**STEP, "step_milestones": None, "nesterov": False},
    "inert step keys": {**STEP, "schedule": "cosine"},
    "one-cycle": {
        **{k: v for k, v in STEP.items() if not k.startswith("step_")},
        "schedule": {"name": "onecycle", "pct_start": 0.25, "anneal": "linear", "three_phase": True},
        "warmup": {"epochs": 1.5, "start_factor": 0.2},
        "lr_update": "step",
    },
}


@pytest.mark.parametrize("train", RECIPES.values(), ids=RECIPES)
def test_a_recipe_round_trips_through_the_flags_and_the_snakemake_params(train):
    recipe = recipe_of({**defaults()["train"], **train}, where="test")
    flags = cli.recipe_flags(recipe)
    assert recipe_of(cli.parse(["--data", "cache.npz", "--out", "out", *flags])[1], "command line") == recipe
    assert recipe_from_param(recipe_param(recipe), where="variants.x") == recipe  # common.smk -> scripts/train.py


def test_every_recipe_key_has_a_flag(capsys):
    with pytest.raises(SystemExit):
        cli.parse(["--help"])
    help_text = capsys.readouterr().out
    assert all(cli.flag(k) in help_text for k in RECIPE_KEYS)
    assert "--step-milestones" in help_text and "--step-gamma" in help_text and "--no-nesterov" in help_text
    assert "--warmup {...}|null" in help_text and "--lr-update {epoch,step}" in help_text


def test_the_docs_schedule_flags_give_the_schedule_they_say():
    flags = ["--schedule", "{name: wsd, decay: sqrt}", "--warmup", "{epochs: 5}", "--lr-update", "step"]
    recipe = recipe_of(cli.parse(["--data", "cache.npz", "--out", "out", *flags])[1], "command line")
    assert words(recipe) == "WSD: 20% sqrt decay, 5-epoch warmup, per step"


def test_a_bad_schedule_flag_is_a_sentence(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--data", "cache.npz", "--out", str(tmp_path), "--schedule", "{name: wsd, decay: sqr}"])
    err = capsys.readouterr().err
    assert "command line.schedule.decay: 'sqr' is not one of linear, cosine, sqrt (did you mean `sqrt`?)" in err
    assert "Traceback" not in err
