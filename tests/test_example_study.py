"""config/example_study.yaml, the study a researcher copies: it plans as its comments say, and a tiny
version of it (the same file, then a second --configfile shrinking the data, the width and the seeds; the
epochs stay, as the step milestones and the window need them) runs end to end."""

import pandas as pd
import pytest
import yaml
from conftest import REPO, synthetic_md5

EXAMPLE = "config/example_study.yaml"
VARIANTS = ["baseline", "nesterov", "lr_x2_e2-4", "lr_x5_e2-4"]


def test_the_example_is_a_complete_study_to_copy():
    study = yaml.safe_load((REPO / EXAMPLE).read_text())
    assert study["study"] == "example"
    assert study["train"]["schedule"]["name"] == "step"
    assert study["variants"]["baseline"] == {} and len(study["variants"]) >= 2  # a hand-written variant
    assert study["grid"] and len(study["seeds"]) >= 2
    assert "adaptive" not in study  # commented out, but shown
    assert "# adaptive:" in (REPO / EXAMPLE).read_text()


@pytest.mark.workflow
def test_the_example_plans_its_variants_by_name(workflow, archive):
    local = {"dataset": {"archive": str(archive), "md5": synthetic_md5(archive)}}
    (workflow.root / "local.yaml").write_text(yaml.safe_dump(local))
    out = workflow.snakemake("-n", "--configfile", EXAMPLE).stdout
    assert workflow.planned_jobs("--configfile", EXAMPLE)["train"] == 8, out
    for variant in VARIANTS:
        assert f"variant={variant}, seed=1" in out
    assert not (workflow.root / "studies/example/study.yaml").exists()  # a dry run remembers nothing


@pytest.mark.workflow
def test_a_tiny_version_of_the_example_runs_end_to_end(workflow, archive):
    tiny = workflow.write_config(
        {
            "dataset": {"archive": str(archive), "md5": synthetic_md5(archive), "train_limit": 200, "test_limit": 100},
            "train": {"width": 4, "batch_size": 100},
            "execution": {"cpu_threads": 1},
            "seeds": [0],  # one run per variant: what is tested here is that every part of the example runs
        },
        "tiny.yaml",
    )
    workflow.snakemake("--configfile", EXAMPLE, str(tiny))
    root = workflow.root / "studies/example"
    stats = pd.read_csv(root / "results/aggregate/stats.csv")
    assert stats["variant"].tolist() == VARIANTS
    assert (stats["n"] == 1).all() and (root / "report.html").is_file()
    lr = pd.read_csv(root / "results/runs/lr_x5_e2-4/seed0/metrics.csv")["lr"].tolist()
    # step schedule (x0.2 from epochs 4 and 6) with the grid's window x5 on epochs 2 and 3
    assert lr == pytest.approx([0.05, 0.25, 0.25, 0.01, 0.01, 0.002])
    assert workflow.planned_jobs("--config", "study=example") == {}  # remembered: later commands need only the name
