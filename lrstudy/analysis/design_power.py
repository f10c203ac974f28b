"""The power an adaptive design has with the spread seen: simulated on the design's own decision path.

seed_plan.csv says, at every look, how likely this design is to call a true difference of `effect_pct`
better, and, where that is short of `adaptive.power`, which `max_seeds` would reach it. Both come from
studies simulated with the workflow's own `Walk` (lrstudy.analysis.adaptive): Welch's t with its few
degrees of freedom, the boundaries, the negligible and futile stops, the spread floor. A normal
approximation of the same design overstates it by 0.09-0.16 with 2-3 seeds a stage.

One comparison is simulated, tested at the two-sided level it had at that look throughout (alpha / m
at first under Holm): alpha passed on later only adds power, so this is the power the comparison was
sure to have. The spread is the one seen at that look, itself an estimate from a few runs: the power
at the ends of its 95% confidence interval says how far off the estimate may be.

Powers over a grid of spreads come from one simulation per design and level (the same random numbers
scaled to each spread), read off by interpolation on the probit scale; `max_seeds_for_power` simulates
each design it tries at the spread seen. Fixed random seeds: the same runs give the same plan.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from lrstudy.analysis import adaptive as ad

STUDIES = 4000  # simulated studies per spread: Monte Carlo error of a power at most 0.008
SPREADS = 14  # spreads on a design's power curve (its probit is smooth: read off to within 0.005)
MAX_SEEDS_SIMULATED = 240  # max_seeds_for_power searches up to here; beyond, it says "more than"
SEARCH_STUDIES = 2000  # simulated studies per design max_seeds_for_power tries
SEED = 20240601  # the simulations' random seed


@dataclass(frozen=True)
class Power:
    """A simulated power, its Monte Carlo standard error, and the power at the ends of the 95% CI of
    the spread it was computed at (low: at the larger spread)."""

    power: float
    mcse: float
    low: float
    high: float


def _simulate(design: ad.Design, spreads: np.ndarray, resolution: float, studies: int = STUDIES) -> np.ndarray:
    """P(called better) at a true difference of +effect_pct for each spread, one comparison tested at the
    design's alpha throughout; the same standard normal draws scaled to every spread."""
    rng = np.random.default_rng(SEED)
    # Seed-major draws: a design with more seeds shares its first seeds' draws with a smaller one.
    noise = rng.standard_normal((2, design.max_seeds, studies)).transpose(0, 2, 1)
    sd = np.asarray(spreads, dtype=float)[:, None, None]
    variant = (design.effect_pct + sd * noise[0]).reshape(-1, 1, design.max_seeds)
    reference = (sd * noise[1]).reshape(-1, design.max_seeds)
    walk = ad.walk(design, variant, reference, resolution)
    return (walk.decision[:, 0] == ad.BETTER).reshape(len(spreads), studies).mean(1)


def simulated_power(design: ad.Design, sd: float, level: float, resolution: float, studies: int = STUDIES) -> float:
    """P(called better) at +effect_pct with spread sd, one comparison tested at `level` throughout,
    simulated at this spread alone."""
    return float(_simulate(_alone(design, level), np.array([sd]), resolution, studies)[0])


def _alone(design: ad.Design, level: float) -> ad.Design:
    """The same design for one comparison tested at `level` throughout."""
    return ad.Design(replace(design.settings, multiplicity="none", alpha=float(level)))


@functools.lru_cache(maxsize=64)
def _curve(design: ad.Design, level: float, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """(log spreads, probit powers) over a grid that runs from power 1 to about level: around the spread
    at which a fixed design of max_seeds seeds has power 1/2 (normal approximation)."""
    z = stats.norm.isf(level / 2)
    middle = design.effect_pct * math.sqrt(design.max_seeds / 2) / z
    spreads = middle * np.geomspace(0.15, 3.0, SPREADS)
    power = _simulate(_alone(design, level), spreads, resolution)
    return np.log(spreads), stats.norm.ppf(np.clip(power, 0.5 / STUDIES, 1 - 0.5 / STUDIES))


@functools.lru_cache(maxsize=4096)
def _at(design: ad.Design, level: float, resolution: float, sd: float) -> float:
    """The simulated power at one spread: read off the design's curve, or simulated where it is off it."""
    log_sd, probit = _curve(design, level, resolution)
    if log_sd[0] <= math.log(sd) <= log_sd[-1]:
        return float(stats.norm.cdf(np.interp(math.log(sd), log_sd, probit)))
    return simulated_power(design, sd, level, resolution)


def design_power(design: ad.Design, sd: float, level: float, resolution: float, df: float) -> Power:
    """The power at +effect_pct with seed-to-seed spread sd (estimated with df degrees of freedom),
    one comparison tested at two-sided `level`; NaN without a spread."""
    if not (math.isfinite(sd) and sd > 0):
        return Power(math.nan, math.nan, math.nan, math.nan)
    power = _at(design, level, resolution, sd)
    larger, smaller = (sd * math.sqrt(df / stats.chi2.ppf(q, df)) for q in (0.025, 0.975))  # the spread's 95% CI
    return Power(
        power,
        math.sqrt(max(power * (1 - power), 0.25 / STUDIES) / STUDIES),
        _at(design, level, resolution, larger),
        _at(design, level, resolution, smaller),
    )


def max_seeds_for_power(design: ad.Design, sd: float, level: float, resolution: float) -> float:
    """The smallest max_seeds of whole stages (as large as now) whose simulated power at spread sd reaches
    adaptive.power; NaN when more than MAX_SEEDS_SIMULATED. "About": the spread is rounded up to a grid
    of 10% steps and each design is simulated in SEARCH_STUDIES studies, so that the looks of a study
    share their searches."""
    sd = math.exp(math.ceil(math.log(sd) / 0.1) * 0.1)
    return _max_seeds(_alone(design, level), sd, resolution)


@functools.lru_cache(maxsize=1024)
def _max_seeds(design: ad.Design, sd: float, resolution: float) -> float:
    stage = design.stage_seeds
    # A fixed design of max_seeds seeds and a known spread has more power than this one: it bounds the
    # search from below.
    z = stats.norm.isf(design.alpha / 2) + stats.norm.ppf(design.power)
    high = math.ceil(max(design.max_seeds, 2 * (z * sd / design.effect_pct) ** 2) / stage)  # in stages
    low, top = high - 1, MAX_SEEDS_SIMULATED // stage

    def reached(stages: int) -> bool:
        candidate = design.with_max_seeds(stages * stage)
        return simulated_power(candidate, sd, design.alpha, resolution, SEARCH_STUDIES) >= design.power

    while high > top or not reached(high):  # step up by a third, then bisect
        if high >= top:
            return math.nan
        low, high = high, min(max(math.ceil(high * 4 / 3), high + 1), top)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if not reached(mid) else (low, mid)
    return float(high * stage)


def with_power(design: ad.Design, plan: pd.DataFrame, resolution: float) -> pd.DataFrame:
    """The plan with each look's design power (ad.PLAN_COLUMNS' design_power*), max_seeds_for_power where
    the power is short of adaptive.power, and a WARNING at the end of such a look's reason."""
    plan = plan.copy()
    for i, row in plan[plan["sd_pct"].notna() & plan["diff_pct"].notna()].iterrows():
        level = float(row["alpha_level"])
        power = design_power(design, float(row["sd_pct"]), level, resolution, df=2 * (int(row["seeds"]) - 1))
        plan.loc[i, ["design_power", "design_power_mcse", "design_power_low", "design_power_high"]] = [
            power.power,
            power.mcse,
            power.low,
            power.high,
        ]
        if power.power < design.power:
            needed = max_seeds_for_power(design, float(row["sd_pct"]), level, resolution)
            plan.loc[i, "max_seeds_for_power"] = needed
            plan.loc[i, "reason"] += power_warning(design, plan.loc[i])
    return plan


def power_warning(design: ad.Design, row) -> str:
    """What a look's reason adds when the design's power at effect_pct with the spread seen is short of
    adaptive.power: the power, its uncertainty, and the max_seeds that would reach it."""
    needed = row["max_seeds_for_power"]
    fix = (
        f"max_seeds of about {int(needed)} would reach it"
        if math.isfinite(needed)
        else f"not even max_seeds {MAX_SEEDS_SIMULATED} would reach it"
    )
    return (
        f". WARNING: with the spread seen (sd {row['sd_pct']:.2f} points, an estimate from {int(row['seeds'])} "
        f"runs a side) this design's power at {design.effect_pct:g} points is {row['design_power']:.2f} "
        f"(simulated, \u00b1{row['design_power_mcse']:.2f}; {row['design_power_low']:.2f}-"
        f"{row['design_power_high']:.2f} over the spread's 95% CI), short of power = {design.power:g}; {fix}"
    )
