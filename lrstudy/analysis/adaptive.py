"""Seeds until the answer is clear: a group-sequential multi-seed design with a controlled error rate.

Pure functions, no I/O. Each variant is compared with the reference in stages of as many seeds as the
config lists (`seeds`), up to `adaptive.max_seeds` seeds per variant. After each stage (a look) the
comparison is

- **better / worse**: Welch's test on all its runs so far crosses this look's boundary;
- **negligible**: the difference is shown smaller than `effect_pct`: the repeated 95% confidence interval
  lies inside +-effect_pct (the two one-sided tests of |difference| >= effect_pct, Schuirmann 1987, both
  cross the same boundary);
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

Why not the inverse-normal combination of stage-wise p-values (Lehmacher & Wassmer 1999)? It is exact
under any data-driven stage size, but with stages of 2-3 seeds each stage's Welch test has 2-4 degrees
of freedom: for the README's example (3 seeds per stage, max 12, effect 0.2, sd 0.15) it used more runs
on average than a fixed design with the same power. The fixed stage sizes make it unnecessary here.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from lrstudy.analysis import stats as st
from lrstudy.config import ConfigError

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
    "conditional_power",
    "sd_pct",
]


@dataclass(frozen=True)
class Design:
    """The design fixed by the config: stages of `stage_seeds` seeds up to `max_seeds` per variant."""

    stage_seeds: int
    max_seeds: int
    effect_pct: float
    power: float
    alpha: float = st.ALPHA
    sizes: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        if self.stage_seeds < 2:
            raise ConfigError(
                f"adaptive: seeds lists {self.stage_seeds} seed(s); the first stage needs at least 2 for a test"
            )
        if self.max_seeds < 2 * self.stage_seeds:
            raise ConfigError(
                f"adaptive.max_seeds: {self.max_seeds} leaves no second stage; give at least "
                f"{2 * self.stage_seeds} (stages are as large as `seeds`, {self.stage_seeds})"
            )
        full, rest = divmod(self.max_seeds, self.stage_seeds)
        sizes = [self.stage_seeds] * full
        if rest >= 2:
            sizes.append(rest)
        else:
            sizes[-1] += rest  # one seed has no spread to test with: the last stage takes it
        object.__setattr__(self, "sizes", tuple(sizes))

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
        """Two-sided critical values c_k of the look's Z."""
        return _spending_bounds(tuple(self.info), self.alpha)


def design_from_config(config: Mapping) -> Design | None:
    """The study's design, or None for a fixed design (no `adaptive` key)."""
    adaptive = config.get("adaptive")
    if not adaptive:
        return None
    return Design(
        stage_seeds=len(config["seeds"]),
        max_seeds=int(adaptive["max_seeds"]),
        effect_pct=float(adaptive["effect_pct"]),
        power=float(adaptive["power"]),
    )


def seeds_by_stage(design: Design, seeds: Sequence[int]) -> list[list[int]]:
    """The seeds of each stage: the configured ones, then numbers after the largest configured seed."""
    out, first = [sorted(int(s) for s in seeds)], max(seeds) + 1
    for size in design.sizes[1:]:
        out.append(list(range(first, first + size)))
        first += size
    return out


def possible_seeds(config: Mapping) -> list[int]:
    """Every seed a run of this study may have: the configured ones, and the later stages' if adaptive."""
    seeds = [int(s) for s in config["seeds"]]
    design = design_from_config(config)
    return seeds if design is None else [s for stage in seeds_by_stage(design, seeds) for s in stage]


def obrien_fleming_spending(t, alpha: float = st.ALPHA):
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


def _continue(running: _Running | None, t: float, c: float) -> _Running:
    """The paths still running after a look at information t with boundary c."""
    x, w = _simpson(c * math.sqrt(t))
    if running is None:
        return _Running(x, w * _normal_pdf(x, math.sqrt(t)), t)
    kernel = _normal_pdf(x[:, None] - running.x[None, :], math.sqrt(t - running.t))
    return _Running(x, w * (kernel @ running.mass), t)


def _normal_pdf(x: np.ndarray, sd: float) -> np.ndarray:
    return np.exp(-0.5 * (x / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def _beyond(running: _Running | None, t: float, z: float) -> float:
    """P(still running before the look at information t, and that look's Z >= z)."""
    if running is None:
        return float(special.ndtr(-z))
    dt = t - running.t
    return float(running.mass @ special.ndtr((running.x - z * math.sqrt(t)) / math.sqrt(dt)))


@functools.lru_cache(maxsize=4096)
def _spending_bounds(info: tuple[float, ...], alpha: float) -> np.ndarray:
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
    return np.array(bounds)


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
# so that the same code decides one comparison here and thousands of simulated studies in the tests.


def _welch(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: mean(a) - mean(b), its standard error, Welch-Satterthwaite df, and whether both sides
    have the two finished runs a test needs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = np.sum(~np.isnan(a), -1), np.sum(~np.isnan(b), -1)
    with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        va, vb = np.nanvar(a, -1, ddof=1) / na, np.nanvar(b, -1, ddof=1) / nb
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
        return np.nanmean(a, -1) - np.nanmean(b, -1), np.sqrt(va + vb), df, (na >= 2) & (nb >= 2)


def welch_z(a, b, shift: float = 0.0) -> np.ndarray:
    """Phi^-1(1 - p) of Welch's one-sided test of mean(a) - mean(b) > shift, per row. NaN where a side
    has fewer than two runs; +-inf where neither side has any spread (the difference is then exact)."""
    diff, se, df, ok = _welch(a, b)
    diff = diff - shift
    with np.errstate(all="ignore"):
        p = np.where(se > 0, stats.t.sf(diff / se, df), np.where(diff > 0, 0.0, np.where(diff < 0, 1.0, 0.5)))
    return np.where(ok, stats.norm.isf(p), np.nan)


def pooled_sd(a, b) -> np.ndarray:
    """The seed-to-seed spread of the two sides together: the root mean of their sample variances."""
    with np.errstate(all="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        return np.sqrt((np.nanvar(a, -1, ddof=1) + np.nanvar(b, -1, ddof=1)) / 2)


def conditional_power(design: Design, k: int, z, sd):
    """P(the last look crosses its boundary | Z_k = z) if the true difference were effect_pct in the
    direction of z, with seed-to-seed spread sd (normal approximation). The looks in between are left
    out, which slightly understates it. Vectorised over z and sd."""
    z, sd = np.abs(np.asarray(z, dtype=float)), np.asarray(sd, dtype=float)
    t = design.info[k - 1]
    with np.errstate(all="ignore"):
        drift = np.where(sd > 0, design.effect_pct / (sd * math.sqrt(2 / design.max_seeds)), np.inf)
        return stats.norm.sf((design.bounds[-1] - z * math.sqrt(t) - drift * (1 - t)) / math.sqrt(1 - t))


def look(design: Design, k: int, variant, reference) -> dict:
    """The decision at look k from all runs so far of the variant and the reference (arrays (..., n)).
    Returns arrays: decision, z (variant - reference > 0), conditional_power (NaN unless open or futile)
    and sd."""
    c = design.bounds[k - 1]
    z = welch_z(variant, reference)
    sd = pooled_sd(variant, reference)
    with np.errstate(invalid="ignore"):
        shown = np.abs(z) >= c
        small = (welch_z(variant, reference, design.effect_pct) <= -c) & (
            welch_z(variant, reference, -design.effect_pct) >= c
        )
    last = k == design.stages
    cp = np.where(shown | small | np.isnan(z) | last, np.nan, conditional_power(design, k, z, sd))
    decision = np.select(
        [np.isnan(z), shown & (z > 0), shown, small, np.full(np.shape(z), last), cp < design.futility_cp],
        [TOO_FEW, BETTER, WORSE, NEGLIGIBLE, MAXED, FUTILE],
        default=OPEN,
    )
    return {"decision": decision, "z": z, "conditional_power": cp, "sd": sd}


def repeated_ci(design: Design, k: int, variant, reference) -> tuple[float, float]:
    """The repeated 95% confidence interval of the difference at look k (Jennison & Turnbull 1989): the
    shifts that look's boundary does not reject. It covers at all looks at once, so stopping keeps it
    valid. Welch's df does not depend on the shift, so the ends are diff -+ t_crit * se."""
    diff, se, df, _ = (float(x) for x in _welch(variant, reference))
    if not se > 0:
        return diff, diff
    half = float(stats.t.isf(stats.norm.sf(design.bounds[k - 1]), df)) * se
    return diff - half, diff + half


# ----------------------------------------------------------------------------------------------------------
# A study: every variant against the reference, look by look.


def study_plan(
    design: Design, runs: pd.DataFrame, variants: Sequence[str], reference: str, seeds: Sequence[int]
) -> pd.DataFrame:
    """Every look so far of every comparison, and the reference's stages: PLAN_COLUMNS, one row per
    variant and stage it ran. `runs` has one row per run: variant, seed, final_pct (NaN if diverged).
    A comparison is looked at once all its runs of that stage are in `runs`; the walk stops at the
    first stage that is not complete."""
    stage_seeds = seeds_by_stage(design, seeds)
    have = {(v, int(s)): f for v, s, f in runs[["variant", "seed", "final_pct"]].itertuples(index=False)}
    others = [v for v in variants if v != reference]
    rows: dict[str, list[dict]] = {v: [] for v in variants}
    open_ = list(others)
    for k in range(1, design.stages + 1):
        needed = stage_seeds[k - 1]
        if not open_ or any((v, s) not in have for v in [reference, *open_] for s in needed):
            break
        rows[reference].append(_reference_row(design, k, reference, open_))
        ref = np.array([have[(reference, s)] for stage in stage_seeds[:k] for s in stage])
        for v in open_:
            var = np.array([have[(v, s)] for stage in stage_seeds[:k] for s in stage])
            rows[v].append(_look_row(design, k, v, var, ref, reference))
        open_ = [v for v in open_ if rows[v][-1]["decision"] == OPEN]
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


def _look_row(design: Design, k: int, variant: str, var: np.ndarray, ref: np.ndarray, reference: str) -> dict:
    out = look(design, k, var, ref)
    decision = str(out.pop("decision"))
    out = {key: float(value) for key, value in out.items()}
    row = {
        "variant": variant,
        "stage": k,
        "seeds": design.ends[k - 1],
        "decision": decision,
        "boundary": float(design.bounds[k - 1]),
        "z": out["z"],
        "sd_pct": out["sd"],
        "conditional_power": out["conditional_power"],
    }
    if decision == TOO_FEW:
        n_var, n_ref = int(np.sum(~np.isnan(var))), int(np.sum(~np.isnan(ref)))
        row["reason"] = (
            f"fewer than 2 finished runs after {design.ends[k - 1]} seeds ({variant}: {n_var}, "
            f"{reference}: {n_ref}): no test, no more seeds"
        )
        return row
    row["diff_pct"] = float(np.nanmean(var) - np.nanmean(ref))
    row["rci_low_pct"], row["rci_high_pct"] = repeated_ci(design, k, var, ref)
    row["sequential_p_value"] = sequential_p(design, k, out["z"])
    row["reason"] = _reason(design, k, row)
    return row


def _reason(design: Design, k: int, row: dict) -> str:
    n, stages, d = design.ends[k - 1], design.stages, design.effect_pct
    seen = (
        f"after {n} seeds: difference {row['diff_pct']:+.2f} points, Z = {row['z']:+.2f} against the "
        f"boundary \u00b1{row['boundary']:.2f}"
    )
    cp = (
        f"conditional power to show a difference of {d:g} points by {design.max_seeds} seeds: "
        f"{row['conditional_power']:.2f}"
    )
    return {
        BETTER: f"{seen}: shown better (sequential p = {row['sequential_p_value']:.2g})",
        WORSE: f"{seen}: shown worse (sequential p = {row['sequential_p_value']:.2g})",
        NEGLIGIBLE: (
            f"{seen}; repeated 95% CI {row['rci_low_pct']:+.2f} to {row['rci_high_pct']:+.2f} lies "
            f"inside \u00b1{d:g}: the difference is shown smaller than {d:g} points"
        ),
        FUTILE: f"{seen}; {cp}, below 1 - power = {design.futility_cp:.2f}: stopped, no more seeds",
        MAXED: f"{seen}: no difference shown with max_seeds = {design.max_seeds} seeds",
        OPEN: (f"{seen}; {cp}: {design.sizes[k] if k < stages else 0} more seeds (stage {k + 1} of up to {stages})"),
    }[row["decision"]]


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


def with_design(table: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """The per-variant stats table (lrstudy.analysis.stats.study_stats) with the design's verdicts: the stages
    each variant ran, the repeated p-value of its last look and the verdict that look reached."""
    table = table.copy()
    last = plan.groupby("variant", sort=False).tail(1).set_index("variant")
    for i, row in table.iterrows():
        if row["variant"] not in last.index:
            continue
        decided = last.loc[row["variant"]]
        table.loc[i, "stages"] = int(decided["stage"])
        table.loc[i, "sequential_p_value"] = decided["sequential_p_value"]
        if decided["decision"] in VERDICTS:
            table.loc[i, "verdict"] = VERDICTS[decided["decision"]]
    return table
