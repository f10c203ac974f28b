"""Seeds until the answer is clear: a group-sequential multi-seed design with a controlled error rate.

Pure functions, no I/O. Each variant is compared with the reference in stages of as many seeds as the
config lists (`seeds`), up to `adaptive.max_seeds` seeds per variant. After each stage (a look) the
comparison is

- **better / worse**: Welch's test on all its runs so far crosses this look's boundary at the
  comparison's level (below);
- **negligible**: the difference is shown smaller than `effect_pct`: the repeated confidence interval at
  the comparison's first level (alpha / m under Holm, never raised by alpha passed on) lies inside
  +-effect_pct (the two one-sided tests of |difference| >= effect_pct, Schuirmann 1987, both cross the
  same boundary). At most one of "no difference" and "|difference| >= effect_pct" is true, and each
  one-sided test errs with at most alpha / (2m): over the comparisons a false "negligible" has chance at
  most alpha / 2, a family of its own beside the better/worse family's alpha;
- **futile**: the conditional power of showing a true difference of `effect_pct` by max_seeds has fallen
  below 1 - `power` (stochastic curtailment, Lan, Simon & Halperin 1982);
- **open** ("continue"): the variant and the reference get the next stage's seeds;
- after the last look, without a boundary crossed: **max seeds**, no detectable difference.

The method, named in the README and the report: a **group-sequential Welch t-test with the
O'Brien-Fleming-type alpha-spending function of Lan & DeMets** (1983, Biometrika 70:659-663), two-sided
alpha = 0.05. Each look's t-statistic is mapped to the normal scale through its p-value and compared with
the boundaries of the canonical joint distribution (the "significance level approach" for t-tests,
Jennison & Turnbull 2000, Group Sequential Methods with Applications to Clinical Trials, sec. 11.5).

- Which variants continue depends on the data, but the stage sizes do not: they are fixed by the config
  (the configured seed count; the last stage takes the remainder), so the looks, their information
  fractions t_k = seeds / max_seeds and the boundaries are all fixed before any run. Stopping early is
  what a group-sequential design accounts for; the reference's extra seeds for other variants are not
  used in a stopped comparison.
- The spending function alpha(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t)) on each side (a = alpha / 2) spends
  almost nothing at the first looks: a variant is called better or worse after 3 seeds only for an
  overwhelming difference, and most alpha is left for the last look (boundary 2.01 instead of 1.96).
- Stopping for "negligible" or "futile" only ever removes rejections (non-binding): the boundaries assume
  every comparison could run to max_seeds, so these stops never raise the false-positive rate.
- The t-statistics make the error rate approximate, as Welch's test itself is: the simulation tests
  check it stays within Monte Carlo error of alpha with equal and with unequal spreads.

Several variants share the reference: with `stats.multiplicity: holm` (the default) the family-wise
error, the chance of any false better/worse, is kept at alpha by the graphical Holm procedure for
group-sequential designs (Maurer & Bretz 2013; `Walk`): each of the m comparisons is tested at alpha / m,
and the alpha of a rejected one passes to the rest. With `none` each comparison has alpha on its own.
Every decision, in the workflow and in lrstudy-design's simulations, is made by `Walk`.

Why not the inverse-normal combination of stage-wise p-values (Lehmacher & Wassmer 1999)? It is exact
under any data-driven stage size, but with stages of 2-3 seeds each stage's Welch test has 2-4 degrees
of freedom: for the README's example (3 seeds per stage, max 12, effect 0.2, sd 0.15) it used more runs
on average than a fixed design with the same power. The fixed stage sizes make it unnecessary here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from lrstudy.analysis import stats as st
from lrstudy.config import ALPHA, Stats

P_FLOOR = 1e-12  # the smallest repeated p-value reported
GRID = 401  # points per look of the numerical integration (Simpson's rule): boundaries to ~1e-8

METHOD = (
    "group-sequential Welch t-test, O'Brien-Fleming-type alpha spending (Lan & DeMets 1983, "
    "Biometrika 70:659-663; t-tests as in Jennison & Turnbull 2000, sec. 11.5)"
)

# Decisions of one comparison at one look.
BETTER = "better"
WORSE = "worse"
NEGLIGIBLE = "negligible"
FUTILE = "futile"
OPEN = "continue"
MAXED = "max seeds"
TOO_FEW = "too few finished runs"
REFERENCE = "reference"

PLAN_COLUMNS = [
    "variant",
    "stage",
    "seeds",
    "decision",
    "reason",
    "diff_pct",
    "z",
    "boundary",
    "rci_low_pct",
    "rci_high_pct",
    "sequential_p_value",
    "alpha_level",
    "conditional_power",
    "sd_pct",
    "design_power",
    "design_power_mcse",
    "design_power_low",
    "design_power_high",
    "max_seeds_for_power",
]


@dataclass(frozen=True)
class Design:
    """An adaptive study's statistics (Stats with `adaptive`) and what follows from them: the looks, their
    information fractions and boundaries. Made once per Stats by design_of."""

    settings: Stats

    def __post_init__(self):
        if self.settings.adaptive is None:
            raise ValueError("a fixed design (Stats without adaptive) has no looks")

    @property
    def stage_seeds(self) -> int:
        return self.settings.adaptive.stage_seeds

    @property
    def max_seeds(self) -> int:
        return self.settings.adaptive.max_seeds

    @property
    def effect_pct(self) -> float:
        return self.settings.adaptive.effect_pct

    @property
    def power(self) -> float:
        return self.settings.adaptive.power

    @property
    def multiplicity(self) -> str:
        return self.settings.multiplicity

    @property
    def alpha(self) -> float:
        return self.settings.alpha

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.settings.adaptive.sizes

    @property
    def stages(self) -> int:
        return len(self.sizes)

    @property
    def futility_cp(self) -> float:
        return 1 - self.power

    @functools.cached_property
    def ends(self) -> tuple[int, ...]:
        """Seeds per variant after each stage."""
        return tuple(int(n) for n in np.cumsum(self.sizes))

    @functools.cached_property
    def info(self) -> np.ndarray:
        """Information fraction t_k of each look."""
        return np.asarray(self.ends) / self.max_seeds

    @functools.cached_property
    def bounds(self) -> np.ndarray:
        """Two-sided critical values c_k of the look's Z at the design's alpha."""
        return self.bounds_at(self.alpha)

    def bounds_at(self, level: float) -> np.ndarray:
        """The critical values of the same spending function at another two-sided level (a comparison's
        share of alpha under Holm)."""
        return _spending_bounds(tuple(self.info), float(level))

    def with_max_seeds(self, max_seeds: int) -> Design:
        """The same design with another max_seeds."""
        adaptive = replace(self.settings.adaptive, max_seeds=max_seeds)
        return Design(replace(self.settings, adaptive=adaptive))


@functools.cache
def design_of(settings: Stats) -> Design | None:
    """The study's adaptive design, or None for a fixed design (no `adaptive`)."""
    return None if settings.adaptive is None else Design(settings)


def seeds_by_stage(design: Design, seeds: Sequence[int]) -> list[list[int]]:
    """The seeds of each stage: the configured ones, then numbers after the largest configured seed."""
    return design.settings.adaptive.seeds_by_stage(seeds)


def obrien_fleming_spending(t, alpha: float = ALPHA):
    """Two-sided alpha spent by information fraction t: the Lan-DeMets O'Brien-Fleming-type function of
    the one-sided level alpha/2, on each side."""
    return 2 * 2 * stats.norm.sf(stats.norm.isf(alpha / 4) / np.sqrt(np.asarray(t, dtype=float)))


# ----------------------------------------------------------------------------------------------------------
# The canonical joint distribution: S_k = Z_k sqrt(t_k) is a Brownian motion in information time under
# "no difference", so the density of S on the paths still running is one convolution per look (Jennison
# & Turnbull 2000, ch. 19). Tails beyond a boundary are closed-form normal integrals over the last grid.


@dataclass
class _Running:
    """Sub-density of S_k on the paths that have not stopped by look k: grid points, density x weight."""

    x: np.ndarray
    mass: np.ndarray
    t: float


def _simpson(half: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-half, half, GRID)
    w = np.full(GRID, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * (x[1] - x[0]) / 3


def _continue(running: _Running | None, t: float, c: float, drift: float = 0.0) -> _Running:
    """The paths still running after a look at information t with boundary c: |Z| < c. Under a true
    difference S moves by `drift` per unit of information."""
    x, w = _simpson(c * math.sqrt(t))
    if running is None:
        return _Running(x, w * _normal_pdf(x - drift * t, math.sqrt(t)), t)
    dt = t - running.t
    kernel = _normal_pdf(x[:, None] - running.x[None, :] - drift * dt, math.sqrt(dt))
    return _Running(x, w * (kernel @ running.mass), t)


def _normal_pdf(x: np.ndarray, sd: float) -> np.ndarray:
    return np.exp(-0.5 * (x / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def _beyond(running: _Running | None, t: float, z: float, drift: float = 0.0) -> float:
    """P(still running before the look at information t, and that look's Z >= z)."""
    if running is None:
        return float(special.ndtr(drift * math.sqrt(t) - z))
    dt = t - running.t
    return float(running.mass @ special.ndtr((running.x + drift * dt - z * math.sqrt(t)) / math.sqrt(dt)))


@functools.lru_cache(maxsize=4096)
@functools.lru_cache(maxsize=256)
def _spending_bounds(info: tuple[float, ...], alpha: float) -> np.ndarray:
    """The boundaries at these information fractions and level, computed once per process (a design of
    hundreds of looks takes seconds; lrstudy-design's two worlds and the report ask again). Read-only:
    the cache hands out the same array."""
    bounds, running, spent = [], None, 0.0
    for t in info:
        target = float(obrien_fleming_spending(t, alpha)) - spent  # this look's share, half on each side
        c = optimize.brentq(
            lambda c, running=running, t=t, target=target: 2 * _beyond(running, t, c) - target,
            0.0,
            40.0,
            xtol=1e-12,
        )
        running = _continue(running, t, c)
        spent += target
        bounds.append(c)
    out = np.array(bounds)
    out.setflags(write=False)
    return out


def sequential_p(design: Design, k: int, z: float) -> float:
    """The repeated p-value of look k (Jennison & Turnbull 1989): the smallest two-sided alpha at which
    the same design would have crossed its boundary with |Z_k| = |z|. Below alpha exactly when this look
    crosses c_k; like the repeated CI it is valid at every look, whatever made the study stop there."""
    info = tuple(design.info[:k])

    def crossing(log_alpha: float) -> float:
        return abs(z) - _spending_bounds(info, math.exp(log_alpha))[-1]

    lo, hi = math.log(P_FLOOR), math.log(1 - 1e-9)
    if math.isinf(z) or crossing(lo) >= 0:
        return P_FLOOR
    if crossing(hi) < 0:
        return 1.0
    return math.exp(optimize.brentq(crossing, lo, hi, xtol=1e-6))


# ----------------------------------------------------------------------------------------------------------
# One look. Runs come as arrays (..., n) of final accuracies in points, NaN for a missing or diverged run,
# so that the same code decides one study here and thousands of simulated studies in lrstudy-design.


def welch_z(a, b, resolution: float, shift: float = 0.0) -> np.ndarray:
    """Phi^-1(1 - p) of Welch's one-sided test of mean(a) - mean(b) > shift, per row; NaN where a side
    has fewer than two runs. Each side's spread is at least half of `resolution` (stats.spread_floor);
    only with resolution 0 and no spread at all is a difference exact (+-inf)."""
    return _z(st.welch_parts(a, b, resolution), shift)


def _z(parts: tuple[np.ndarray, ...], shift: float = 0.0) -> np.ndarray:
    """welch_z from stats.welch_parts, so that one look computes them once for every shift it tests."""
    diff, se, df, ok = parts
    diff = diff - shift
    with np.errstate(all="ignore"):
        p = np.where(se > 0, stats.t.sf(diff / se, df), np.where(diff > 0, 0.0, np.where(diff < 0, 1.0, 0.5)))
    return np.where(ok, stats.norm.isf(p), np.nan)


def pooled_sd(a, b, resolution: float) -> np.ndarray:
    """The seed-to-seed spread of the two sides together: the root mean of their sample variances, each
    side's spread at least half of `resolution` (stats.spread_floor)."""
    floor = st.spread_floor(resolution)
    with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        sa = np.maximum(np.nanstd(a, -1, ddof=1), floor)
        sb = np.maximum(np.nanstd(b, -1, ddof=1), floor)
    return np.sqrt((sa**2 + sb**2) / 2)


def _drift(design: Design, sd):
    """E(S) per unit of information at a true difference of effect_pct with seed-to-seed spread sd."""
    with np.errstate(divide="ignore"):
        return np.where(sd > 0, design.effect_pct / (np.asarray(sd) * math.sqrt(2 / design.max_seeds)), np.inf)


def conditional_power(design: Design, k: int, z, sd, c_last):
    """P(the last look crosses its boundary c_last | Z_k = z) if the true difference were effect_pct in
    the direction of z, with seed-to-seed spread sd (normal approximation). The looks in between are left
    out, which slightly understates it. Vectorised over z, sd and c_last."""
    z = np.abs(np.asarray(z, dtype=float))
    t = design.info[k - 1]
    with np.errstate(all="ignore"):
        return stats.norm.sf((c_last - z * math.sqrt(t) - _drift(design, sd) * (1 - t)) / math.sqrt(1 - t))


def repeated_ci(variant, reference, resolution: float, c: float) -> tuple[float, float]:
    """The repeated confidence interval of the difference at a look with boundary c (Jennison & Turnbull
    1989): the shifts that boundary does not reject. It covers at all looks at once, so stopping keeps it
    valid. Welch's df does not depend on the shift, so the ends are diff -+ t_crit * se."""
    diff, se, df, _ = (float(x) for x in st.welch_parts(variant, reference, resolution))
    if not se > 0:
        return diff, diff
    half = float(stats.t.isf(stats.norm.sf(c), df)) * se
    return diff - half, diff + half


class Walk:
    """The decisions of every comparison with the reference, look by look, for many studies at once:
    arrays (studies, m) for m comparisons. study_plan walks one study with it and lrstudy-design thousands,
    so the design it checks is the path the workflow takes.

    The family-wise error is controlled by the graphical Holm procedure for group-sequential designs
    (Maurer & Bretz 2013, Statistics in Biopharmaceutical Research 5:311-320): each comparison starts with
    alpha / m and the spending function's boundaries at that level; when one is rejected its alpha is
    passed on equally to those not rejected, and each of them is tested again at its larger level at
    every look it has had (one stopped as negligible or futile can still be rejected then). Its repeated
    p-values, Holm-adjusted (stats.holm), reject exactly the same comparisons. With multiplicity `none`
    each comparison has all of alpha, as if it were the only one."""

    def __init__(self, design: Design, m: int, studies: int, resolution: float):
        self.design, self.m, self.resolution = design, m, resolution
        shape, looks = (studies, m), design.stages
        self.decision = np.full(shape, OPEN, dtype=object)
        self.z = np.full((*shape, looks), np.nan)
        self.last_look = np.zeros(shape, dtype=int)  # the last look each comparison had
        self.crossed_at = np.zeros(shape, dtype=int)  # a rejected one's look whose Z crossed
        self.level = np.full((*shape, looks), np.nan)  # each look's two-sided alpha of the comparison
        self.conditional_power = np.full((*shape, looks), np.nan)
        self.sd = np.full((*shape, looks), np.nan)
        self.rejected_level = np.full(shape, np.nan)
        self.diff, self.se, self.df = (np.full((*shape, looks), np.nan) for _ in range(3))  # Welch's, each look
        shares = range(1, max(m, 1) + 1) if design.multiplicity == "holm" else [1]
        self._bounds = np.stack([design.bounds_at(design.alpha / j) for j in shares])  # row j - 1: alpha / j

    def rejected(self) -> np.ndarray:
        return (self.decision == BETTER) | (self.decision == WORSE)

    @property
    def first_level(self) -> float:
        """Each comparison's two-sided level before any alpha is passed on: alpha / m under Holm."""
        return self.design.alpha / (max(self.m, 1) if self.design.multiplicity == "holm" else 1)

    def _share(self) -> np.ndarray:
        """Per study, j of the level alpha / j of a comparison not yet rejected."""
        if self.design.multiplicity != "holm":
            return np.ones(len(self.decision), dtype=int)
        return np.maximum(self.m - self.rejected().sum(1), 1)

    def step(self, k: int, variant, reference) -> None:
        """Look k. variant: (studies, m, n) every run so far of each comparison's variant (NaN where it
        has none); reference: (studies, n)."""
        d, res = self.design, self.resolution
        ref = np.asarray(reference, dtype=float)[:, None, :]
        open_ = self.decision == OPEN
        parts = st.welch_parts(variant, ref, res)
        z = _z(parts)
        self.z[..., k - 1] = np.where(open_, z, np.nan)
        for seen, part in zip((self.diff, self.se, self.df), parts, strict=False):
            seen[..., k - 1] = np.where(open_, part, np.nan)
        self.last_look[open_] = k
        self._reject(k)
        still = self.decision == OPEN
        share = self._share()
        bounds = self._bounds[share - 1]
        c_last = bounds[:, -1:]
        # Negligible is claimed at the first level, never raised by alpha passed on: under Holm, over the
        # comparisons, the chance of any false "negligible" stays below alpha / 2 on its own.
        c = self._bounds[-1, k - 1]  # the boundary at first_level
        with np.errstate(invalid="ignore"):
            small = (_z(parts, d.effect_pct) <= -c) & (_z(parts, -d.effect_pct) >= c)
        sd = pooled_sd(variant, ref, res)
        last = k == d.stages
        cp = np.where(np.isnan(z) | small | last, np.nan, conditional_power(d, k, z, sd, c_last))
        decision = np.select(
            [np.isnan(z), small, np.full(z.shape, last), cp < d.futility_cp],
            [TOO_FEW, NEGLIGIBLE, MAXED, FUTILE],
            default=OPEN,
        )
        self.decision = np.where(still, decision, self.decision)
        level = np.where(still, d.alpha / share[:, None], self.rejected_level)
        self.level[..., k - 1] = np.where(open_, level, np.nan)
        self.conditional_power[..., k - 1] = np.where(still, cp, np.nan)
        self.sd[..., k - 1] = np.where(open_, sd, np.nan)

    def _reject(self, k: int) -> None:
        """Holm's step-down at this look: reject every comparison whose Z crossed, at some look so far,
        the boundary of its current level; their alpha goes to the rest, which are tested again."""
        for _ in range(self.m):
            share = self._share()
            bounds = self._bounds[share - 1][:, None, :k]
            z = self.z[..., :k]
            excess = np.where(np.isnan(z), -np.inf, np.abs(z) - bounds)
            look = excess.argmax(-1)
            new = (np.take_along_axis(excess, look[..., None], -1)[..., 0] >= 0) & ~self.rejected()
            if not new.any():
                return
            sign = np.take_along_axis(z, look[..., None], -1)[..., 0]
            self.decision = np.where(new, np.where(sign > 0, BETTER, WORSE), self.decision)
            self.crossed_at = np.where(new, look + 1, self.crossed_at)
            self.rejected_level = np.where(new, self.design.alpha / share[:, None], self.rejected_level)

    def decided_look(self) -> np.ndarray:
        """(studies, m): the look whose runs a comparison's verdict rests on, 1-based (0: none): the one
        whose Z crossed for a rejected comparison, else its last."""
        return np.where(self.rejected(), self.crossed_at, self.last_look)

    def simultaneous_ci(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high), each (studies, m): the repeated CIs at alpha / m (also under multiplicity none) at
        each comparison's decided look. Repeated CIs cover at every look at once (Jennison & Turnbull 1989), so
        with Bonferroni over the m comparisons they cover every true difference at once with probability
        1 - alpha, wherever the comparisons stopped; one that excludes 0 comes with that verdict."""
        look = np.maximum(self.decided_look(), 1)[..., None] - 1
        diff, se, df = (np.take_along_axis(x, look, -1)[..., 0] for x in (self.diff, self.se, self.df))
        c = self.design.bounds_at(self.design.alpha / max(self.m, 1))[look[..., 0]]
        with np.errstate(invalid="ignore"):
            half = np.where(se > 0, stats.t.isf(stats.norm.sf(c), df) * se, 0.0)
        return diff - half, diff + half

    def seeds(self) -> np.ndarray:
        """(studies, m): the seeds each comparison's variant ran."""
        return np.asarray(self.design.ends)[np.maximum(self.last_look, 1) - 1]

    def runs(self) -> np.ndarray:
        """Runs per study: every variant's seeds, and the reference's, which runs while any comparison is open."""
        seeds = self.seeds()
        return seeds.sum(1) + seeds.max(1, initial=self.design.ends[0])


def walk(design: Design, variant, reference, resolution: float) -> Walk:
    """Every look of studies whose runs are drawn up front: variant (studies, m, max_seeds), reference
    (studies, max_seeds); a stage is looked at while any comparison of any study is open."""
    out = Walk(design, np.shape(variant)[1], len(reference), resolution)
    for k, n in enumerate(design.ends, start=1):
        if not (out.decision == OPEN).any():
            break
        out.step(k, variant[..., :n], reference[:, :n])
    return out


# ----------------------------------------------------------------------------------------------------------
# A study: every variant against the reference, look by look.


def study_plan(
    design: Design,
    runs: pd.DataFrame,
    variants: Sequence[str],
    reference: str,
    seeds: Sequence[int],
    resolution: float,
) -> pd.DataFrame:
    """Every look so far of every comparison, and the reference's stages: PLAN_COLUMNS, one row per
    variant and stage it ran. `runs` has one row per run: variant, seed, final_pct (NaN if diverged).
    A comparison is looked at once all its runs of that stage are in `runs`; the walk stops at the
    first stage that is not complete. A comparison closed earlier and rejected later, with alpha passed
    on to it, has its last row's decision changed."""
    stage_seeds = seeds_by_stage(design, seeds)
    have = {(v, int(s)): f for v, s, f in runs[["variant", "seed", "final_pct"]].itertuples(index=False)}
    others = [v for v in variants if v != reference]
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    state = Walk(design, len(others), 1, resolution)
    for k in range(1, design.stages + 1):
        open_ = [v for v, d in zip(others, state.decision[0], strict=True) if d == OPEN]
        if not open_ or any((v, s) not in have for v in [reference, *open_] for s in stage_seeds[k - 1]):
            break
        rows[reference].append(_reference_row(design, k, reference, open_))
        so_far = [s for stage in stage_seeds[:k] for s in stage]
        ref = np.array([[have[(reference, s)] for s in so_far]])
        var = np.array([[[have.get((v, s), np.nan) for s in so_far] for v in others]])
        before = state.decision[0].copy()
        state.step(k, var, ref)
        for i, v in enumerate(others):
            if before[i] == OPEN:
                rows[v].append(_look_row(design, state, k, i, v, var[0, i], ref[0], reference))
            elif state.decision[0, i] != before[i]:
                rows[v][-1] = _passed_on(rows[v][-1], state, k, i)
    table = pd.DataFrame([r for v in variants for r in rows[v]], columns=PLAN_COLUMNS)
    return table.astype({"stage": int, "seeds": int})


def _reference_row(design: Design, k: int, reference: str, open_: Sequence[str]) -> dict:
    why = (
        "the first stage"
        if k == 1
        else f"stage {k} of up to {design.stages}, for the comparisons still open: {', '.join(open_)}"
    )
    return {
        "variant": reference,
        "stage": k,
        "seeds": design.ends[k - 1],
        "decision": REFERENCE,
        "reason": f"the reference: {why}",
    }


def _look_row(
    design: Design, state: Walk, k: int, i: int, variant: str, var: np.ndarray, ref: np.ndarray, reference: str
) -> dict:
    decision, level = str(state.decision[0, i]), float(state.level[0, i, k - 1])
    row = {
        "variant": variant,
        "stage": k,
        "seeds": design.ends[k - 1],
        "decision": decision,
        "alpha_level": level,
        "boundary": float(design.bounds_at(level)[k - 1]),
        "z": float(state.z[0, i, k - 1]),
        "sd_pct": float(state.sd[0, i, k - 1]),
        "conditional_power": float(state.conditional_power[0, i, k - 1]),
    }
    if decision == TOO_FEW:
        n_var, n_ref = int(np.sum(~np.isnan(var))), int(np.sum(~np.isnan(ref)))
        row["reason"] = (
            f"fewer than 2 finished runs after {design.ends[k - 1]} seeds ({variant}: {n_var}, "
            f"{reference}: {n_ref}): no test, no more seeds"
        )
        return row
    row["diff_pct"] = float(st.welch_parts(var, ref, state.resolution)[0])
    row["rci_low_pct"], row["rci_high_pct"] = repeated_ci(var, ref, state.resolution, row["boundary"])
    row["first_level"] = state.first_level  # the level a negligible claim is tested at, and its interval
    row["first_rci"] = repeated_ci(var, ref, state.resolution, float(design.bounds_at(state.first_level)[k - 1]))
    row["sequential_p_value"] = sequential_p(design, k, row["z"])
    row["reason"] = _reason(design, k, row, int(state.crossed_at[0, i]))
    return row


def _passed_on(row: dict, state: Walk, k: int, i: int) -> dict:
    """The last row of a comparison closed before look k and rejected at it with alpha passed on."""
    decision, look = str(state.decision[0, i]), int(state.crossed_at[0, i])
    level = float(state.rejected_level[0, i])
    return row | {
        "decision": decision,
        "alpha_level": level,
        "boundary": float(state.design.bounds_at(level)[look - 1]),
        "reason": (
            f"{row['reason']}; at stage {k}, with alpha passed on from comparisons rejected since, its Z of "
            f"stage {look} crosses the boundary at level {level:.3g}: shown {decision}"
        ),
    }


def _reason(design: Design, k: int, row: dict, crossed_at: int) -> str:
    n, stages, d = design.ends[k - 1], design.stages, design.effect_pct
    seen = (
        f"after {n} seeds: difference {row['diff_pct']:+.2f} points, Z = {row['z']:+.2f} against the "
        f"boundary \u00b1{row['boundary']:.2f} (two-sided alpha {row['alpha_level']:.3g})"
    )
    cp = (
        f"conditional power to show a difference of {d:g} points by {design.max_seeds} seeds: "
        f"{row['conditional_power']:.2f}"
    )
    earlier = f" at its stage {crossed_at} look" if crossed_at and crossed_at != k else ""
    reason = {
        BETTER: f"{seen}: shown better{earlier} (sequential p = {row['sequential_p_value']:.2g})",
        WORSE: f"{seen}: shown worse{earlier} (sequential p = {row['sequential_p_value']:.2g})",
        NEGLIGIBLE: (
            f"{seen}; its repeated CI at the first level {row['first_level']:.3g}, {row['first_rci'][0]:+.2f} "
            f"to {row['first_rci'][1]:+.2f}, lies inside \u00b1{d:g}: the difference is shown smaller than "
            f"{d:g} points"
        ),
        FUTILE: f"{seen}; {cp}, below 1 - power = {design.futility_cp:.2f}: stopped, no more seeds",
        MAXED: f"{seen}: no difference shown with max_seeds = {design.max_seeds} seeds",
        OPEN: (f"{seen}; {cp}: {design.sizes[k] if k < stages else 0} more seeds (stage {k + 1} of up to {stages})"),
    }[row["decision"]]
    return reason


def planned_seeds(
    design: Design, plan: pd.DataFrame, variants: Sequence[str], reference: str, seeds: Sequence[int]
) -> dict[str, list[int]]:
    """The seeds each variant runs according to `plan`: the stages it was looked at, plus the next one
    if it is open. Before any look (an empty plan), the first stage."""
    stage_seeds = seeds_by_stage(design, seeds)
    stages = {}
    for v in variants:
        mine = plan[plan["variant"] == v]
        stages[v] = 1 if mine.empty else int(mine["stage"].max()) + (mine["decision"].iloc[-1] == OPEN)
    stages[reference] = max(stages.values())
    return {v: [s for stage in stage_seeds[: stages[v]] for s in stage] for v in variants}


def is_final(plan: pd.DataFrame) -> bool:
    """No comparison is open after its last look: the plan is the study's last."""
    return not (plan.groupby("variant", sort=False).tail(1)["decision"] == OPEN).any()


def final_points(runs: pd.DataFrame) -> pd.DataFrame:
    """variant, seed, final_pct (NaN for a diverged run) from one row per run as summary.csv has them."""
    diverged = runs["diverged"].astype(bool)
    return pd.DataFrame(
        {
            "variant": runs["variant"],
            "seed": runs["seed"].astype(int),
            "final_pct": (100 * runs["final_test_acc"].astype(float)).where(~diverged),
        }
    )


# The study verdict of each decision; "too few finished runs" keeps the fixed analysis's own verdict
# (not enough seeds, or all runs diverged).
VERDICTS = {
    BETTER: st.BETTER,
    WORSE: st.WORSE,
    NEGLIGIBLE: st.NEGLIGIBLE,
    FUTILE: st.NO_DIFFERENCE,
    MAXED: st.NO_DIFFERENCE,
}


def design_verdicts(
    design: Design,
    plan: pd.DataFrame,
    points: pd.DataFrame,
    variants: Sequence[str],
    reference: str,
    seeds: Sequence[int],
    resolution: float,
) -> dict[str, dict]:
    """The verdict columns of stats.csv (stats.VERDICT_COLUMNS) from the plan and the runs it looked at.

    p_value is a comparison's repeated p-value, the smallest over its looks (Jennison & Turnbull 1989);
    p_value_adjusted is Holm's over the comparisons, which rejects exactly what the Walk rejected. The
    difference and the repeated CI, at the level the comparison was tested at, are of the runs of the look
    that decided: the crossing look of a rejected comparison, the last one of the others, with the
    reference's seeds up to that look and none added later for other comparisons."""
    others = [v for v in variants if v != reference]
    looks = {v: plan[plan["variant"] == v] for v in others}
    p = [looks[v]["sequential_p_value"].min(skipna=True) for v in others]  # NaN: no test at any look
    adjusted, level = st.holm(p, design.alpha, design.multiplicity)
    stage_seeds = seeds_by_stage(design, seeds)
    have = {(v, int(s)): f for v, s, f in points[["variant", "seed", "final_pct"]].itertuples(index=False)}
    mine = plan[plan["variant"] == reference]
    out = {} if mine.empty else {reference: {"stages": int(mine["stage"].max())}}
    for v, p_v, adj, lvl in zip(others, p, adjusted, level, strict=True):
        if looks[v].empty:
            continue
        last = looks[v].iloc[-1]
        rejected = last["decision"] in (BETTER, WORSE)
        k = int(looks[v].loc[looks[v]["sequential_p_value"].idxmin(), "stage"]) if rejected else int(last["stage"])
        used = [s for stage in stage_seeds[:k] for s in stage]
        var = np.array([have.get((v, s), math.nan) for s in used])
        ref = np.array([have.get((reference, s), math.nan) for s in used])
        row = {
            "seeds": used,
            "reference_seeds": used,
            "n_reference": int(np.sum(~np.isnan(ref))),
            "stages": int(last["stage"]),
            "p_value": p_v,
            "p_value_adjusted": adj,
            "ci_level": 1 - lvl,
        }
        if last["decision"] in VERDICTS:
            low, high = repeated_ci(var, ref, resolution, float(design.bounds_at(lvl)[k - 1]))
            diff = float(st.welch_parts(var, ref, resolution)[0])
            row |= {"verdict": VERDICTS[last["decision"]], "diff_pct": diff}
            row |= {"diff_ci_low_pct": low, "diff_ci_high_pct": high}
            low, high = repeated_ci(var, ref, resolution, float(design.bounds_at(design.alpha / len(others))[k - 1]))
            row |= {"simultaneous_ci_low_pct": low, "simultaneous_ci_high_pct": high}  # as Walk.simultaneous_ci
        out[v] = row
    return out
