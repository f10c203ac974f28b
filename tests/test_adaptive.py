"""The adaptive multi-seed design: its boundaries against published values, its error rates and run
counts in thousands of simulated studies (seconds, fixed RNG seeds), and its plan on known studies."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_runs import adaptive_design, build_report

from lrstudy.analysis import adaptive as ad
from lrstudy.analysis import aggregate as ag
from lrstudy.analysis import design_power as dp
from lrstudy.analysis import stats as st
from lrstudy.config import Adaptive, ConfigError, Stats, stats_of

# The example: three seeds a stage, at most 12, a 0.2-point difference worth detecting at 80%
# power; spread between seeds like ResNet18 on CIFAR-10 (0.15 points).
EXAMPLE = adaptive_design(stage_seeds=3, max_seeds=12, effect_pct=0.2, power=0.8)
SD = 0.15
STUDIES = 4000
RESOLUTION = 0.01  # points: one of CIFAR-10's 10,000 test images
PER_COMPARISON = adaptive_design(stage_seeds=3, max_seeds=12, effect_pct=0.2, power=0.8, multiplicity="none")


def simulate(
    design: ad.Design, diff: float, sd: float = SD, sd_reference: float = SD, seed: int = 0, studies: int = STUDIES
) -> tuple[np.ndarray, np.ndarray]:
    """Each study's decision and seeds per arm of one comparison, stage by stage with the design's own
    Walk, as study_plan walks it (test_the_simulation_walks_like_study_plan checks that)."""
    rng = np.random.default_rng(seed)
    variant = rng.normal(diff, sd, (studies, 1, design.max_seeds))
    reference = rng.normal(0.0, sd_reference, (studies, design.max_seeds))
    walk = ad.walk(design, variant, reference, RESOLUTION)
    return walk.decision[:, 0], walk.seeds()[:, 0]


def three_se(p: float, n: int = STUDIES) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


def fixed_design_seeds(power: float, diff: float = 0.2, sd: float = SD) -> int:
    """Seeds per arm of the fixed design (Welch's test, all seeds at once) with at least this power."""
    n = 2
    while st.welch_power(diff, sd, sd, n, n) < power:
        n += 1
    return n


# --- the boundaries ----------------------------------------------------------------------------------------


def test_boundaries_match_the_published_lan_demets_obrien_fleming_values():
    # Two-sided alpha 0.05, equally spaced looks (gsDesign sfLDOF; Jennison & Turnbull 2000, table 7.6).
    np.testing.assert_allclose(EXAMPLE.bounds, [4.333, 2.963, 2.359, 2.014], atol=6e-4)
    two = adaptive_design(stage_seeds=2, max_seeds=4, effect_pct=0.2, power=0.8)
    np.testing.assert_allclose(two.bounds, [2.963, 1.969], atol=6e-4)
    assert ad.obrien_fleming_spending(1.0) == pytest.approx(0.05)


def test_the_repeated_p_value_is_alpha_exactly_at_each_boundary():
    for k, c in enumerate(EXAMPLE.bounds, start=1):
        assert ad.sequential_p(EXAMPLE, k, c) == pytest.approx(0.05, abs=1e-5)
        assert ad.sequential_p(EXAMPLE, k, -c * 1.05) < 0.05 < ad.sequential_p(EXAMPLE, k, c * 0.95)
    assert ad.sequential_p(EXAMPLE, 1, 0.0) == 1.0


def test_stages_are_as_large_as_the_configured_seeds_and_numbered_after_them():
    assert adaptive_design(3, 12).sizes == (3, 3, 3, 3)
    assert adaptive_design(3, 10).sizes == (3, 3, 4)  # one seed alone has no spread: the last stage takes it
    assert adaptive_design(3, 11).sizes == (3, 3, 3, 2)
    assert ad.seeds_by_stage(adaptive_design(2, 6), [4, 0]) == [[0, 4], [5, 6], [7, 8]]
    config = {
        "seeds": [0, 1, 2],
        "adaptive": {"max_seeds": 7, "effect_pct": 0.2, "power": 0.8},
        "stats": {"multiplicity": "holm"},
    }
    assert stats_of(config).run_seeds(config["seeds"]) == list(range(7))
    assert Stats().run_seeds([0, 1, 2]) == [0, 1, 2]
    assert ad.design_of(stats_of({"seeds": [0, 1], "adaptive": None, "stats": {"multiplicity": "none"}})) is None


@pytest.mark.parametrize(
    "seeds, max_seeds, message",
    [
        (1, 6, "the first stage needs at least 2"),
        (3, 5, "adaptive.max_seeds: 5 leaves no second stage; give at least 6"),
    ],
)
def test_a_design_without_two_stages_is_refused_naming_the_key(seeds, max_seeds, message):
    with pytest.raises(ConfigError, match=message):
        Adaptive(stage_seeds=seeds, max_seeds=max_seeds, effect_pct=0.2, power=0.8)


def test_an_unknown_multiplicity_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="stats.multiplicity: 'bonferroni' is none of holm, none"):
        Stats(multiplicity="bonferroni")


# --- error rates, power and runs in simulated studies -----------------------------------------------------


@pytest.mark.parametrize("sd_reference", [SD, 2 * SD], ids=["equal spreads", "reference twice as noisy"])
def test_false_positive_rate_stays_at_alpha_without_a_true_difference(sd_reference):
    decision, seeds = simulate(EXAMPLE, diff=0.0, sd_reference=sd_reference, seed=1)
    false_positive = np.isin(decision, [ad.BETTER, ad.WORSE]).mean()
    assert false_positive <= 0.05 + three_se(0.05), false_positive
    assert seeds.mean() < EXAMPLE.max_seeds  # stops for "negligible" or "futile" save seeds


def test_looking_after_every_stage_without_the_boundaries_would_inflate_it():
    """The same looks at the fixed-design level (|Z| >= 1.96 each time): what the spending prevents."""
    rng = np.random.default_rng(2)
    variant, reference = rng.normal(0, SD, (2, STUDIES, EXAMPLE.max_seeds))
    called = np.zeros(STUDIES, dtype=bool)
    for n in EXAMPLE.ends:
        called |= np.abs(ad.welch_z(variant[:, :n], reference[:, :n], RESOLUTION)) >= 1.96
    assert called.mean() > 0.05 + three_se(0.05)


def test_power_at_effect_pct_with_fewer_runs_than_the_fixed_design_of_the_same_power():
    decision, seeds = simulate(EXAMPLE, diff=EXAMPLE.effect_pct, seed=3)
    power = (decision == ad.BETTER).mean()
    assert power >= EXAMPLE.power - three_se(EXAMPLE.power), power
    fixed = fixed_design_seeds(power)
    assert seeds.mean() < fixed, (seeds.mean(), fixed)  # seeds per arm: runs are twice as many for both


def test_a_clear_difference_stops_early_and_a_null_one_rarely_runs_to_the_end():
    worse, seeds_worse = simulate(EXAMPLE, diff=-1.0, seed=4)
    assert (worse == ad.WORSE).all() and (seeds_worse <= 6).all()
    null, seeds_null = simulate(EXAMPLE, diff=0.0, seed=5)
    assert np.isin(null, [ad.NEGLIGIBLE, ad.FUTILE]).mean() > 0.5
    assert seeds_null.mean() < fixed_design_seeds(0.8)


@pytest.mark.parametrize("diff", [0.2, -0.2])
def test_negligible_is_rarely_claimed_for_a_difference_of_effect_pct(diff):
    """'Shown smaller than effect_pct' is a pair of one-sided tests: wrong at most alpha/2 of the time."""
    decision, _ = simulate(EXAMPLE, diff=diff, seed=6)
    assert (decision == ad.NEGLIGIBLE).mean() <= 0.025 + three_se(0.025)


# --- one study ---------------------------------------------------------------------------------------------


def study_runs(means: dict[str, float], seeds: int = 12, seed: int = 0, diverged=()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        [
            {"variant": v, "seed": s, "final_pct": math.nan if (v, s) in diverged else 95 + m + rng.normal(0, SD)}
            for v, m in means.items()
            for s in range(seeds)
        ]
    )


def plan_of(runs: pd.DataFrame, design: ad.Design = EXAMPLE) -> pd.DataFrame:
    return ad.study_plan(design, runs, list(runs["variant"].unique()), "baseline", [0, 1, 2], RESOLUTION)


def test_the_plan_settles_each_comparison_and_the_reference_runs_as_long_as_one_is_open():
    means = {"baseline": 0.0, "lr_x5": -1.0, "lr_x2": 0.2, "same": 0.0}
    plan = plan_of(study_runs(means), PER_COMPARISON)
    assert list(plan.columns) == ad.PLAN_COLUMNS
    last = plan.groupby("variant").tail(1).set_index("variant")
    assert last.loc["lr_x5", "decision"] == ad.WORSE and last.loc["lr_x5", "stage"] == 2
    assert last.loc["lr_x2", "decision"] == ad.BETTER
    assert last.loc["same", "decision"] == ad.NEGLIGIBLE
    assert last.loc["baseline", "stage"] == max(last.loc[["lr_x5", "lr_x2", "same"], "stage"])
    assert (plan.loc[plan["variant"] == "baseline", "decision"] == ad.REFERENCE).all()
    assert ad.is_final(plan)
    planned = ad.planned_seeds(PER_COMPARISON, plan, list(means), "baseline", [0, 1, 2])
    assert planned["lr_x5"] == list(range(6)) and planned["baseline"] == list(range(last.loc["baseline", "stage"] * 3))
    assert "shown worse" in last.loc["lr_x5", "reason"] and "inside \u00b10.2" in last.loc["same", "reason"]


def test_the_plan_stops_at_the_first_stage_whose_runs_are_missing_and_asks_for_them():
    runs = study_runs({"baseline": 0.0, "same": 0.0})
    plan = plan_of(runs[runs["seed"] < 3])
    assert plan["stage"].max() == 1 and not ad.is_final(plan)
    assert plan.loc[plan["variant"] == "same", "decision"].item() == ad.OPEN
    assert "3 more seeds (stage 2 of up to 4)" in plan.loc[plan["variant"] == "same", "reason"].item()
    assert ad.planned_seeds(EXAMPLE, plan, ["baseline", "same"], "baseline", [0, 1, 2]) == {
        "baseline": list(range(6)),
        "same": list(range(6)),
    }
    empty = pd.DataFrame(columns=ad.PLAN_COLUMNS)
    assert ad.planned_seeds(EXAMPLE, empty, ["baseline", "same"], "baseline", [0, 1, 2])["same"] == [0, 1, 2]


def test_too_many_diverged_runs_stop_the_comparison_without_a_verdict():
    runs = study_runs({"baseline": 0.0, "lr_x5": 0.0}, diverged={("lr_x5", 0), ("lr_x5", 1)})
    plan = plan_of(runs)
    row = plan[plan["variant"] == "lr_x5"].iloc[-1]
    assert (row["decision"], row["stage"]) == (ad.TOO_FEW, 1)
    assert "lr_x5: 1, baseline: 3" in row["reason"]


def test_the_simulation_walks_like_study_plan():
    """The simulations above decide with `look` directly; study_plan must reach the same decisions."""
    for seed, diff in enumerate([0.0, 0.2, -0.5, 0.1, 0.3]):
        runs = study_runs({"baseline": 0.0, "v": diff}, seed=seed)
        matrix = runs.pivot(index="variant", columns="seed", values="final_pct")
        walk = ad.walk(EXAMPLE, matrix.loc[["v"]].to_numpy()[None], matrix.loc[["baseline"]].to_numpy(), RESOLUTION)
        last = plan_of(runs).query("variant == 'v'").iloc[-1]
        assert (last["decision"], last["seeds"]) == (walk.decision[0, 0], walk.seeds()[0, 0]), (seed, diff)


# --- the study's tables and report -------------------------------------------------------------------------


def test_stats_take_the_designs_verdicts_stages_and_sequential_p(tmp_path):
    means = {"baseline": 0.0, "lr_x5": -1.0, "same": 0.0}
    runs = study_runs(means)
    plan = plan_of(runs)
    planned = ad.planned_seeds(EXAMPLE, plan, list(means), "baseline", [0, 1, 2])
    final = runs.set_index(["variant", "seed"])["final_pct"] / 100
    summary = pd.DataFrame(
        [
            {
                "variant": v,
                "seed": s,
                "final_test_acc": final[(v, s)],
                "best_test_acc": final[(v, s)],
                "diverged": False,
                "train_seconds": 1.0,
                "test_size": 10_000,
            }
            for v in means
            for s in planned[v]
        ]
    )
    fixed = st.study_stats(summary, list(means)).set_index("variant")
    assert (fixed["stages"] == 1).all()
    plan = ag.seed_plan(summary, list(means), EXAMPLE.settings, [0, 1, 2])
    verdicts = ad.design_verdicts(EXAMPLE, plan, ad.final_points(summary), list(means), "baseline", [0, 1, 2], 0.01)
    stats = st.study_stats(summary, list(means), EXAMPLE.settings, verdicts).set_index("variant")
    assert stats.loc["lr_x5", "verdict"] == st.WORSE and stats.loc["lr_x5", "stages"] == 2
    assert stats.loc["same", "verdict"] == st.NEGLIGIBLE
    assert stats.loc["lr_x5", "p_value_adjusted"] < 0.05 < stats.loc["same", "p_value_adjusted"]
    # lr_x5 stopped after stage 2: its row uses the reference's first 6 seeds, not those it ran for `same`
    assert stats.loc["lr_x5", "n_reference"] == 6 and stats.loc["lr_x5", "all_runs_n_reference"] > 6
    assert stats.loc["baseline", "stages"] == plan.query("variant == 'baseline'")["stage"].max()
    assert list(stats.reset_index().columns) == st.STATS_COLUMNS


def test_a_fixed_study_keeps_its_verdicts_and_the_report_has_no_adaptive_section(tmp_path):
    html = build_report(tmp_path, {"baseline": [0.95, 0.951, 0.949], "lr_x5": [0.96, 0.961, 0.959]}).read_text()
    assert 'id="adaptive"' not in html and "lr_x5 is better than baseline" in html


def adaptive_report(root, means: dict[str, list[float]], design: ad.Design = EXAMPLE) -> str:
    """report.html of a study run as the workflow runs it: stage by stage, the seeds each plan asks for.
    `means` gives each variant's final accuracy (fractions) for seeds 0, 1, ..."""
    from synthetic_runs import PLOTS, REPO, ReportInputs, study_config, write_figures, write_report, write_study

    variants, seeds = list(means), [0, 1, 2]
    planned = {v: seeds for v in variants}
    while True:
        summary = pd.DataFrame(
            [
                {"variant": v, "seed": s, "final_test_acc": means[v][s], "diverged": False, "test_size": 10_000}
                for v in variants
                for s in planned[v]
            ]
        )
        plan = ag.seed_plan(summary, variants, design.settings, seeds)
        if ad.is_final(plan):
            break
        planned = ad.planned_seeds(design, plan, variants, "baseline", seeds)
    run_dirs = write_study(root, {v: [means[v][s] for s in planned[v]] for v in variants})
    tables = ag.aggregate(run_dirs, variants, design.settings, seeds)
    for name, df in tables.items():
        ag.write_csv(df, root / f"results/aggregate/{name}.csv")
    ag.write_csv(plan, root / "results/aggregate/seed_plan.csv")
    pngs = [root / f"results/figures/{name}.png" for name in PLOTS]
    write_figures(tables, variants, pngs + [p.with_suffix(".svg") for p in pngs])
    config = study_config({v: [0] for v in variants}) | {
        "seeds": seeds,
        "adaptive": {"max_seeds": design.max_seeds, "effect_pct": design.effect_pct, "power": design.power},
        "stats": {"multiplicity": design.multiplicity},
        "dataset": {"test_limit": None},
    }
    inputs = ReportInputs(
        stats_csv=root / "results/aggregate/stats.csv",
        summary_csv=root / "results/aggregate/summary.csv",
        summary_jsons=[d / "summary.json" for d in run_dirs],
        figures=pngs,
        captions_dir=REPO / "report/captions",
        published=REPO / "report/published_run.yaml",
        template=REPO / "report/templates/report.html.j2",
        seed_plan_csv=root / "results/aggregate/seed_plan.csv",
    )
    write_report(inputs, config, design.settings, root / "report.html")
    return (root / "report.html").read_text()


def test_the_report_says_each_decision_in_plain_words_with_the_numbers_one_click_away(tmp_path):
    rng = np.random.default_rng(8)
    means = {
        "baseline": list(0.95 + rng.normal(0, 0.0015, 12)),
        "worse": list(0.94 + rng.normal(0, 0.0015, 12)),
        "noisy": [0.95 + 0.03 * (-1) ** s for s in range(12)],  # 3 points between seeds: futile at once
    }
    html = adaptive_report(tmp_path, means)
    section = html[html.index('id="adaptive"') : html.index('id="figures"')]
    assert "After 6 seeds each, worse is worse than baseline by" in section
    assert "between noisy and baseline (chance 2%), so we stopped after 3." in section
    assert "baseline is the reference: it ran 6 seeds" in section
    assert "<details><summary>the numbers</summary>" in section and "Z = " in section
    assert "repeated CI of the difference not yet bounded" in section  # after stage 1, wider than +-100 points
    assert "short of the 80% wanted" in section  # noisy's spread leaves the design little power
    assert "Against the fixed design with the same power at the spread seen" in section and "runs saved" in section
    # Beside the estimate: selection makes it large, by how much this design's simulation says.
    assert (
        "worse than baseline by" in section and "likely overstated: a difference this close" not in section
    )  # -1 point
    bias = re.search(r"a true 0.2-point gain reports (\S+) &plusmn; (\S+) points on average, (\d+)% more", section)
    value, mcse, pct = float(bias[1]), float(bias[2]), int(bias[3])
    assert value > 0.2 + 2 * mcse and abs(pct - 100 * (value / 0.2 - 1)) <= 1, bias[0]
    summary = html[html.index('id="summary"') : html.index('id="published"')]
    assert "Maurer &amp; Bretz 2013" in summary and "group-sequential" in summary and "Welch's two-sided" not in summary
    runs = len(pd.read_csv(tmp_path / "results/aggregate/summary.csv"))
    assert f"3 variants with 3&ndash;6 seeds each (seeds 0&ndash;5) = {runs} runs" in html  # the runs that exist


def test_alpha_passed_on_can_still_reject_a_comparison_that_stopped_earlier():
    """Maurer & Bretz: B stops as negligible after stage 1 at alpha / 2 (Z 4.65 short of 4.86); A is shown
    better at stage 2, its alpha passes to B, whose stage-1 Z crosses the full-alpha boundary 4.33. The row
    and stats.csv then say better, with an adjusted p and a CI that agree. On a test set of a million images
    (resolution 1e-4 points) a spread of 0.001 points is possible."""
    reference = 95 + np.array([0.001, -0.001, 0.0, 0.2, -0.2, 0.1, *[0.0] * 6])
    a = 96 + np.array([0.3, -0.3, 0.0, 0.3, -0.3, *[0.0] * 7])
    b = 95.03 + np.array([0.001, -0.001, 0.0, *[0.0] * 9])
    runs = pd.DataFrame(
        [
            {"variant": v, "seed": s, "final_pct": x[s]}
            for v, x in (("baseline", reference), ("A", a), ("B", b))
            for s in range(12)
        ]
    )
    plan = ad.study_plan(EXAMPLE, runs, ["baseline", "A", "B"], "baseline", [0, 1, 2], 1e-4)
    row = plan.query("variant == 'B'").iloc[-1]
    assert (row["stage"], row["decision"], row["alpha_level"]) == (1, ad.BETTER, 0.05)
    assert "the difference is shown smaller than 0.2 points; at stage 2, with alpha passed on" in row["reason"]
    verdicts = ad.design_verdicts(EXAMPLE, plan, runs, ["baseline", "A", "B"], "baseline", [0, 1, 2], 1e-4)
    assert verdicts["B"]["verdict"] == st.BETTER and verdicts["B"]["p_value_adjusted"] < 0.05
    assert 0 < verdicts["B"]["diff_ci_low_pct"] < verdicts["B"]["diff_pct"] and verdicts["B"]["ci_level"] == 0.95


def test_negligible_is_claimed_at_the_first_level_whatever_alpha_was_passed_on():
    """Two comparisons under Holm: A is shown better at the first look and passes its alpha on; B's
    repeated CI at the full alpha would lie inside +-0.2, at alpha / 2 it does not. "Negligible" belongs
    to a family of its own, tested at alpha / m throughout, so B is not called negligible; on its own
    (one comparison, alpha its first level) it is."""
    design = EXAMPLE
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 1, (2, 3))
    ref, b = 95 + noise[0], 95 + noise[1]
    _, se, df, _ = st.welch_parts(b, ref, 0.0)
    half = {lvl: float(stats.t.isf(stats.norm.sf(design.bounds_at(lvl)[0]), df) * se) for lvl in (0.05, 0.025)}
    scale = 0.2 / math.sqrt(half[0.05] * half[0.025])  # the full-alpha interval inside +-0.2, the other not
    ref, b = 95 + scale * noise[0], 95 + scale * noise[1] - scale * (noise[1].mean() - noise[0].mean())
    a = ref + 5.0 + 1e-3 * np.arange(3)
    both = ad.Walk(design, 2, 1, 0.0)
    both.step(1, np.stack([a, b])[None], ref[None])
    assert both.decision[0, 0] == ad.BETTER and both.decision[0, 1] != ad.NEGLIGIBLE
    alone = ad.Walk(design, 1, 1, 0.0)
    alone.step(1, b[None, None], ref[None])
    assert alone.decision[0, 0] == ad.NEGLIGIBLE


def test_the_plan_says_the_power_the_design_has_with_the_spread_seen_and_warns_when_short():
    """The issue's case: sd 0.3 and max_seeds 12 give about 0.3 power at 0.2 points, not the 0.8 asked
    for; the row says so, with the power's Monte Carlo error and its range over the spread's 95% CI, and
    names the max_seeds that would reach it (each simulated on the design's own path)."""
    power = dp.design_power(PER_COMPARISON, 0.15, 0.05, RESOLUTION, df=4)
    assert power.power == pytest.approx(0.867, abs=0.03) and power.mcse == pytest.approx(0.005, abs=0.001)
    assert power.low < 0.3 and power.high > 0.99  # 3 + 3 runs barely know the spread
    assert dp.design_power(PER_COMPARISON, 0.3, 0.05, RESOLUTION, df=4).power == pytest.approx(0.28, abs=0.04)
    needed = int(dp.max_seeds_for_power(EXAMPLE, 0.3, 0.05, RESOLUTION))
    fewer = needed - EXAMPLE.stage_seeds  # one stage less
    reached = {m: dp.simulated_power(EXAMPLE.with_max_seeds(m), 0.3, 0.05, RESOLUTION) for m in (fewer, needed)}
    assert reached[fewer] < EXAMPLE.power + 0.02 and reached[needed] > EXAMPLE.power - 0.02, reached
    assert math.isnan(dp.max_seeds_for_power(EXAMPLE, 3.0, 0.05, RESOLUTION))  # more than MAX_SEEDS_SIMULATED
    runs = study_runs({"baseline": 0.0, "noisy": 0.0}, seed=3)
    first = runs[runs["seed"] < 3].groupby("variant")["final_pct"].var().mean() ** 0.5
    runs["final_pct"] = 95 + (runs["final_pct"] - 95) * 0.3 / first  # spread 0.3 at the first look
    row = dp.with_power(PER_COMPARISON, plan_of(runs, PER_COMPARISON), RESOLUTION).query("variant == 'noisy'").iloc[0]
    assert row["design_power"] < 0.5 and row["max_seeds_for_power"] > 12
    assert f"short of power = 0.8; max_seeds of about {int(row['max_seeds_for_power'])} would reach it" in row["reason"]
    assert "an estimate from 3 runs a side" in row["reason"] and "over the spread's 95% CI" in row["reason"]
