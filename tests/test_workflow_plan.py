"""The workflow's plan (lrstudy/workflow_plan.py) and the run cache, in-process: what common.smk builds when
the Snakefile is parsed, from a fake workflow and a study folder made by hand. Nothing here starts
Snakemake; tests/test_workflow_updates.py runs the same behaviours end to end."""

from __future__ import annotations

import json
import logging
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake_interface_executor_plugins.settings import ExecMode

from lrstudy import run_cache
from lrstudy.analysis.aggregate import drop_seed_plans
from lrstudy.config import ConfigError, recipe_of, run_hash
from lrstudy.studies import assemble
from lrstudy.tools import run_cache as run_cache_cli
from lrstudy.workflow_plan import TOKEN, PlanError, plan_of

REPO = Path(__file__).resolve().parent.parent
MD5 = "0123456789abcdef0123456789abcdef"
META = {"md5": MD5, "sha256": "ab" * 32, "train_size": 100, "test_size": 50, "train_limit": None, "test_limit": None}
STUDY = {
    "study": "s",
    "dataset": {"md5": MD5},
    "train": {"epochs": 2, "batch_size": 50, "width": 4, "precision": "fp32"},
    "execution": {"device": "cpu"},
    "variants": {"baseline": {}, "lr_x5": {"lr_windows": [{"start": 2, "end": 3, "factor": 5.0}]}},
    "seeds": [0],
}


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder: the workflow's config.yaml and schema, a named study `s` remembered, its dataset
    cache described, its two runs finished."""
    root = tmp_path / "project"
    (root / "workflow/schemas").mkdir(parents=True)
    shutil.copy(REPO / "config.yaml", root)
    shutil.copy(REPO / "workflow/schemas/config.schema.yaml", root / "workflow/schemas")
    home = root / "studies/s"
    (home / "results/data").mkdir(parents=True)
    (home / "study.yaml").write_text(yaml.safe_dump(STUDY))
    (home / "results/data/cifar10.json").write_text(json.dumps(META))
    for variant, over in STUDY["variants"].items():
        finish_run(home, variant, 0, {**STUDY["train"], **over})
    return root


def finish_run(home: Path, variant: str, seed: int, recipe: dict, engine: str = "e" * 16, meta=META) -> Path:
    """The files a train job leaves: model.pt, metrics.csv, summary.json (written last). Snakemake removes a
    job's old outputs first, and the job writes new files (never into the old ones, which the run cache
    may hold)."""
    parsed = recipe_of({**yaml.safe_load((REPO / "config.yaml").read_text())["train"], **recipe}, "t")
    full = parsed.as_dict()
    folder = home / "results/runs" / variant / f"seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"weights of " + json.dumps(full).encode())
    (folder / "metrics.csv").write_text("epoch,lr\n1,0.05\n")
    summary = {
        "variant": variant,
        "seed": seed,
        "config": full,
        "config_hash": run_hash(parsed, seed, meta),
        "dataset": {k: meta[k] for k in ("md5", "sha256", "train_size", "test_size")},
        "code": {"engine_fingerprint": engine},
        "final_test_acc": 0.5,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def plan(project: Path, *argv: str, config: dict | None = None, mode=ExecMode.DEFAULT):
    """plan_of as common.smk calls it, for `snakemake ARGV` with `config` given on the command line."""
    workflow = SimpleNamespace(
        basedir=str(project),
        exec_mode=mode,
        config_settings=SimpleNamespace(overwrite_config=config if config is not None else {"study": "s"}),
        configfiles=[],
        persistence=None,
        storage_settings=SimpleNamespace(default_storage_provider=None),  # no bucket: the study on this disk
    )
    return plan_of(workflow, ["--cores", "1", *argv])


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_a_partial_config_is_layered_over_what_the_study_remembered(project):
    """Issue 29.1: `--configfile p.yaml` naming the study and an MLflow store replaced the remembered config,
    so the study planned config.yaml's 12 full-size runs."""
    partial = {"study": "s", "mlflow": {"tracking_uri": "file:///data/mlruns"}, "stats": {"multiplicity": "none"}}
    config, own = assemble(project, partial, check_files=False)
    assert config["train"]["width"] == 4 and list(config["variants"]) == ["baseline", "lr_x5"]
    assert config["mlflow"]["tracking_uri"] == "file:///data/mlruns" and config["stats"]["multiplicity"] == "none"
    assert own == {**STUDY, "mlflow": partial["mlflow"], "stats": partial["stats"]}
    # variants and seeds are replaced as a whole, only when given
    config, _ = assemble(project, {"study": "s", "seeds": [3], "variants": {"other": {"lr": 0.2}}}, check_files=False)
    assert config["seeds"] == [3] and list(config["variants"]) == ["other"] and config["train"]["epochs"] == 2


def test_starting_over_is_asked_for_explicitly(project):
    fresh = {"study": "s", "seeds": [5]}
    config, own = assemble(project, fresh, check_files=False, starts_over=True)
    assert config["train"]["width"] == 64 and own == fresh  # config.yaml's recipe, not the remembered one
    with pytest.raises(ConfigError, match="--replace-workflow-config starts study 's' over from the config given"):
        assemble(project, {"study": "s"}, check_files=False, starts_over=True)


def test_the_plan_reads_the_study_and_writes_nothing(project):
    home = project / "studies/s"
    before = tree(project)
    p = plan(project, "-n", config={"study": "s", "variants": {"baseline": {}, "lr_x5": {"lr": 0.2}}})
    assert tree(project) == before
    assert (p.home, p.workdir) == (home, home) and p.cache_is_current
    assert p.current_runs == {"baseline/seed0"} and set(p.replaced) == {"lr_x5/seed0"}
    assert p.replaced["lr_x5/seed0"] == "recipe: lr, lr_windows"
    assert p.to_remember["variants"]["lr_x5"] == {"lr": 0.2} and p.to_remember["train"]["width"] == 4
    assert p.src("report/x") == "../../report/x"
    # another dataset: every run is replaced, saying why
    other = {"study": "s", "dataset": {"md5": "f" * 32}}
    assert plan(project, "-n", config=other).replaced == {r: f"data: md5 {MD5} -> {'f' * 32}" for r in p.finished}


def test_the_runs_a_command_forces(project):
    assert plan(project, "-n").forced == set()
    assert plan(project, "-n", "--forcerun", "train").forced == {"baseline/seed0", "lr_x5/seed0"}
    assert plan(project, "-n", "-F").forced == {"baseline/seed0", "lr_x5/seed0"}
    assert plan(project, "-n", "-f", "results/runs/lr_x5/seed0/metrics.csv").forced == {"lr_x5/seed0"}
    assert plan(project, "-n", "--forcerun", "results/runs/lr_x5/seed0/model.pt", "--", "report.html").forced == {
        "lr_x5/seed0"
    }
    assert plan(project, "-n", "-f", "report.html").forced == set()
    with pytest.raises(PlanError, match="Put `--` before the targets"):
        plan(project, "--forcerun", "train", "results/runs/lr_x5/summary.csv")


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "study=s", "--forcerun", "train", "results/runs/lr_x5/summary.csv", "-j", "2"],
        ["--configfile", "my study.yaml", "-R", "train", "results/runs/lr_x5/summary.csv", "report.html"],
    ],
)
def test_the_forcerun_refusal_suggests_the_users_own_command_with_dashes(project, argv):
    """It suggested `snakemake --forcerun train -- results/...`: the user's --config study=s or --configfile
    dropped, so the command as given acted on the default study."""
    with pytest.raises(PlanError) as refused:
        plan(project, *argv)
    swallowed = [a for a in argv if a.startswith("results/") or a == "report.html"]
    suggested = shlex.split(str(refused.value).split("Put `--` before the targets: ")[1])
    assert suggested == ["snakemake", "--cores", "1", *(a for a in argv if a not in swallowed), "--", *swallowed]
    with pytest.raises(PlanError, match="--no-hooks"):
        plan(project, "--no-hooks")


def test_a_run_deleted_after_the_tables_changes_their_token_once(project):
    """The tables' params token (Plan.runs_token): the value last recorded while nothing is missing, a new
    one when a listed run is gone, and that one again once the run is back: a run converges."""
    home = project / "studies/s"
    (home / "results/aggregate").mkdir(parents=True)
    (home / "results/aggregate/summary.csv").write_text("variant,seed\nbaseline,0\nlr_x5,0\n")
    recorded = {}

    def token_now():
        p = plan(project, "-n")
        persistence = SimpleNamespace(params=lambda f: [repr(v) for v in recorded.get(str(f), [])])
        p = p.__class__(**{**p.__dict__, "workflow": SimpleNamespace(persistence=persistence)})
        return p.runs_token("results/aggregate/epochs.csv")(SimpleNamespace(items=lambda: []))

    assert token_now() == []  # made before the token: as recorded then
    shutil.rmtree(home / "results/runs/lr_x5/seed0")
    changed = token_now()
    assert changed != [] and changed[0].startswith(TOKEN)
    recorded["results/aggregate/epochs.csv"] = ["other", changed]  # the run that remade the tables recorded it
    finish_run(home, "lr_x5", 0, {**STUDY["train"], **STUDY["variants"]["lr_x5"]})
    assert token_now() == changed  # nothing missing: what was recorded, so nothing to do


def test_on_start_remembers_keeps_every_run_and_drops_what_is_forced(project):
    home = project / "studies/s"
    (home / "study.yaml").unlink()
    plan(project, config=STUDY).on_start()
    assert yaml.safe_load((home / "study.yaml").read_text()) == STUDY
    kept = run_cache.entries(home)
    assert [(e.variant, e.seed) for e in kept] == [("baseline", 0), ("lr_x5", 0)]
    for entry in kept:  # hard links: no second copy
        assert (entry.path / "model.pt").stat().st_ino == (
            home / "results/runs" / entry.variant / "seed0/model.pt"
        ).stat().st_ino
    assert all(run_cache.in_place(home, e) for e in kept) and list(run_cache.superseded(home)) == []
    plan(project, "-f", "results/runs/lr_x5/seed0/metrics.csv").on_start()
    assert [(e.variant, e.seed) for e in run_cache.entries(home)] == [("baseline", 0)]


def full_recipe(**keys):
    return recipe_of({**yaml.safe_load((REPO / "config.yaml").read_text())["train"], **STUDY["train"], **keys}, "t")


def test_a_superseded_run_is_found_again_and_restored(project):
    home = project / "studies/s"
    folder = home / "results/runs/lr_x5/seed0"
    run_cache.keep(home, folder)  # as on_start, or the train job that made it, does
    original = {name: (folder / name).read_bytes() for name in run_cache.RUN_FILES}
    finish_run(home, "lr_x5", 0, {**STUDY["train"], "lr": 0.2})  # the config changed: replaced in place
    board = home / "results/tensorboard/lr_x5/seed0"
    board.mkdir(parents=True)
    (board / "events.out").write_text("the curves of lr 0.2")
    run_cache.keep(home, folder)
    [superseded] = run_cache.superseded(home)
    meta = home / "results/data/cifar10.json"
    windows = STUDY["variants"]["lr_x5"]["lr_windows"]
    assert run_cache.kept_run(home, "lr_x5", 0, full_recipe(lr_windows=windows), meta) == superseded
    assert run_cache.kept_run(home, "lr_x5", 0, full_recipe(lr=0.3), meta) is None  # never made
    run_cache.restore(superseded, {name: folder / name for name in run_cache.RUN_FILES}, board)
    assert {name: (folder / name).read_bytes() for name in run_cache.RUN_FILES} == original
    assert run_cache.in_place(home, superseded)
    assert not board.exists()  # the replaced run's curves went with it; the restored run had none
    [now_superseded] = run_cache.superseded(home)
    assert (now_superseded.path / "tensorboard/events.out").read_text() == "the curves of lr 0.2"


def test_the_run_cache_lists_and_prunes_only_superseded_runs(project, capsys):
    home = project / "studies/s"
    recipe = {**STUDY["train"], **STUDY["variants"]["lr_x5"]}
    run_cache.keep(home, home / "results/runs/baseline/seed0")
    run_cache.keep(home, home / "results/runs/lr_x5/seed0")
    finish_run(home, "lr_x5", 0, {**recipe, "lr": 0.2})
    run_cache.keep(home, home / "results/runs/lr_x5/seed0")
    assert run_cache_cli.main(["--study", "s", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    assert "3 kept runs" in out and "2 in place (no extra disk), 1 superseded" in out
    assert run_cache_cli.main(["prune", "-n", "--study", "s", "--root", str(project)]) == 0
    assert "1 superseded runs to prune" in capsys.readouterr().out and len(run_cache.entries(home)) == 3
    assert run_cache_cli.main(["prune", "--variant", "baseline", "--study", "s", "--root", str(project)]) == 0
    assert len(run_cache.entries(home)) == 3
    assert run_cache_cli.main(["prune", "--study", "s", "--root", str(project)]) == 0
    assert [run_cache.in_place(home, e) for e in run_cache.entries(home)] == [True, True]
    with pytest.raises(SystemExit):
        run_cache_cli.main(["--study", "nowhere", "--root", str(project)])


def test_a_fixed_designs_tables_remove_the_adaptive_seed_plans(tmp_path):
    """Issue 29.8: turning `adaptive` off left seed_plan.csv and the stage plans beside the new stats.csv."""
    (tmp_path / "seed_plan").mkdir()
    for name in ("seed_plan.csv", "seed_plan/stage1.csv", "seed_plan/stage2.csv", "stats.csv"):
        (tmp_path / name).write_text("x\n")
    assert [p.name for p in drop_seed_plans(tmp_path)] == ["seed_plan.csv", "stage1.csv", "stage2.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.csv"]
    assert drop_seed_plans(tmp_path) == []


def test_a_run_that_failed_on_a_full_disk_ends_saying_so(project, caplog):
    p = plan(project, "-n")
    p.on_error()
    assert "no space left" not in caplog.text
    p.disk_full.emit(logging.makeLogRecord({"msg": "OSError: [Errno 28] No space left on device"}))
    p.on_error()
    assert f"no space left on {project / 'studies/s'} (" in caplog.text


DRY_RUN = """Job stats:
job          count
---------  -------
train            1
aggregate        1
all              1
total            3

Reasons:
    (check individual jobs above for details)
    input files updated by another job:
        aggregate, all
    output files have to be generated:
        train
Some jobs were triggered by provenance information, see 'reason' section in the rule displays above.
"""


def test_a_studys_status_is_read_from_snakemakes_dry_run():
    from lrstudy.study_status import StudyStatus, job_counts, reasons

    status = StudyStatus("demo", job_counts(DRY_RUN), reasons(DRY_RUN))
    assert status.jobs == {"train": 1, "aggregate": 1, "all": 1} and not status.up_to_date
    assert status.reasons == {
        "input files updated by another job": ["aggregate", "all"],
        "output files have to be generated": ["train"],
    }
    assert status.describe().startswith(
        "study demo is out of date: `snakemake --config study=demo` would run 1 train, 1 aggregate ("
    )
    assert StudyStatus("default", {}).describe() == "study default is up to date"


def test_a_damaged_cache_is_rebuilt_by_a_command_that_names_the_study(project, caplog):
    """The suggested command, copied as given, acts on this study: without `--config study=s` it would plan
    config.yaml's default study."""
    home = project / "studies/s"
    (home / "results/data/cifar10.json").write_text(json.dumps({**META, "npz_size": 1000}))
    (home / "results/data/cifar10.npz").write_bytes(b"x" * 10)
    with caplog.at_level(logging.WARNING):
        plan(project, "-n", mode=ExecMode.DEFAULT)
    assert "snakemake --config study=s --forcerun prepare_data -- results/data/cifar10.npz" in caplog.text
