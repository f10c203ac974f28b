"""Is a variant better than the reference, worse, or not distinguishable with the seeds we have?

Pure functions, no I/O. Accuracies come in as fractions; the study table reports them in percent
(points), because the differences in question are a few tenths of a point.

The comparison is on final test accuracy. Best-epoch accuracy is reported too, but it picks the maximum
over epochs on the test set itself, so it is biased upwards and is not used for a verdict.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from lrstudy.config import ALPHA, Stats

FIXED = Stats()  # the config's defaults: a fixed design, Holm over the comparisons
POWER = 0.80  # the power at which `seeds_needed` and `detectable_diff` are computed
# Accuracies are fractions of a finite test set: even 10^9 test images move the accuracy by 1e-7 points
# per image. A difference or spread below ROUNDING (in the units of the values; the study passes points)
# is float rounding of equal numbers (a mean of seven 90.05s is 90.04999999999998) and counts as zero.
ROUNDING = 1e-9
# `seeds_needed` stops counting here: a difference that needs more seeds is not one a study can show.
# MAX_SEEDS + 1 in the table means "more than MAX_SEEDS".
MAX_SEEDS = 10_000

REFERENCE = "reference"
BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference"
NEGLIGIBLE = "negligible difference"  # adaptive designs only: the difference is shown below adaptive.effect_pct
TOO_FEW = "not enough seeds"
ALL_DIVERGED = "all runs diverged"

# The columns beside a verdict come from the runs that verdict used: in an adaptive design the reference's
# seeds up to the look that decided (not those added later for other comparisons). diff_ci_* is at the
# level the comparison was tested at (ci_level: it excludes 0 exactly when the verdict is better/worse);
# simultaneous_ci_* are the comparisons' intervals that cover every true difference at once with
# probability 1 - alpha (simultaneous_ci). The all_runs_ columns are Welch's test on every finished run
# as if their number had been fixed: descriptive only.
VERDICT_COLUMNS = [
    "n",
    "n_reference",
    "diff_pct",
    "diff_ci_low_pct",
    "diff_ci_high_pct",
    "ci_level",
    "simultaneous_ci_low_pct",
    "simultaneous_ci_high_pct",
    "p_value",
    "p_value_adjusted",
    "verdict",
]
ALL_RUNS_COLUMNS = [
    "all_runs_n_reference",
    "all_runs_diff_pct",
    "all_runs_diff_ci_low_pct",
    "all_runs_diff_ci_high_pct",
    "all_runs_p_value",
]
STATS_COLUMNS = [
    "variant",
    "reference",
    "n_runs",
    "n_diverged",
    "final_mean_pct",
    "final_std_pct",
    "final_ci_low_pct",
    "final_ci_high_pct",
    "best_mean_pct",
    "best_std_pct",
    "best_ci_low_pct",
    "best_ci_high_pct",
    *VERDICT_COLUMNS,
    "multiplicity",
    "seeds_needed",
    "detectable_diff_pct",
    *ALL_RUNS_COLUMNS,
    "train_seconds_mean",
    "stages",
]


def reference_variant(variants: Sequence[str]) -> str:
    """`baseline` when configured, else the first configured variant."""
    if not variants:
        raise ValueError("no variants configured")
    return "baseline" if "baseline" in variants else variants[0]


def describe(percentages: Sequence[float], resolution: float = 0.0, alpha: float = ALPHA) -> dict:
    """n, mean, sample std and the t-based 1 - alpha CI of the mean of accuracies in percent; std and CI
    are NaN below two values.

    The CI takes the spread as at least half of `resolution`, the accuracy's step, as every test does
    (spread_floor): two runs with the same accuracy do not make a mean exact (the std column still says
    0). It is cut to [0, 100]: with two or three seeds the t interval is wide enough to leave the range a
    mean accuracy can have, and its part outside that range covers nothing."""
    x = np.asarray(percentages, dtype=float)
    n = len(x)
    out = {"n": n, "mean": float(x.mean()) if n else math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if n >= 2:
        out["std"] = _spread(x)
        half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * max(out["std"], spread_floor(resolution)) / math.sqrt(n)
        out["ci_low"], out["ci_high"] = max(0.0, out["mean"] - half), min(100.0, out["mean"] + half)
    return out


def _spread(x: np.ndarray) -> float:
    """The sample standard deviation, 0 when it is float rounding of equal values."""
    sd = float(x.std(ddof=1))
    return 0.0 if sd < ROUNDING else sd


def resolution_pct(test_images) -> float:
    """The step of an accuracy on `test_images` images, in points: one image more or less right."""
    n = np.asarray(test_images, dtype=float)
    if n.size == 0 or not np.all(np.isfinite(n)) or np.any(n < 1):
        raise ValueError(f"the runs' test_size is {test_images!r}: a test set needs a number of images >= 1")
    return 100.0 / float(n.min())


def spread_floor(resolution: float) -> float:
    """The smallest seed-to-seed spread any test takes a side to have: half an accuracy step.

    Accuracies are counts of test images: a run's accuracy is its latent value rounded to a step of
    `resolution`. Runs whose latent values straddle a step land on its two sides at random, a two-point
    distribution whose spread is at most half a step (p = 1/2); seeing n equal accuracies is consistent
    with that spread (with probability 2^(1 - n)), so a side is never taken as less spread than half a
    step. That keeps Welch's test at its level with rounded accuracies, whatever the latent spread and
    wherever the steps fall; Sheppard's rms rounding error, a step / sqrt(12), is too small when runs
    straddle one step, and a whole step costs power on small test sets (tests/test_stats.py simulates
    all three)."""
    return resolution / 2


def welch_parts(a, b, resolution: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of arrays (..., n) of accuracies in points (NaN: no finished run): mean(a) - mean(b), its
    standard error, the Welch-Satterthwaite df, and whether both sides have the two runs a test needs.

    The one place both designs compute Welch's statistic. A difference below ROUNDING is 0 (float
    rounding of equal means); each side's spread is at least spread_floor(resolution), half the
    accuracy's step, so equal or constant accuracies are never a difference known exactly."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = np.sum(~np.isnan(a), -1), np.sum(~np.isnan(b), -1)
    with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        sa = np.maximum(np.nanstd(a, -1, ddof=1), spread_floor(resolution))
        sb = np.maximum(np.nanstd(b, -1, ddof=1), spread_floor(resolution))
        va, vb = sa**2 / na, sb**2 / nb
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        diff = np.nanmean(a, -1) - np.nanmean(b, -1)
    diff = np.where(np.abs(diff) < ROUNDING, 0.0, diff)
    return diff, np.sqrt(va + vb), df, (na >= 2) & (nb >= 2)


def welch(a: Sequence[float], b: Sequence[float], resolution: float, alpha: float = ALPHA) -> dict:
    """Welch's test of mean(a) - mean(b): the difference, its 1 - alpha CI and the two-sided p-value.

    A difference within ROUNDING is exactly 0, with p = 1: float rounding of equal means is no evidence."""
    diff, se, df, _ = (float(x) for x in welch_parts(a, b, resolution))
    if not se > 0:  # resolution 0 and no spread at all: any difference is exact
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p_value": 1.0 if diff == 0 else 0.0}
    half = float(stats.t.isf(alpha / 2, df)) * se
    p = 1.0 if diff == 0 else float(2 * stats.t.sf(abs(diff) / se, df))
    return {"diff": diff, "ci_low": diff - half, "ci_high": diff + half, "p_value": p}


def simultaneous_ci(a, b, resolution: float, comparisons: int, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Per row of arrays (..., n), Welch's interval of mean(a) - mean(b) at 1 - alpha / comparisons: over
    a study's comparisons with the reference, all of them cover their true differences at once with
    probability at least 1 - alpha (Bonferroni), whatever the others' differences are.

    Holm's step-down rejects more than these exclude 0, so a comparison called better or worse by a
    later step may have one that includes 0; one that excludes 0 always comes with that verdict. Holm's
    own compatible simultaneous bounds (Strassburger & Bretz 2008) say nothing more than "> 0" for such a
    comparison: these say how large the difference may be."""
    diff, se, df, _ = welch_parts(a, b, resolution)
    with np.errstate(invalid="ignore"):
        half = stats.t.isf(alpha / (2 * max(comparisons, 1)), df) * se
    half = np.where(se > 0, half, 0.0)
    return diff - half, diff + half


def holm(p_values, alpha: float = ALPHA, multiplicity: str = "holm") -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p-values, level) per hypothesis along the last axis (one study's comparisons with the
    reference; leading axes: many studies): Holm's step-down (1979); with multiplicity `none`, the
    p-values themselves at level alpha.

    NaN (no test) is never rejected but counts as a comparison, so a variant without a test hands no one
    its share of alpha. `level` is the two-sided alpha each hypothesis was last tested at, alpha / (m - r)
    with r the hypotheses rejected before it: the CI at 1 - level excludes 0 exactly when it is rejected,
    so the interval beside a verdict agrees with it."""
    p = np.asarray(p_values, dtype=float)
    m = p.shape[-1]
    if multiplicity == "none" or m == 0:
        return p.copy(), np.full(p.shape, alpha)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, -1)
    steps = m - np.arange(m)  # hypotheses left at each step
    adjusted = np.fmax.accumulate(np.minimum(1.0, steps * ranked), axis=-1)  # fmax skips the NaN at the end
    adjusted[np.isnan(ranked)] = np.nan
    rejected = adjusted < alpha
    left = np.maximum(m - rejected.sum(-1, keepdims=True), 1)  # every one rejected: no level left to use
    level = np.where(rejected, alpha / steps, alpha / left)
    out_adjusted, out_level = np.empty_like(adjusted), np.empty_like(level)
    np.put_along_axis(out_adjusted, order, adjusted, -1)
    np.put_along_axis(out_level, order, level, -1)
    return out_adjusted, out_level


def welch_power(diff: float, sd_a: float, sd_b: float, n_a: int, n_b: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch test at level alpha to detect a true difference `diff`."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb == 0:
        return 1.0 if diff != 0 else alpha
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))  # Welch-Satterthwaite
    nc = abs(diff) / math.sqrt(va + vb)
    t = stats.t.isf(alpha / 2, df)
    # The wrong-sign tail is tiny; scipy returns NaN for it when it underflows.
    return float(stats.nct.sf(t, df, nc) + np.nan_to_num(stats.nct.cdf(-t, df, nc)))


def seeds_needed(diff: float, sd_a: float, sd_b: float, alpha: float = ALPHA) -> float:
    """Seeds per variant (both arms equal) for 80% power to detect `diff` with the observed spreads, in a
    fixed design tested at level alpha.

    NaN when there is nothing to size (no difference, or no spread estimate); MAX_SEEDS + 1 when it
    takes more than MAX_SEEDS."""
    if not diff or not all(map(math.isfinite, (diff, sd_a, sd_b))):
        return math.nan
    # The normal approximation is a lower bound for the t-test; step up from it to the exact size.
    spread = float(stats.norm.isf(alpha / 2) + stats.norm.ppf(POWER)) * math.hypot(sd_a, sd_b)
    if spread > math.sqrt(MAX_SEEDS) * abs(diff):  # the lower bound alone is over the cap
        return MAX_SEEDS + 1
    n = max(2, math.ceil((spread / diff) ** 2))
    while n <= MAX_SEEDS and welch_power(diff, sd_a, sd_b, n, n, alpha) < POWER:
        n += 1
    return n


def detectable_diff(sd_a: float, sd_b: float, n_a: int, n_b: int, alpha: float = ALPHA) -> float:
    """The smallest difference the current seeds detect with 80% power at level alpha (NaN below two
    seeds a side)."""
    if n_a < 2 or n_b < 2 or not (math.isfinite(sd_a) and math.isfinite(sd_b)):
        return math.nan
    se = math.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)
    if se == 0:
        return 0.0
    short = lambda d: welch_power(d, sd_a, sd_b, n_a, n_b, alpha) - POWER  # noqa: E731
    high = 20 * se
    while short(high) < 0:  # with two seeds a side and a small alpha, t's heavy tails need more room
        high *= 4
    return optimize.brentq(short, 0.0, high)


def verdict(n: int, n_ref: int, n_diverged: int, diff: float, p_adjusted: float, alpha: float = ALPHA) -> str:
    if n == 0 and n_diverged:
        return ALL_DIVERGED
    if n < 2 or n_ref < 2:
        return TOO_FEW
    if p_adjusted < alpha:
        return BETTER if diff > 0 else WORSE
    return NO_DIFFERENCE


def sizing_alpha(comparisons: int, settings: Stats) -> float:
    """The level `seeds_needed` and `detectable_diff_pct` plan for: Holm's first step, alpha / m."""
    return settings.alpha / max(comparisons, 1) if settings.multiplicity == "holm" else settings.alpha


def fixed_design(final: dict[str, np.ndarray], reference: str, resolution: float, settings: Stats) -> dict[str, dict]:
    """The verdict columns of each comparison with the reference in a fixed design: Welch's test on every
    finished run, Holm over the comparisons, the CI at the level each comparison was tested at."""
    others = [v for v in final if v != reference]
    ref = final[reference]
    tests = {
        v: welch(final[v], ref, resolution, settings.alpha) for v in others if len(final[v]) >= 2 and len(ref) >= 2
    }
    p = [tests[v]["p_value"] if v in tests else math.nan for v in others]
    adjusted, level = holm(p, settings.alpha, settings.multiplicity)
    out = {}
    for v, p_adj, lvl in zip(others, adjusted, level, strict=True):
        row = {"n": len(final[v]), "n_reference": len(ref), "ci_level": 1 - lvl, "p_value_adjusted": p_adj}
        if v in tests:
            cmp = welch(final[v], ref, resolution, alpha=lvl)
            row |= {"diff_pct": cmp["diff"], "diff_ci_low_pct": cmp["ci_low"], "diff_ci_high_pct": cmp["ci_high"]}
            low, high = simultaneous_ci(final[v], ref, resolution, len(others), settings.alpha)
            row |= {"simultaneous_ci_low_pct": float(low), "simultaneous_ci_high_pct": float(high)}
            row["p_value"] = tests[v]["p_value"]
        out[v] = row
    return out


def _check_finished_runs_have_accuracies(finished: pd.DataFrame) -> None:
    """A run not marked diverged has finite accuracies; otherwise a NaN would pass silently through
    every mean and test as 'no detectable difference'."""
    for col in ("final_test_acc", "best_test_acc"):
        bad = finished[~np.isfinite(finished[col].to_numpy(float))]
        if len(bad):
            row = bad.iloc[0]
            raise ValueError(
                f"run {row['variant']} seed {row['seed']}: {col} is {row[col]} but the run is not "
                "marked diverged; its summary.json is damaged or edited: delete the run's directory "
                "and train it again"
            )


def study_stats(
    runs: pd.DataFrame,
    variants: Sequence[str],
    settings: Stats = FIXED,
    design_verdicts: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """One row per variant (config order) from one row per run.

    `runs` needs the columns variant, seed, final_test_acc, best_test_acc (fractions), diverged,
    train_seconds and test_size. Diverged runs are counted but left out of every mean, CI and test.
    Without `design_verdicts` the verdicts are the fixed design's; an adaptive design passes its own
    (lrstudy.analysis.adaptive.design_verdicts): per variant the seeds its verdict used (`seeds`,
    `reference_seeds`) and VERDICT_COLUMNS, and the variant's own means and CIs are of those seeds."""
    reference = reference_variant(variants)
    ok = runs[~runs["diverged"].astype(bool)]
    _check_finished_runs_have_accuracies(ok)
    resolution = resolution_pct(runs["test_size"]) if len(runs) else 0.0
    final = {v: 100 * ok.loc[ok["variant"] == v, "final_test_acc"].to_numpy(float) for v in variants}
    study = _Study(
        runs,
        ok,
        final,
        reference,
        resolution,
        settings,
        design_verdicts or fixed_design(final, reference, resolution, settings),
    )
    table = pd.DataFrame([_variant_row(study, v) for v in variants], columns=STATS_COLUMNS)
    table["seeds_needed"] = table["seeds_needed"].astype("Int64")
    table["stages"] = table["stages"].astype(int)
    return table


@dataclass(frozen=True)
class _Study:
    """What every row of study_stats reads: the runs (all, and those not diverged), each variant's final
    accuracies in points, the reference, the accuracy's resolution, the statistics and the verdicts."""

    runs: pd.DataFrame
    ok: pd.DataFrame
    final: dict[str, np.ndarray]
    reference: str
    resolution: float
    settings: Stats
    decided: dict[str, dict]


def _variant_row(study: _Study, v: str) -> dict:
    """A variant's row of stats.csv: its runs described, its verdict, and for a comparison the all-runs
    test and the seeds it would need."""
    decided = study.decided.get(v, {})
    row = {k: math.nan for k in VERDICT_COLUMNS} | {"stages": 1}
    row |= {k: val for k, val in decided.items() if k in (*VERDICT_COLUMNS, "stages")}
    mine = study.ok[study.ok["variant"] == v]
    if "seeds" in decided:
        mine = mine[mine["seed"].isin(decided["seeds"])]
    alpha, reference = study.settings.alpha, study.reference
    f = describe(100 * mine["final_test_acc"].to_numpy(float), study.resolution, alpha)
    b = describe(100 * mine["best_test_acc"].to_numpy(float), study.resolution, alpha)
    n_runs = int((study.runs["variant"] == v).sum())
    n_diverged = n_runs - len(study.final[v])
    row |= {"n": f["n"], "n_reference": len(study.final[reference]) if v == reference else row["n_reference"]}
    compared = {k: math.nan for k in (*ALL_RUNS_COLUMNS, "seeds_needed", "detectable_diff_pct")}
    if v == reference:
        row["verdict"] = ALL_DIVERGED if f["n"] == 0 and n_diverged else REFERENCE
    else:
        if not isinstance(row["verdict"], str):  # no verdict from a design: the fixed analysis's own
            row["verdict"] = verdict(
                f["n"], row["n_reference"], n_diverged, row["diff_pct"], row["p_value_adjusted"], alpha
            )
        compared |= _all_runs(study, v) | _sizing(study, row, mine, decided.get("reference_seeds"))
    return row | {
        "variant": v,
        "reference": reference,
        "n_runs": n_runs,
        "n_diverged": n_diverged,
        **{f"final_{k}_pct": f[k] for k in ("mean", "std", "ci_low", "ci_high")},
        **{f"best_{k}_pct": b[k] for k in ("mean", "std", "ci_low", "ci_high")},
        "multiplicity": study.settings.multiplicity,
        **compared,
        "train_seconds_mean": float(study.runs.loc[study.runs["variant"] == v, "train_seconds"].mean()),
    }


def _all_runs(study: _Study, v: str) -> dict:
    """Welch's test on every finished run of `v` and the reference, as if their number had been fixed."""
    final, reference = study.final, study.reference
    if len(final[v]) < 2 or len(final[reference]) < 2:
        return {}
    cmp = welch(final[v], final[reference], study.resolution, study.settings.alpha)
    return {
        "all_runs_n_reference": len(final[reference]),
        "all_runs_diff_pct": cmp["diff"],
        "all_runs_diff_ci_low_pct": cmp["ci_low"],
        "all_runs_diff_ci_high_pct": cmp["ci_high"],
        "all_runs_p_value": cmp["p_value"],
    }


def _sizing(study: _Study, row: dict, mine: pd.DataFrame, reference_seeds) -> dict:
    """seeds_needed and detectable_diff_pct, from the spreads of the runs the verdict used."""
    if not (row["n"] >= 2 and row["n_reference"] >= 2 and math.isfinite(row["diff_pct"])):
        return {}
    ref = study.ok[study.ok["variant"] == study.reference]
    if reference_seeds is not None:
        ref = ref[ref["seed"].isin(reference_seeds)]
    floor = spread_floor(study.resolution)
    sd_v, sd_ref = (max(float(np.std(100 * x["final_test_acc"], ddof=1)), floor) for x in (mine, ref))
    sizing = sizing_alpha(len(study.final) - 1, study.settings)
    return {
        "seeds_needed": seeds_needed(row["diff_pct"], sd_v, sd_ref, sizing),
        "detectable_diff_pct": detectable_diff(sd_v, sd_ref, row["n"], len(ref), sizing),
    }
