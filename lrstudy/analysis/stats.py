"""Is a variant better than the reference, worse, or not distinguishable with the seeds we have?

Pure functions, no I/O. Accuracies come in as fractions; the study table reports them in percent
(points), because the differences in question are a few tenths of a point.

The comparison is on final test accuracy. Best-epoch accuracy is reported too, but it picks the maximum
over epochs on the test set itself, so it is biased upwards and is not used for a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

ALPHA = 0.05  # two-sided significance level of every test and CI (95%)
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

STATS_COLUMNS = [
    "variant",
    "reference",
    "n_runs",
    "n",
    "n_diverged",
    "final_mean_pct",
    "final_std_pct",
    "final_ci_low_pct",
    "final_ci_high_pct",
    "best_mean_pct",
    "best_std_pct",
    "best_ci_low_pct",
    "best_ci_high_pct",
    "diff_pct",
    "diff_ci_low_pct",
    "diff_ci_high_pct",
    "p_value",
    "verdict",
    "seeds_needed",
    "detectable_diff_pct",
    "train_seconds_mean",
    "stages",
    "sequential_p_value",  # a fixed design has one stage; its verdict comes from p_value
]


def reference_variant(variants: Sequence[str]) -> str:
    """`baseline` when configured, else the first configured variant."""
    if not variants:
        raise ValueError("no variants configured")
    return "baseline" if "baseline" in variants else variants[0]


def describe(percentages: Sequence[float]) -> dict:
    """n, mean, sample std and the t-based 95% CI of the mean of accuracies in percent; std and CI are
    NaN below two values.

    The CI is cut to [0, 100]: with two or three seeds the t interval is wide enough to leave the range
    a mean accuracy can have, and its part outside that range covers nothing."""
    x = np.asarray(percentages, dtype=float)
    n = len(x)
    out = {"n": n, "mean": float(x.mean()) if n else math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if n >= 2:
        out["std"] = _spread(x)
        half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * out["std"] / math.sqrt(n)
        out["ci_low"], out["ci_high"] = max(0.0, out["mean"] - half), min(100.0, out["mean"] + half)
    return out


def _spread(x: np.ndarray) -> float:
    """The sample standard deviation, 0 when it is float rounding of equal values."""
    sd = float(x.std(ddof=1))
    return 0.0 if sd < ROUNDING else sd


def welch(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch's t-test of mean(a) - mean(b): the difference, its 95% CI and the two-sided p-value.

    A difference within ROUNDING is exactly 0, with p = 1: float rounding of equal means is no evidence."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    if abs(diff) < ROUNDING:
        diff = 0.0
    if _spread(a) == 0 and _spread(b) == 0:
        # No spread at all (e.g. a tiny deterministic test set): any difference is exact.
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p_value": 1.0 if diff == 0 else 0.0}
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(1 - ALPHA)
    if diff == 0:
        half = float(ci.high - ci.low) / 2  # Welch's CI is symmetric about the difference
        return {"diff": 0.0, "ci_low": -half, "ci_high": half, "p_value": 1.0}
    return {"diff": diff, "ci_low": float(ci.low), "ci_high": float(ci.high), "p_value": float(res.pvalue)}


def welch_power(diff: float, sd_a: float, sd_b: float, n_a: int, n_b: int) -> float:
    """Power of the two-sided Welch test at level ALPHA to detect a true difference `diff`."""
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb == 0:
        return 1.0 if diff != 0 else ALPHA
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))  # Welch-Satterthwaite
    nc = abs(diff) / math.sqrt(va + vb)
    t = stats.t.ppf(1 - ALPHA / 2, df)
    # The wrong-sign tail is tiny; scipy returns NaN for it when it underflows.
    return float(stats.nct.sf(t, df, nc) + np.nan_to_num(stats.nct.cdf(-t, df, nc)))


def seeds_needed(diff: float, sd_a: float, sd_b: float) -> float:
    """Seeds per variant (both arms equal) for 80% power to detect `diff` with the observed spreads.

    NaN when there is nothing to size (no difference, or no spread estimate); MAX_SEEDS + 1 when it
    takes more than MAX_SEEDS."""
    if not diff or not all(map(math.isfinite, (diff, sd_a, sd_b))):
        return math.nan
    # The normal approximation is a lower bound for the t-test; step up from it to the exact size.
    spread = float(stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)) * math.hypot(sd_a, sd_b)
    if spread > math.sqrt(MAX_SEEDS) * abs(diff):  # the lower bound alone is over the cap
        return MAX_SEEDS + 1
    n = max(2, math.ceil((spread / diff) ** 2))
    while n <= MAX_SEEDS and welch_power(diff, sd_a, sd_b, n, n) < POWER:
        n += 1
    return n


def detectable_diff(sd_a: float, sd_b: float, n_a: int, n_b: int) -> float:
    """The smallest difference the current seeds detect with 80% power (NaN below two seeds a side)."""
    if n_a < 2 or n_b < 2 or not (math.isfinite(sd_a) and math.isfinite(sd_b)):
        return math.nan
    se = math.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)
    if se == 0:
        return 0.0
    return optimize.brentq(lambda d: welch_power(d, sd_a, sd_b, n_a, n_b) - POWER, 0.0, 20 * se)


def verdict(n: int, n_ref: int, n_diverged: int, diff: float, p_value: float) -> str:
    if n == 0 and n_diverged:
        return ALL_DIVERGED
    if n < 2 or n_ref < 2:
        return TOO_FEW
    if p_value < ALPHA:
        return BETTER if diff > 0 else WORSE
    return NO_DIFFERENCE


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


def study_stats(runs: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """One row per variant (config order) from one row per run.

    `runs` needs the columns variant, seed, final_test_acc, best_test_acc (fractions), diverged and
    train_seconds. Diverged runs are counted but left out of every mean, CI and test."""
    reference = reference_variant(variants)
    ok = runs[~runs["diverged"].astype(bool)]
    _check_finished_runs_have_accuracies(ok)
    final = {v: 100 * ok.loc[ok["variant"] == v, "final_test_acc"].to_numpy(float) for v in variants}
    ref = final[reference]
    rows = []
    for v in variants:
        f, b = describe(final[v]), describe(100 * ok.loc[ok["variant"] == v, "best_test_acc"].to_numpy(float))
        n_runs = int((runs["variant"] == v).sum())
        n_diverged = n_runs - f["n"]
        cmp = {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
        sized = {"seeds_needed": math.nan, "detectable_diff_pct": math.nan}
        if v == reference:
            word = ALL_DIVERGED if f["n"] == 0 and n_diverged else REFERENCE
        else:
            if f["n"] >= 2 and len(ref) >= 2:
                cmp = welch(final[v], ref)
                sd_ref = float(np.std(ref, ddof=1))
                sized = {
                    "seeds_needed": seeds_needed(cmp["diff"], f["std"], sd_ref),
                    "detectable_diff_pct": detectable_diff(f["std"], sd_ref, f["n"], len(ref)),
                }
            word = verdict(f["n"], len(ref), n_diverged, cmp["diff"], cmp["p_value"])
        rows.append(
            {
                "variant": v,
                "reference": reference,
                "n_runs": n_runs,
                "n": f["n"],
                "n_diverged": n_diverged,
                **{f"final_{k}_pct": f[k] for k in ("mean", "std", "ci_low", "ci_high")},
                **{f"best_{k}_pct": b[k] for k in ("mean", "std", "ci_low", "ci_high")},
                "diff_pct": cmp["diff"],
                "diff_ci_low_pct": cmp["ci_low"],
                "diff_ci_high_pct": cmp["ci_high"],
                "p_value": cmp["p_value"],
                "verdict": word,
                **sized,
                "train_seconds_mean": float(runs.loc[runs["variant"] == v, "train_seconds"].mean()),
                "stages": 1,
                "sequential_p_value": math.nan,
            }
        )
    table = pd.DataFrame(rows, columns=STATS_COLUMNS)
    table["seeds_needed"] = table["seeds_needed"].astype("Int64")
    return table
