"""Runs made before schedules were mappings keep their identity: the params text and run hash that decide
whether Snakemake retrains a run are what lrstudy at 23d6a0a wrote (tests/golden/before_schedules/,
made by that commit), and such a run's files still validate and describe themselves."""

import json
import shutil
from pathlib import Path

import pytest

from lrstudy.analysis.variants import description
from lrstudy.config import checked_study, defaults, merge, parsed_recipe, recipe_from_param, recipe_param, run_hash
from lrstudy.validation import read_run

BEFORE = Path(__file__).resolve().parent / "golden" / "before_schedules"
OLD = json.loads((BEFORE / "identities.json").read_text())


@pytest.mark.parametrize("study", OLD["studies"])
def test_an_old_study_config_gives_its_runs_the_params_and_hashes_they_had(study):
    """A study written in the old spelling (schedule: step beside step_milestones and step_gamma, and a
    cosine or constant variant that inherited them) plans every run with the params text it was trained
    with: Snakemake retrains a run whose params changed."""
    recipes = checked_study(merge(defaults(), OLD["studies"][study])).recipes
    for variant, recipe in recipes.items():
        key = f"{study}/{variant}"
        assert recipe_param(recipe) == OLD["params"][key], key
        assert run_hash(recipe, OLD["seed"], OLD["dataset"]) == OLD["run_hash"][key], key
        assert recipe_param(recipe_from_param(OLD["params"][key], key)) == OLD["params"][key]


def test_the_new_spelling_of_an_old_schedule_is_the_same_run():
    old = checked_study(merge(defaults(), OLD["studies"]["example"])).recipes["baseline"]
    over = {**OLD["studies"]["example"], "train": {**OLD["studies"]["example"]["train"]}}
    for key in ("step_milestones", "step_gamma"):
        del over["train"][key]
    over["train"]["schedule"] = {"name": "step", "milestones": [4, 6], "gamma": 0.2}
    assert recipe_param(checked_study(merge(defaults(), over)).recipes["baseline"]) == recipe_param(old)


def test_a_run_made_before_validates_and_describes_itself(tmp_path):
    run = tmp_path / "results" / "runs" / "cli" / "seed7"
    shutil.copytree(BEFORE, run, ignore=shutil.ignore_patterns("identities.json"))
    summary, metrics = read_run(run)  # no lr_last column, no steps_per_epoch, the old config
    assert "lr_last" not in (run / "metrics.csv").read_text() and "steps_per_epoch" not in summary
    assert metrics["lr_last"].tolist() == metrics["lr"].tolist()  # its lr changed once per epoch
    recipe = parsed_recipe(summary["config"], "config")
    assert run_hash(recipe, summary["seed"], summary["dataset"]) == summary["config_hash"]
    described = description(summary, "summary.json")
    assert (described["schedule"], described["schedule.gamma"], described["lr_update"]) == ("step", 0.1, "epoch")
    assert described["lr_schedule"] == "step x0.1 at 1/2 and 3/4 of the run"
