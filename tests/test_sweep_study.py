"""config/studies/lr_wd_sweep.yaml, the worked sweep (docs/configuration.md, "Sweeps"): `snakemake -n` lists
its variants by name, and a tiny version of it (the same file, then a second --configfile with fewer
images, 2 epochs, width 4 and one seed) runs to its report: every run records its cell's lr and weight
decay, the sweep figures are drawn, and stats.md and report.html show the sweep as a table of its own."""

import json

import pandas as pd
import yaml
from conftest import REPO, job_counts, synthetic_md5

STUDY = "config/studies/lr_wd_sweep.yaml"
CELLS = {f"lr{lr}_wd{wd}": (float(lr), float(wd)) for lr in ("0.05", "0.2", "0.4") for wd in ("0.0001", "0.001")}
FIGURES = ["sweep_lr", "sweep_weight_decay", "heatmap_lr_weight_decay"]


def test_the_worked_sweep_plans_its_cells_by_name_and_a_tiny_version_runs_to_its_report(workflow, archive):
    assert yaml.safe_load((REPO / STUDY).read_text())["study"] == "lr-wd-sweep"
    local = {"dataset": {"archive": str(archive), "md5": synthetic_md5(archive)}}
    (workflow.root / "local.yaml").write_text(yaml.safe_dump(local))
    plan = workflow.snakemake("-n", "--configfile", STUDY).stdout
    assert job_counts(plan)["train"] == 14
    assert all(f"variant={v}, seed=1" in plan for v in [*CELLS, "baseline"])
    assert not (workflow.root / "studies").exists()  # a dry run writes nothing

    tiny = workflow.write_config(
        {
            "dataset": {"train_limit": 200, "test_limit": 100},
            "train": {"epochs": 2, "batch_size": 50, "width": 4},
            "execution": {"cpu_threads": 1, "tensorboard": False},
            "seeds": [0],  # one run per cell: what is tested here is that every part of the sweep runs
        },
        "tiny.yaml",
    )
    workflow.snakemake("--configfile", STUDY, str(tiny))
    root = workflow.root / "studies/lr-wd-sweep"
    runs = pd.read_csv(root / "results/aggregate/summary.csv").set_index("variant")
    assert list(runs.index) == ["baseline", *CELLS]
    for variant, (lr, wd) in CELLS.items():
        config = json.loads((root / f"results/runs/{variant}/seed0/summary.json").read_text())["config"]
        assert (
            (config["lr"], config["weight_decay"])
            == (lr, wd)
            == (runs.loc[variant, "lr"], runs.loc[variant, "weight_decay"])
        )
    for name in FIGURES:
        assert (root / f"results/figures/{name}.png").stat().st_size > 10_000
        assert (root / f"results/figures/{name}.svg").is_file()
    md = (root / "results/aggregate/stats.md").read_text()
    assert "Sweep grid[0]: lr \u00d7 weight_decay (3 \u00d7 2)" in md and "| lr | weight_decay | Variant |" in md
    html = (root / "report.html").read_text()
    assert 'id="sweep-0"' in html and "The best cell is lr " in html and "Mean final accuracy per cell" in html
    assert workflow.planned_jobs("--config", "study=lr-wd-sweep") == {}  # remembered, and up to date
