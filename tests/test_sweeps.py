"""Sweeps over any recipe key (issue 31): grid entries that cross recipe keys and a schedule's or warmup's
parameters, their names, refusals and planning cost (lrstudy/grid.py); the sweep figures, tables and
report (lrstudy/analysis/sweeps.py, sweep_figures.py, tables.py, report.py) on synthetic runs; windows x
factors grids made before crosses keep their names and runs (tests/golden/before_sweeps/)."""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from pathlib import Path

import matplotlib.colors
import pandas as pd
import pytest
from synthetic_runs import build_report, sweep_study

from lrstudy import grid
from lrstudy.analysis import sweep_figures as sf
from lrstudy.analysis import tables
from lrstudy.analysis.figures import write_figures
from lrstudy.analysis.stats import study_stats
from lrstudy.analysis.variants import description
from lrstudy.config import ConfigError, checked_study, defaults, merge, recipe_param, run_hash
from lrstudy.names_regex import one_of

BEFORE = Path(__file__).resolve().parent / "golden" / "before_sweeps"


def study_of(over: dict):
    return checked_study(merge(defaults(), {"study": "s", "variants": {"baseline": {}}, **over}))


LR_WD = {"cross": {"lr": [0.05, 0.1, 0.2], "weight_decay": [5.0e-4, 1.0e-3]}}
ONECYCLE = {
    "cross": {"schedule.pct_start": [0.1, 0.3]},
    "recipe": {"schedule": {"name": "onecycle"}, "lr_update": "step"},
}
WARMUP = {"cross": {"warmup.epochs": [1, 5], "batch_size": [512, 1024]}, "recipe": {"lr": 0.4}}


# --------------------------------------------------------------------------------------------- config


def test_every_combination_is_a_variant_whose_recorded_recipe_carries_exactly_its_values():
    study = study_of({"grid": [LR_WD, ONECYCLE, WARMUP]})
    assert study.variants == [
        "baseline",
        *(f"lr{lr}_wd{wd}" for lr in ("0.05", "0.1", "0.2") for wd in ("0.0005", "0.001")),
        "pct_start0.1",
        "pct_start0.3",
        "warmup1_bs512",
        "warmup1_bs1024",
        "warmup5_bs512",
        "warmup5_bs1024",
    ]
    dataset = {"train_size": 50000, "test_size": 10000}
    for sweep in study.sweeps:
        for name, combo in sweep.variants:
            recorded = study.recipes[name].as_dict()  # summary.json's `config`
            columns = description({"config": recorded, "dataset": dataset}, name)  # summary.csv's columns
            for key, value in zip(sweep.keys, combo, strict=True):
                head, _, param = key.partition(".")
                assert (recorded[head][param] if param else recorded[head]) == value, (name, key)
                assert columns[key] == value, (name, key)
            # what the entry shares, and the base recipe elsewhere
            assert recorded["lr_update"] == ("step" if sweep.entry == 1 else "epoch")
            assert recorded["lr"] == (
                0.4 if sweep.entry == 2 else dict(zip(sweep.keys, combo, strict=True)).get("lr", 0.1)
            )
    onecycle = study.recipes["pct_start0.3"].as_dict()["schedule"]
    assert onecycle == {**onecycle, "name": "onecycle", "pct_start": 0.3, "div_factor": 25.0}
    assert study.recipes["warmup5_bs1024"].as_dict()["warmup"] == {"epochs": 5.0, "start_factor": 0.1}


def test_a_name_depends_on_its_own_entry_alone_and_a_pattern_names_it():
    alone = study_of({"grid": [ONECYCLE]})
    after = study_of({"grid": [LR_WD, {"cross": {"momentum": [0.8]}}, ONECYCLE]})
    assert alone.sweeps[0].names == after.sweeps[2].names == ["pct_start0.1", "pct_start0.3"]
    assert [recipe_param(alone.recipes[n]) for n in alone.sweeps[0].names] == [
        recipe_param(after.recipes[n]) for n in after.sweeps[2].names
    ]  # the same name is the same run
    named = study_of({"grid": [{**ONECYCLE, "name": "onecycle_p{schedule.pct_start}"}]})
    assert named.variants == ["baseline", "onecycle_p0.1", "onecycle_p0.3"]
    words = study_of({"grid": [{"cross": {"schedule": ["cosine", "wsd"], "nesterov": [True], "lr_update": ["step"]}}]})
    assert words.variants[1:] == ["cosine_nesterov-true_per-step", "wsd_nesterov-true_per-step"]


@pytest.mark.parametrize(
    "grid_, message",
    [
        (
            [{"cross": {"weigth_decay": [1.0e-4]}}],
            "grid[0].cross: unknown key 'weigth_decay' (did you mean `weight_decay`?); a cross takes recipe keys",
        ),
        (
            [{"cross": {"schedule.pct_strat": [0.1]}}],
            "unknown key 'schedule.pct_strat' (did you mean `schedule.pct_start`?)",
        ),
        ([{"cross": {"lr_windows": [[]]}}], "grid[0].cross.lr_windows: lr windows are swept by an entry of their own"),
        ([{**LR_WD, "recipe": {"lr": 0.3}}], "grid[0]: lr is both swept (cross) and fixed (recipe: 0.3); keep one"),
        (
            [{"cross": {"schedule": ["cosine", "wsd"]}, "recipe": {"schedule": {"name": "wsd"}}}],
            "grid[0]: schedule is both swept (cross) and fixed (recipe: wsd); keep one",
        ),
        (
            [{"cross": {"schedule": [{"name": "cosine"}, {"name": "wsd"}]}}],
            "grid[0].cross.schedule: a mapping cannot name a variant; cross its parts by dotted key "
            "(schedule.name, schedule.eta_min, schedule.milestones, ...), or write the variants under `variants:`",
        ),
        (
            [{"cross": {"warmup": [{"epochs": 5}]}}],
            "grid[0].cross.warmup: a mapping cannot name a variant; cross its parts by dotted key (warmup.epochs,",
        ),
        ([{**LR_WD, "name": "x{lrr}"}], "grid[0].name: 'x{lrr}': unknown field {lrr} (did you mean `lr`?)"),
        (
            [{**LR_WD, "name": "a{lr}"}],
            "grid[0].name: 'a{lr}' names two variants 'a0.05' (lr 0.05, weight_decay 0.0005 and lr 0.05, "
            "weight_decay 0.001): put every swept key in it, e.g. name: 'lr{lr}_wd{weight_decay}'",
        ),
        (
            [{"cross": {"lr": [0.1]}}, {"cross": {"lr": [0.1]}, "recipe": {"schedule": "wsd"}}],
            "grid[1]: variant 'lr0.1' is already made by grid[0]; give this entry a `name:` pattern that sets it "
            "apart, e.g. name: 'wsd_lr{lr}'",
        ),
        ([{"cross": {"momentum": [0.9]}, "name": "baseline"}], "variant 'baseline' is already made under `variants:`"),
        ([{"cross": {"lr": [0.1, -0.1]}}], "invalid config: grid[0].cross.lr[1]: -0.1 is less than or equal to"),
        (
            [{**ONECYCLE, "cross": {"schedule.pct_start": [0.3, 1.5]}}],
            "variants.pct_start1.5.schedule.pct_start: 1.5 must be strictly between 0 and 1 (the variant "
            "pct_start1.5 is made by grid[0])",
        ),
        ([{**LR_WD, "factors": [2]}], "grid[0]: an entry crosses recipe keys (`cross`) or lr windows"),
        ([{"name": "x"}], "grid[0]: give `cross: {key: [values], ...}` (any recipe keys) or `windows` and `factors`"),
        ([{"cross": {"lr": [0.1]}, "name": "a b{lr}"}], "the variant name 'a b0.1' is not a valid name"),
    ],
)
def test_a_bad_cross_is_refused_in_a_sentence_that_says_what_to_write(grid_, message):
    with pytest.raises(ConfigError) as error:
        study_of({"grid": grid_})
    assert message in str(error.value)


def test_a_sweep_of_a_thousand_variants_plans_in_well_under_a_second_of_cpu():
    """What common.smk does with the config at parse time, for 10 x 10 x 10 variants: expand and check
    them, the figure list, the sweeps' params text and the wildcard constraint. Snakemake's own planning
    of their 3,000 jobs is measured in docs/configuration.md (tools/sweep_plan_time.py)."""
    cross = {
        "lr": [round(0.01 * 1.5**k, 5) for k in range(10)],
        "weight_decay": [round(1e-5 * 2**k, 8) for k in range(10)],
        "momentum": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99],
    }
    start = time.process_time()
    study = study_of({"grid": [{"cross": cross}]})
    figures = grid.figure_names([{"cross": cross}], study.sweeps)
    params = grid.sweeps_param(study.sweeps)
    constraint = re.compile(f"(?:{one_of(study.variants)})$")
    cpu = time.process_time() - start
    assert len(study.variants) == 1001 and len(set(study.variants)) == 1001
    assert figures == ["sweep_lr", "sweep_weight_decay", "sweep_momentum"]  # no heatmap for three keys
    assert grid.sweeps_from_param(params) == list(study.sweeps)
    assert all(constraint.match(v) for v in study.variants) and not constraint.match("lr0.01_wd1e-05_mom0.51")
    assert cpu < 3.0, f"{cpu:.1f} CPU-s"  # about 0.5 on this repository's 2-core VM


def test_the_wildcard_constraint_is_a_compact_regex_of_exactly_the_variants():
    names = ["baseline", "lr_x5", "lr_x0.5", "lr_x5_e2-4", "a", "ab", "lr0.1", "lr0.15", "x.y"]
    exact = re.compile(f"(?:{one_of(names)})$")
    assert all(exact.match(n) for n in names)
    assert not any(exact.match(n) for n in ["", "lr", "lr0.", "lr0.12", "abc", "lr_x", "lr_x5_e2-", "xzy", "baselines"])
    lrs, wds = [0.01 * k for k in range(1, 31)], [1e-4 * k for k in range(1, 31)]
    product = [f"lr{lr:g}_wd{wd:g}" for lr, wd in itertools.product(lrs, wds)]
    assert len(one_of(product)) < len("|".join(map(re.escape, product))) / 3


def test_windows_by_factors_grids_keep_the_names_and_runs_they_had_before_crosses():
    """tests/golden/before_sweeps/identities.json: what lrstudy before sweeps (its `made_by`) named the
    variants of windows x factors grids (default and own name patterns, a shared recipe, several windows),
    and each run's params text and hash: Snakemake retrains a run whose params changed."""
    old = json.loads((BEFORE / "identities.json").read_text())
    for name, config in old["studies"].items():
        study = checked_study(merge(defaults(), config))
        assert study.variants == old["variants"][name] and study.sweeps == ()
        assert grid.figure_names(config["grid"], study.sweeps) == ["sweep"]
        for variant, recipe in study.recipes.items():
            key = f"{name}/{variant}"
            assert recipe_param(recipe) == old["params"][key], key
            assert run_hash(recipe, old["seed"], old["dataset"]) == old["run_hash"][key], key


# --------------------------------------------------------------------------------------------- analysis


def _surface(v: dict) -> float:
    """Better with a larger lr and with weight decay 5e-4; the weakest cells clearly worse."""
    return 0.90 + 0.03 * math.log10(v["lr"] / 0.1) - (0.006 if v["weight_decay"] == 1e-4 else 0.0)


@pytest.fixture(scope="module")
def three_by_three(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep3")
    finals, recipes, sweeps = sweep_study({"lr": [0.05, 0.1, 0.2], "weight_decay": [1e-4, 5e-4, 1e-3]}, _surface)
    finals["lr_x5"] = [0.9, 0.901, 0.902]  # a hand-written variant beside the sweep
    report = build_report(root, finals, sweep=(recipes, sweeps))
    return root, pd.read_csv(root / "results/aggregate/stats.csv"), sweeps, report


@pytest.fixture(scope="module")
def ten_by_ten():
    """The tables of a 10 x 10 sweep with two seeds, made in memory (no run files: the figures read the
    tables only)."""
    lrs, wds = [round(0.01 * 1.5**k, 5) for k in range(10)], [round(1e-5 * 2**k, 8) for k in range(10)]

    def bump(v):
        return 0.90 + 0.01 * math.exp(-(math.log10(v["lr"] / 0.1) ** 2) / 0.2) - 0.01 * (v["weight_decay"] > 1e-3)

    finals, _, sweeps = sweep_study({"lr": lrs, "weight_decay": wds}, bump, seeds=2)
    summary = pd.DataFrame(
        [
            {"variant": v, "seed": s, "final_test_acc": a, "best_test_acc": a, "diverged": False}
            | {"train_seconds": 1.0, "test_size": 10000}
            for v, accs in finals.items()
            for s, a in enumerate(accs)
        ]
    )
    return {"summary": summary, "stats": study_stats(summary, list(finals))}, sweeps


def _frames(ax, colour) -> int:
    rgba = matplotlib.colors.to_rgba(colour)
    return sum(1 for p in ax.patches if not p.get_fill() and p.get_edgecolor() == rgba)


def test_a_heatmap_shows_each_cell_its_seeds_and_the_verdicts_at_three_by_three(three_by_three):
    root, stats, sweeps, _ = three_by_three
    tables_ = {n: pd.read_csv(root / f"results/aggregate/{n}.csv") for n in ("epochs", "summary", "stats")}
    fig = sf.plot_heatmap(tables_, list(stats["variant"]), sweeps, ("lr", "weight_decay"))
    ax = fig.axes[0]
    cells = stats[stats["variant"].isin(sweeps[0].names)]
    verdicts = cells["verdict"].value_counts()
    assert verdicts.get("better", 0) >= 2 and verdicts.get("worse", 0) >= 1  # the surface gives both
    assert _frames(ax, sf.BETTER_COLOUR) == verdicts["better"] and _frames(ax, sf.WORSE_COLOUR) == verdicts["worse"]
    texts = [t.get_text() for t in ax.texts]
    for _, r in cells.iterrows():
        mark = {"better": "\u25b2 ", "worse": "\u25bc "}.get(r["verdict"], "")
        assert f"{mark}{r['final_mean_pct']:.2f}" in texts
    summary = tables_["summary"]
    seeds = summary[summary["variant"] == "lr0.2_wd0.0005"]["final_test_acc"]
    assert " ".join(f"{100 * s:.1f}" for s in seeds) in texts  # each seed's accuracy under the mean
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.05", "0.1", "0.2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.0001", "0.0005", "0.001"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "verdicts: Holm over all 10 comparisons with baseline: family-wise \u03b1 = 0.05" in legend


def test_a_sweep_plot_has_a_line_per_other_value_and_the_reference_band(three_by_three):
    root, stats, sweeps, _ = three_by_three
    tables_ = {n: pd.read_csv(root / f"results/aggregate/{n}.csv") for n in ("epochs", "summary", "stats")}
    fig = sf.plot_key_sweep(tables_, list(stats["variant"]), sweeps, "lr")
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(lines) == 3 and ax.get_xscale() == "linear"  # 0.05-0.2: less than a decade
    best = [line for line in lines if list(line.get_xdata()) == [0.05, 0.1, 0.2]]
    wd5 = stats.set_index("variant").loc[["lr0.05_wd0.0005", "lr0.1_wd0.0005", "lr0.2_wd0.0005"], "final_mean_pct"]
    assert any(list(line.get_ydata()) == pytest.approx(list(wd5)) for line in best)
    ref = stats.set_index("variant").loc["baseline"]
    band = [p for p in ax.patches if p.get_facecolor()[:3] == matplotlib.colors.to_rgb("0.85")]
    assert len(band) == 1 and band[0].get_extents().height > 0
    assert any(list(line.get_ydata()) == [ref["final_mean_pct"]] * 2 for line in ax.lines)  # its mean, dotted
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"weight_decay 0.0001", "weight_decay 0.0005", "weight_decay 0.001"} <= set(legend)
    decade = sf.plot_key_sweep(tables_, list(stats["variant"]), sweeps, "weight_decay").axes[0]
    assert decade.get_xscale() == "log"  # 1e-4 to 1e-3: a decade


def test_ten_by_ten_figures_stay_readable(ten_by_ten, tmp_path):
    aggregate, sweeps = ten_by_ten
    assert grid.figure_names([], sweeps) == ["sweep_lr", "sweep_weight_decay", "heatmap_lr_weight_decay"]
    paths = [tmp_path / f"{n}.png" for n in ("sweep_lr", "heatmap_lr_weight_decay")]
    write_figures(aggregate, list(aggregate["stats"]["variant"]), paths, plots=sf.sweep_plots(sweeps))
    assert all(p.stat().st_size > 20_000 for p in paths)
    heat = sf.plot_heatmap(aggregate, [], sweeps, ("lr", "weight_decay"))
    assert heat.get_figwidth() <= 15 and min(t.get_fontsize() for t in heat.axes[0].texts) >= 6.5
    assert sum(t.get_text() == "n=2" for t in heat.axes[0].texts) == 100  # too narrow for each seed: n
    lines = sf.plot_key_sweep(aggregate, [], sweeps, "lr").axes[0]
    assert lines.get_xscale() == "log" and len([x for x in lines.lines if x.get_marker() == "o"]) == 10


def test_stats_md_shows_the_sweep_as_a_table_of_its_own_with_the_best_cell(three_by_three):
    root, stats, sweeps, _ = three_by_three
    md = (root / "results/aggregate/stats.md").read_text()
    main, sweep = md.split("\n\n", 1)
    assert "| lr_x5 |" in main and "lr0.2_wd0.0005" not in main and "| baseline (reference) |" in main
    assert "| lr | weight_decay | Variant | Final acc. (%) |" in sweep
    assert "| 0.2 | 0.0005 | lr0.2_wd0.0005 |" in sweep
    best = stats.set_index("variant").loc["lr0.2_wd0.0005"]
    assert (
        f"Best cell: lr 0.2, weight_decay 0.0005 (lr0.2_wd0.0005), {best['final_mean_pct']:.2f}% mean final accuracy: "
        "better than baseline." in sweep
    )
    assert "The best lr is the largest tried: extend the range." in sweep and "best weight_decay" not in sweep
    tex = (root / "results/aggregate/stats.tex").read_text()
    assert tex.count("\\begin{longtable}") == 2 and "\\label{tab:lrstudy-grid0}" in tex
    assert "lr & weight\\_\\allowbreak{}decay & Final acc." in tex


def test_the_report_shows_the_sweep_as_a_sweep(three_by_three):
    _, stats, _, report = three_by_three
    html = report.read_text()
    summary = html[html.index('id="summary"') : html.index('id="published"')]
    assert "lr0.1_wd0.001:" not in summary  # no sentence per cell
    assert "Sweep grid[0]: lr \u00d7 weight_decay (3 \u00d7 3)</a>, 9 cells compared with baseline" in summary
    assert "The best cell is lr 0.2, weight_decay 0.0005 (lr0.2_wd0.0005)" in summary
    assert "<strong>The best lr is the largest tried: extend the range.</strong>" in summary
    table = html[html.index('id="sweep-0"') :]
    assert "<th>lr</th><th>weight_decay</th><th>variant</th>" in table
    assert table.count('<td class="n">0.0005</td>') == 3 and '<tr class="best">' in table
    variants = html[html.index('id="variants"') : html.index('id="sweep-0"')]
    assert "lr_x5<br>" in variants and "lr0.05_wd0.0001<br>" not in variants
    assert (
        "Final accuracy against weight_decay" in html and "Mean final accuracy per cell: lr \u00d7 weight_decay" in html
    )


def test_the_best_cell_at_the_small_end_of_a_range_says_so():
    from lrstudy.analysis import sweeps as sw

    sweep = grid.Sweep(
        0,
        ("lr", "momentum"),
        ((0.1, 0.2), (0.8, 0.9)),
        tuple((f"v{i}", c) for i, c in enumerate(itertools.product((0.1, 0.2), (0.8, 0.9)))),
        {},
    )
    means = {"v0": 91.0, "v1": 90.0, "v2": 89.0, "v3": 88.0}
    stats = pd.DataFrame(
        {"variant": list(means), "final_mean_pct": list(means.values()), "reference": "v3", "verdict": "better"}
    )
    result = sw.results(stats, [sweep])[0]
    assert result.best.variant == "v0"
    assert [(e.key, e.side) for e in result.edges] == [("lr", "smallest"), ("momentum", "smallest")]
    words = tables.sweep_sentences(result)
    assert "Best cell: lr 0.1, momentum 0.8 (v0), 91.00% mean final accuracy: better than v3." in words
    assert "The best lr is the smallest tried: extend the range. The best momentum is the smallest tried" in words
