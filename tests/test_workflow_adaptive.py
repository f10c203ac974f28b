"""The adaptive design end to end on CPU: stage 1, the checkpoint's plan, the added seeds, and the plan,
the runs on disk, stats.csv and report.html agreeing; then raising max_seeds trains only what is missing."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import Workflow, small_study
from synthetic_runs import adaptive_design

from lrstudy.analysis import adaptive as ad
from lrstudy.analysis import stats as st

VARIANTS = ["baseline", "lr_x1.2", "blowup"]
CEILING = 4 * len(VARIANTS)  # max_seeds runs for every variant
TWO_AT_ONCE = ["--set-threads", "train=1"]  # these runs are mostly interpreter start-up: two share the cores


def adaptive_study(archive, max_seeds: int = 4) -> dict:
    """Two seeds a stage, one epoch on 200 images (the study's numbers do not matter here, only that
    plan, runs, tables and report agree). lr_x1.2 differs from the baseline by little, so its comparison
    stays open after stage 1: a 0.01-point effect is never shown negligible with 2 seeds, and power
    0.9999 leaves no room for futility. blowup diverges, so it stops at stage 1 with too few finished runs."""
    study = small_study(archive, epochs=1)
    study["dataset"].update(train_limit=200, test_limit=100)
    study["variants"] = {"baseline": {}, "lr_x1.2": {"lr": 0.06}, "blowup": {"lr": 1.0e12}}
    study["adaptive"] = {"max_seeds": max_seeds, "effect_pct": 0.01, "power": 0.9999}
    return study


def runs_on_disk(root) -> dict[str, list[int]]:
    found = {}
    for path in sorted((root / "results/runs").glob("*/seed*/summary.json")):
        found.setdefault(path.parent.parent.name, []).append(int(path.parent.name.removeprefix("seed")))
    return {v: sorted(s) for v, s in found.items()}


pytestmark = pytest.mark.workflow  # every test here plans or runs a study through Snakemake


@pytest.fixture(scope="module")
def study(tmp_path_factory, archive):
    wf = Workflow(tmp_path_factory.mktemp("adaptive") / "wf")
    cfg = wf.write_config(adaptive_study(archive))
    first = wf.planned_jobs("--configfile", str(cfg))
    wf.snakemake("--configfile", str(cfg), *TWO_AT_ONCE)
    return wf, cfg, first


def test_a_dry_run_shows_the_first_stage_until_the_checkpoint_has_run(study):
    _, _, first = study
    assert first["train"] == 2 * len(VARIANTS) and first["plan_stage"] == 1


def test_plan_runs_stats_and_report_agree(study):
    wf, _, _ = study
    plan = pd.read_csv(wf.root / "results/aggregate/seed_plan.csv")
    assert {"variant", "stage", "seeds", "decision", "reason"} <= set(plan.columns)
    last = plan.groupby("variant").tail(1).set_index("variant")
    # lr_x1.2 was open after stage 1 and looked at again after stage 2; blowup stopped at once.
    assert plan.query("variant == 'lr_x1.2' and stage == 1")["decision"].item() == ad.OPEN
    assert last.loc["lr_x1.2", "stage"] == 2 and last.loc["lr_x1.2", "decision"] != ad.OPEN
    assert (last.loc["blowup", "stage"], last.loc["blowup", "decision"]) == (1, ad.TOO_FEW)
    assert runs_on_disk(wf.root) == {"baseline": [0, 1, 2, 3], "blowup": [0, 1], "lr_x1.2": [0, 1, 2, 3]}

    summary = pd.read_csv(wf.root / "results/aggregate/summary.csv")
    assert sorted(zip(summary["variant"], summary["seed"], strict=False)) == sorted(
        (v, s) for v, seeds in runs_on_disk(wf.root).items() for s in seeds
    )
    stats = pd.read_csv(wf.root / "results/aggregate/stats.csv").set_index("variant")
    assert stats["stages"].to_dict() == {"baseline": 2, "lr_x1.2": 2, "blowup": 1}
    assert stats.loc["lr_x1.2", "verdict"] == ad.VERDICTS[last.loc["lr_x1.2", "decision"]]
    looks = plan.query("variant == 'lr_x1.2'")
    assert stats.loc["lr_x1.2", "p_value"] == pytest.approx(looks["sequential_p_value"].min())
    assert stats.loc["blowup", "verdict"] == st.ALL_DIVERGED

    html = (wf.root / "report.html").read_text()
    section = html[html.index('id="adaptive"') : html.index('id="figures"')]
    assert f"ran <strong>{len(summary)} runs</strong>" in section and f"would have taken {CEILING}" in section
    assert f"{CEILING - len(summary)} runs saved" in section
    assert "Lan &amp; DeMets 1983" in section
    reference = f"baseline is the reference: it ran {len(runs_on_disk(wf.root)['baseline'])} seeds"
    assert reference in section
    for variant in [v for v in VARIANTS if v != "baseline"]:  # one plain sentence each, then the numbers
        numbers = r"<details><summary>the numbers</summary>\s*(\d+) runs?, (\d+) stage"
        row = re.search(rf"<li>[^<]*{re.escape(variant)}[^<]*{numbers}", section)
        assert row and (int(row[1]), int(row[2])) == (len(runs_on_disk(wf.root)[variant]), stats.loc[variant, "stages"])


def test_nothing_to_do_after_the_study_and_one_added_run_can_be_targeted(study):
    wf, cfg, _ = study
    assert wf.planned_jobs("--configfile", str(cfg)) == {}
    forced = wf.planned_jobs("--configfile", str(cfg), "-f", "--", "results/runs/lr_x1.2/seed3/metrics.csv")
    assert forced == {"train": 1}
    beyond = wf.snakemake("-n", "--configfile", str(cfg), "--", "results/runs/lr_x1.2/seed4/metrics.csv", check=False)
    assert beyond.returncode != 0 and "results/runs/lr_x1.2/seed4: no such run" in beyond.stdout + beyond.stderr


def test_raising_max_seeds_trains_only_the_missing_runs(study, archive):
    wf, _, _ = study
    before = {p: p.stat().st_mtime_ns for p in (wf.root / "results/runs").glob("*/seed*/metrics.csv")}
    raised = wf.write_config(adaptive_study(archive, max_seeds=6), "raised.yaml")
    wf.snakemake("--configfile", str(raised), *TWO_AT_ONCE)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "an existing run was trained again"
    plan = pd.read_csv(wf.root / "results/aggregate/seed_plan.csv")
    design = adaptive_design(stage_seeds=2, max_seeds=6, effect_pct=0.01, power=0.9999)
    planned = ad.planned_seeds(design, plan, VARIANTS, "baseline", [0, 1])
    assert runs_on_disk(wf.root) == {v: planned[v] for v in sorted(VARIANTS)}
    assert len(pd.read_csv(wf.root / "results/aggregate/summary.csv")) == sum(map(len, planned.values()))


@pytest.mark.parametrize(
    "seeds, adaptive, message",
    [
        (
            [0, 1],
            {"max_seeds": 3, "effect_pct": 0.2, "power": 0.8},
            "adaptive.max_seeds: 3 is less than the minimum of 4",
        ),
        ([0, 1, 2], {"max_seeds": 5, "effect_pct": 0.2, "power": 0.8}, "adaptive.max_seeds: 5 leaves no second stage"),
        ([0], {"max_seeds": 4, "effect_pct": 0.2, "power": 0.8}, "the first stage needs at least 2"),
        ([0, 1], {"max_seeds": 4, "effect": 0.2}, "adaptive: unknown key 'effect' (did you mean `effect_pct`?)"),
    ],
)
def test_a_bad_adaptive_config_names_the_key(workflow, archive, seeds, adaptive, message):
    cfg = workflow.write_config({**small_study(archive), "seeds": seeds, "adaptive": adaptive})
    proc = workflow.snakemake("-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (workflow.root / "results").exists()


def test_turning_adaptive_off_removes_the_seed_plans_and_keeps_every_run(study, archive):
    """Issue 29.8: the old seed_plan.csv and stage plans stayed beside the fixed design's new stats.csv."""
    wf, _, _ = study
    runs = runs_on_disk(wf.root)
    fixed = {k: v for k, v in adaptive_study(archive).items() if k != "adaptive"}
    cfg = str(wf.write_config(fixed, "fixed.yaml"))
    # TensorBoard's folder too: the later stages' runs leave it with the study.
    analysis = {"aggregate": 1, "figures": 1, "tables": 1, "report": 1, "tensorboard": 1, "all": 1}
    assert wf.planned_jobs("--configfile", cfg) == analysis
    wf.snakemake("--configfile", cfg)
    aggregate = wf.root / "results/aggregate"
    assert not (aggregate / "seed_plan.csv").exists() and not (aggregate / "seed_plan").exists()
    assert runs_on_disk(wf.root) == runs  # the later stages' runs stay, outside the fixed study
    assert wf.planned_jobs("--configfile", cfg) == {}
