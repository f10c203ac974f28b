"""config/studies/, the three worked schedule studies (docs/configuration.md, "Schedules"): each plans at its
own scale, and a tiny version of each (the same file, then a second --configfile with fewer images,
epochs, a narrower model and one seed) runs: its tables say each schedule in words, its runs' lr follow it
at every step, and one of them (the cheapest way to cover the figures and the report) goes on to its report."""

import json

import pandas as pd
import pytest
import yaml
from conftest import REPO, synthetic_md5

from lrstudy.config import parsed_recipe
from lrstudy.schedule import epoch_lrs

STUDIES = {  # file -> (study name, its variants' schedules in words)
    "warmup_large_batch": (
        "warmup-large-batch",
        {"baseline": "cosine down to 0, per step", "warmup": "cosine down to 0, 5-epoch warmup, per step"},
    ),
    "wsd_vs_cosine": (
        "wsd-vs-cosine",
        {
            "baseline": "cosine down to 0, 2-epoch warmup, per step",
            "wsd_linear": "WSD: 20% linear decay, 2-epoch warmup, per step",
            "wsd_sqrt": "WSD: 20% sqrt decay, 2-epoch warmup, per step",
        },
    ),
    "onecycle_short": (
        "onecycle-short",
        {
            "baseline": "cosine down to 0, per step",
            "onecycle": "one-cycle from 0.016 to 0.4 at 25%, cosine down to 1.6e-05, per step",
            "triangle": "one-cycle from 0.016 to 0.4 at 25%, linear down to 1.6e-05, per step",
        },
    ),
}


def local(workflow, archive):
    (workflow.root / "local.yaml").write_text(
        yaml.safe_dump({"dataset": {"archive": str(archive), "md5": synthetic_md5(archive)}})
    )


def test_each_study_plans_its_variants_at_its_own_scale(workflow, archive):
    local(workflow, archive)
    for file, (name, schedules) in STUDIES.items():
        path = f"config/studies/{file}.yaml"
        assert yaml.safe_load((REPO / path).read_text())["study"] == name
        assert workflow.planned_jobs("--configfile", path)["train"] == 3 * len(schedules), file
    assert not (workflow.root / "studies").exists()  # a dry run writes nothing


@pytest.mark.parametrize("file", STUDIES)
def test_a_tiny_version_runs_and_says_each_schedule(workflow, archive, file):
    name, schedules = STUDIES[file]
    tiny = workflow.write_config(
        {
            "dataset": {"archive": str(archive), "md5": synthetic_md5(archive), "train_limit": 200, "test_limit": 100},
            "train": {"epochs": 6, "batch_size": 50, "width": 4, "precision": "fp32"},  # 4 steps per epoch
            "execution": {"device": "cpu", "cpu_threads": 1},
            "seeds": [0],
        },
        "tiny.yaml",
    )
    report = file == "wsd_vs_cosine"
    target = [] if report else ["--", "results/aggregate/stats.csv"]
    workflow.snakemake("--configfile", f"config/studies/{file}.yaml", str(tiny), *target)
    root = workflow.root / "studies" / name
    stats = pd.read_csv(root / "results/aggregate/stats.csv").set_index("variant")
    assert stats["lr_schedule"].to_dict() == schedules
    if report:
        html = (root / "report.html").read_text()
        assert all(f"{variant} ({words})" in html for variant, words in schedules.items())
        assert (root / "results/figures/lr.png").is_file()
    for variant in schedules:
        run = root / "results/runs" / variant / "seed0"
        summary = json.loads((run / "summary.json").read_text())
        recipe = parsed_recipe(summary["config"], "config")
        assert summary["steps_per_epoch"] == 4 and summary["config"]["lr_update"] == "step"
        metrics = pd.read_csv(run / "metrics.csv")
        expected = [lr for e in range(1, 7) for lr in epoch_lrs(recipe, e, 4)]
        assert metrics[["lr", "lr_last"]].to_numpy().ravel().tolist() == pytest.approx(expected, rel=1e-6)
        assert (metrics["lr"] != metrics["lr_last"]).any()  # the lr moved inside epochs
