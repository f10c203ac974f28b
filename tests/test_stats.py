"""The statistics on numbers whose answer is known in advance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_runs import KNOWN

from lrstudy.analysis import stats as st
from lrstudy.config import Stats


def runs(finals: dict[str, list[float]], diverged: set[tuple[str, int]] = frozenset()) -> pd.DataFrame:
    """One row per run, as summary.csv has them."""
    return pd.DataFrame(
        [
            {
                "variant": v,
                "seed": s,
                "final_test_acc": math.nan if (v, s) in diverged else acc,
                "best_test_acc": math.nan if (v, s) in diverged else acc + 0.001,
                "diverged": (v, s) in diverged,
                "train_seconds": 100.0,
                "test_size": 10_000,
            }
            for v, accs in finals.items()
            for s, acc in enumerate(accs)
        ]
    )


def verdicts(finals, diverged=frozenset()) -> dict[str, str]:
    table = st.study_stats(runs(finals, diverged), list(finals))
    return dict(zip(table["variant"], table["verdict"], strict=False))


def test_known_better_worse_and_same():
    assert verdicts(KNOWN) == {
        "baseline": st.REFERENCE,
        "lr_x5": st.BETTER,
        "lr_x2": st.NO_DIFFERENCE,
        "lr_x0.5": st.WORSE,
    }


def test_identical_variants_are_never_called_different():
    same = {"baseline": KNOWN["baseline"], "copy": KNOWN["baseline"], "shuffled": KNOWN["baseline"][::-1]}
    table = st.study_stats(runs(same), list(same)).set_index("variant")
    assert (table.loc[["copy", "shuffled"], "verdict"] == st.NO_DIFFERENCE).all()
    assert (table.loc[["copy", "shuffled"], "diff_pct"].abs() < 1e-9).all()
    assert table.loc["copy", "p_value"] == pytest.approx(1.0)
    assert table.loc["copy", "seeds_needed"] is pd.NA  # nothing to detect


def test_false_alarms_stay_near_the_nominal_rate():
    """Many pairs of same-distribution studies with 3 seeds each: about 5% are called different."""
    rng = np.random.default_rng(0)
    draws = rng.normal(0.95, 0.0015, size=(400, 2, 3))
    called = sum(st.welch(a, b, 0.0)["p_value"] < st.ALPHA for a, b in draws)
    assert 5 <= called <= 40  # 5% of 400 is 20


def test_the_seeds_claim_cannot_be_shown_with_one_run():
    """The published run: one run each, 94.98 -> 95.16. That is 'not enough seeds', whatever the difference."""
    assert verdicts({"baseline": [0.9498], "lr_tweak": [0.9516]})["lr_tweak"] == st.TOO_FEW


def test_the_difference_and_its_ci():
    res = st.welch([95.3, 95.5, 95.4], [95.0, 95.1, 95.2], 0.01)
    assert res["diff"] == pytest.approx(0.3)
    assert res["ci_low"] < 0.3 < res["ci_high"]
    assert res["ci_low"] > 0 and res["p_value"] < 0.05
    assert st.welch([95.0, 95.0], [95.0, 95.0], 0.01)["p_value"] == 1.0  # no spread, no difference


def test_describe():
    d = st.describe([51.0, 52.0, 53.0])
    assert (d["n"], d["mean"], d["std"]) == (3, 52.0, 1.0)
    assert d["ci_low"] == pytest.approx(52 - 4.302653 / math.sqrt(3), rel=1e-6)  # t(0.975, 2) = 4.3027
    assert d["ci_high"] == pytest.approx(52 + 4.302653 / math.sqrt(3), rel=1e-6)
    one = st.describe([95.0])
    assert one["n"] == 1 and one["mean"] == 95.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"])


def test_describe_keeps_the_ci_within_what_an_accuracy_can_be():
    two_seeds = st.describe([40.0, 98.0])  # t(0.975, 1) = 12.7: the raw interval is -299 to 437
    assert (two_seeds["ci_low"], two_seeds["ci_high"]) == (0.0, 100.0)
    near_top = st.describe([99.0, 99.5])
    assert 0 < near_top["ci_low"] < 99.0 and near_top["ci_high"] == 100.0


def test_seeds_needed_matches_the_textbook_table():
    # Two-sample t-test, two-sided alpha 0.05, 80% power: d = 0.5 -> 64, 0.8 -> 26, 1.0 -> 17 per group.
    assert [st.seeds_needed(d, 1.0, 1.0) for d in (0.5, 0.8, 1.0)] == [64, 26, 17]


def test_seeds_needed_grows_as_the_effect_shrinks_or_the_noise_grows():
    by_effect = [st.seeds_needed(d, 0.15, 0.15) for d in (0.6, 0.3, 0.18, 0.1, 0.05)]
    assert by_effect == sorted(by_effect) and len(set(by_effect)) == len(by_effect)
    assert 10 <= st.seeds_needed(0.18, 0.15, 0.15) <= 14  # the published run's claim, at the literature's spread
    assert st.seeds_needed(0.18, 0.2, 0.2) > st.seeds_needed(0.18, 0.12, 0.12)
    assert st.seeds_needed(-0.3, 0.15, 0.15) == st.seeds_needed(0.3, 0.15, 0.15)
    assert math.isnan(st.seeds_needed(0.0, 0.15, 0.15)) and math.isnan(st.seeds_needed(0.2, math.nan, 0.1))


def test_the_power_estimate_is_honest_by_simulation():
    """At the estimated seed count the test finds a real difference in about 80% of studies."""
    rng = np.random.default_rng(1)
    diff, sd = 0.3, 0.2
    n = st.seeds_needed(diff, sd, sd)
    a = rng.normal(95 + diff, sd, size=(1000, n))
    b = rng.normal(95, sd, size=(1000, n))
    found = np.mean([st.welch(x, y, 0.0)["p_value"] < st.ALPHA for x, y in zip(a, b, strict=False)])
    assert 0.75 <= found <= 0.87


def test_detectable_difference_shrinks_with_more_seeds():
    sizes = [st.detectable_diff(0.15, 0.15, n, n) for n in (2, 3, 5, 10, 30)]
    assert sizes == sorted(sizes, reverse=True)
    assert st.welch_power(st.detectable_diff(0.15, 0.15, 3, 3), 0.15, 0.15, 3, 3) == pytest.approx(0.8)
    assert math.isnan(st.detectable_diff(0.15, 0.15, 1, 3))


def test_diverged_runs_are_left_out_and_a_fully_diverged_variant_is_named():
    finals = {"baseline": KNOWN["baseline"], "lr_x5": KNOWN["lr_x5"], "lr_x2": KNOWN["lr_x2"][:2]}
    diverged = {("lr_x5", 0), ("lr_x2", 0), ("lr_x2", 1)}
    table = st.study_stats(runs(finals, diverged), list(finals)).set_index("variant")
    assert table.loc["lr_x5", ["n_runs", "n", "n_diverged"]].tolist() == [5, 4, 1]
    assert table.loc["lr_x5", "final_mean_pct"] == pytest.approx(100 * np.mean(KNOWN["lr_x5"][1:]))
    assert table.loc["lr_x5", "verdict"] == st.BETTER
    assert table.loc["lr_x2", "verdict"] == st.ALL_DIVERGED


def test_reference_is_baseline_or_the_first_variant():
    assert st.reference_variant(["lr_x5", "baseline"]) == "baseline"
    assert st.reference_variant(["lr_x5", "lr_x2"]) == "lr_x5"
    finals = {"lr_x2": KNOWN["lr_x2"], "lr_x5": KNOWN["lr_x5"]}
    assert verdicts(finals) == {"lr_x2": st.REFERENCE, "lr_x5": st.BETTER}


def test_a_reference_with_one_seed_leaves_every_variant_undecided():
    finals = {"baseline": KNOWN["baseline"][:1], "lr_x5": KNOWN["lr_x5"]}
    assert verdicts(finals)["lr_x5"] == st.TOO_FEW


def test_equal_means_up_to_float_rounding_are_no_difference():
    """The issue's case: both means are 95.05 up to rounding; the seeds needed for a 1e-14 difference
    overflowed the table's integer column."""
    finals = {"baseline": [0.9500, 0.9510], "lr_x2": [0.9502, 0.9508]}
    row = st.study_stats(runs(finals), list(finals)).set_index("variant").loc["lr_x2"]
    assert row["verdict"] == st.NO_DIFFERENCE
    assert row["diff_pct"] == 0.0 and row["p_value"] == 1.0
    assert row["diff_ci_low_pct"] == pytest.approx(-row["diff_ci_high_pct"]) and row["diff_ci_high_pct"] > 0
    assert row["seeds_needed"] is pd.NA


def test_identical_accuracies_up_to_float_rounding_are_no_difference():
    """Seven runs at 0.9005 against two at 0.9005, a few of them one float step off (as sums of
    per-batch counts come out): no spread and no difference, not 'better' on a p of 0.05."""
    up = float(np.nextafter(0.9005, 1.0))
    finals = {"baseline": [0.9005, 0.9005], "lr_x2": [0.9005, up, 0.9005, up, 0.9005, up, up]}
    assert 100 * np.mean(finals["lr_x2"]) != 100 * np.mean(finals["baseline"])
    row = st.study_stats(runs(finals), list(finals)).set_index("variant").loc["lr_x2"]
    assert (row["verdict"], row["diff_pct"], row["p_value"], row["final_std_pct"]) == (st.NO_DIFFERENCE, 0, 1, 0)
    plain = {"baseline": [0.9005] * 2, "lr_x2": [0.9005] * 7}  # the mean of seven is 90.04999999999998
    assert verdicts(plain)["lr_x2"] == st.NO_DIFFERENCE


def test_seeds_needed_stops_counting_at_the_cap():
    assert st.seeds_needed(1e-6, 0.15, 0.15) == st.MAX_SEEDS + 1
    assert st.seeds_needed(1e-300, 0.15, 0.15) == st.MAX_SEEDS + 1
    assert st.seeds_needed(0.0045, 0.1, 0.1) < st.MAX_SEEDS < st.seeds_needed(0.0035, 0.1, 0.1)
    finals = {"baseline": [0.9500, 0.9510], "tiny": [0.950001, 0.951001]}
    table = st.study_stats(runs(finals), list(finals)).set_index("variant")
    assert table.loc["tiny", "seeds_needed"] == st.MAX_SEEDS + 1


def test_a_nan_accuracy_in_a_run_not_marked_diverged_is_an_error_naming_the_run():
    table = runs({"baseline": KNOWN["baseline"], "lr_x2": KNOWN["lr_x2"]})
    table.loc[(table["variant"] == "lr_x2") & (table["seed"] == 1), "final_test_acc"] = math.nan
    with pytest.raises(ValueError, match="run lr_x2 seed 1: final_test_acc is nan but the run is not marked diverged"):
        st.study_stats(table, ["baseline", "lr_x2"])


# --- the accuracy's resolution and the family-wise error -------------------------------------------------


def test_constant_accuracies_are_no_proof_of_a_difference():
    """The issue's case: 95.01 against 95.00 over three seeds each, no spread at all. On 10,000 test images
    an accuracy moves in steps of 0.01 points, so no spread is taken as smaller than half a step: not
    'better' with p = 1e-12."""
    finals = {"baseline": [0.9500] * 3, "lr_x2": [0.9501] * 3}
    row = st.study_stats(runs(finals), list(finals)).set_index("variant").loc["lr_x2"]
    assert row["verdict"] == st.NO_DIFFERENCE and row["p_value"] > st.ALPHA
    assert row["diff_ci_low_pct"] < 0 < row["diff_ci_high_pct"]
    assert st.resolution_pct([10_000, 2_000]) == pytest.approx(0.05)  # the coarser test set decides
    with pytest.raises(ValueError, match="test_size"):
        st.resolution_pct([0])


def test_holm_step_down_and_the_levels_beside_each_verdict():
    adjusted, level = st.holm([0.01, 0.04, 0.03, math.nan])
    np.testing.assert_allclose(adjusted[:3], [0.04, 0.09, 0.09])
    assert math.isnan(adjusted[3])  # no test: never rejected, but it counts as a comparison
    np.testing.assert_allclose(level, [0.05 / 4, 0.05 / 3, 0.05 / 3, 0.05 / 3])
    adjusted, level = st.holm([0.01, 0.04], multiplicity="none")
    np.testing.assert_allclose(adjusted, [0.01, 0.04]) and np.testing.assert_allclose(level, 0.05)


def test_the_simultaneous_intervals_are_bonferronis_and_agree_with_the_verdicts():
    """Beside each verdict, stats.csv has the comparisons' simultaneous intervals: Welch's at 1 - alpha / m,
    also under multiplicity none. One that excludes 0 comes with that verdict; the marginal variant,
    called nothing under Holm, has one that includes 0."""
    finals = {**KNOWN, "marginal": [0.9512, 0.9520, 0.9507, 0.9517, 0.9511]}
    others = [v for v in finals if v != "baseline"]
    for settings in (Stats("holm"), Stats("none")):
        table = st.study_stats(runs(finals), list(finals), settings).set_index("variant")
        for v in others:
            row = table.loc[v]
            own = st.welch(100 * np.array(finals[v]), 100 * np.array(finals["baseline"]), 0.01, st.ALPHA / len(others))
            assert (row["simultaneous_ci_low_pct"], row["simultaneous_ci_high_pct"]) == pytest.approx(
                (own["ci_low"], own["ci_high"])
            )
            if row["simultaneous_ci_low_pct"] > 0 or row["simultaneous_ci_high_pct"] < 0:
                assert row["verdict"] == (st.BETTER if row["simultaneous_ci_low_pct"] > 0 else st.WORSE)
    holm = st.study_stats(runs(finals), list(finals)).set_index("variant").loc["marginal"]
    assert holm["simultaneous_ci_low_pct"] < 0 < holm["simultaneous_ci_high_pct"]


def test_holm_keeps_a_marginal_comparison_from_being_called_and_says_so():
    """KNOWN's lr_x5 and lr_x0.5 are clear; a variant with p just under 0.05 on its own is not 'better'
    once four comparisons share alpha, and its CI (at the level it was tested at) includes 0."""
    finals = {**KNOWN, "marginal": [0.9512, 0.9520, 0.9507, 0.9517, 0.9511]}
    holm = st.study_stats(runs(finals), list(finals)).set_index("variant")
    alone = st.study_stats(runs(finals), list(finals), Stats("none")).set_index("variant")
    assert alone.loc["marginal", "p_value"] < 0.05 and alone.loc["marginal", "verdict"] == st.BETTER
    row = holm.loc["marginal"]
    assert row["verdict"] == st.NO_DIFFERENCE and row["p_value_adjusted"] >= 0.05
    assert row["diff_ci_low_pct"] < 0 < row["diff_ci_high_pct"] and row["ci_level"] > 0.95
    assert (holm.loc[["lr_x5", "lr_x0.5"], "verdict"] == [st.BETTER, st.WORSE]).all()
    assert (holm["multiplicity"] == "holm").all() and (alone["multiplicity"] == "none").all()


# --- the spread floor on rounded accuracies ---------------------------------------------------------------


def rounded_null_p(floor_steps: float, n: int, sd_steps: float, offset: float, studies: int = 20_000) -> np.ndarray:
    """Welch's p-values (stats.welch_parts) of null comparisons whose runs' accuracies are their latent
    values (spread sd_steps) rounded to whole steps, the steps offset from the common latent mean by
    `offset` steps; the spread floor set to floor_steps steps."""
    rng = np.random.default_rng(n)
    a, b = (np.round(offset + sd_steps * rng.standard_normal((studies, n))) for _ in range(2))
    diff, se, df, _ = st.welch_parts(a, b, resolution=2 * floor_steps)  # spread_floor: half the resolution
    with np.errstate(all="ignore"):
        return np.where(se > 0, 2 * stats.t.sf(np.abs(diff) / se, df), np.where(diff == 0, 1.0, 0.0))


def three_se(p: float, studies: int = 20_000) -> float:
    return 3 * math.sqrt(p * (1 - p) / studies)


def test_half_a_step_keeps_the_level_where_runs_straddle_a_step():
    """The worst case of rounding: latent accuracies that barely spread, centred on a step's edge, land on
    its two sides at random. Half a step (the spread of that two-point distribution) keeps Welch's test at
    its level; Sheppard's rms rounding error (a step / sqrt(12)) does not."""
    assert st.spread_floor(0.01) == 0.005
    assert (rounded_null_p(0.5, 8, 0.05, 0.5) < st.ALPHA).mean() <= st.ALPHA + three_se(st.ALPHA)
    assert (rounded_null_p(1 / math.sqrt(12), 8, 0.05, 0.5) < st.ALPHA).mean() > st.ALPHA + three_se(st.ALPHA)


@pytest.mark.system  # simulates at length
def test_the_spread_floor_keeps_every_level_on_rounded_accuracies_and_gives_power_back():
    """Over latent spreads from a twentieth of a step to two steps, step edges anywhere and 2-16 seeds a
    side, at alpha and at Holm's first level for four comparisons: the share called different stays
    within Monte Carlo error of the level. A floor of 0.4 steps fails; one step loses power on a
    500-image test set (steps of 0.2 points) at +0.3 points and a spread of 0.15."""
    levels = (st.ALPHA, st.ALPHA / 4)
    for cell in [(n, sd, o) for n in (2, 3, 4, 8, 16) for sd in (0.05, 0.15, 0.3, 1.0) for o in (0, 0.25, 0.5)]:
        p = rounded_null_p(0.5, *cell)
        for alpha in levels:
            assert (p < alpha).mean() <= alpha + three_se(alpha), (alpha, cell, (p < alpha).mean())
    assert (rounded_null_p(0.4, 16, 0.05, 0.5) < levels[1]).mean() > levels[1] + three_se(levels[1])
    rng = np.random.default_rng(5)
    step = st.resolution_pct(500)
    power = {}
    for floor in (0.5, 1.0):
        a = step * np.round((0.3 + 0.15 * rng.standard_normal((20_000, 3))) / step)
        b = step * np.round(0.15 * rng.standard_normal((20_000, 3)) / step)
        diff, se, df, _ = st.welch_parts(a, b, resolution=2 * floor * step)
        power[floor] = float((2 * stats.t.sf(np.abs(diff) / se, df) < st.ALPHA).mean())
    assert power[1.0] < 0.15 and power[0.5] > 0.3, power
