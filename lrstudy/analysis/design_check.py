"""lrstudy-design: the study's decision path, simulated before any GPU hour is spent.

    lrstudy-design --configfile study.yaml --sd 0.15 [--studies N] [--json]
    python -m lrstudy.analysis.design_check ...      (the same, without the console script)

The config is read as the workflow reads it (config.yaml's defaults, the file's keys over them, the same
schema). Final accuracies are drawn for every variant and seed (normal, spread --sd points between seeds)
and decided by the workflow's own code: the adaptive design's Walk (lrstudy.analysis.adaptive), or in a
fixed design Welch's test with the configured multiplicity (lrstudy.analysis.stats). Two worlds:

- null: no variant differs from the reference. fwer is the share of studies with any better/worse
  (the family-wise error), per_comparison_error the share of comparisons;
- effect: every variant is effect_pct better. power is the share of comparisons called better.

In both, simultaneous_coverage is the share of studies whose simultaneous intervals (stats.csv's
simultaneous_ci_*) cover every true difference; in the effect world false_negligible is the share with
any "negligible" (each false there), and called_better_diff the mean difference reported for a
comparison called better (above effect_pct: selection).

Runs count every arm, the reference's included. The fixed design with the same power is the smallest
number of seeds per variant (all at once, same multiplicity) whose simulated power reaches the design's.
Every rate comes with its Monte Carlo standard error; the default --studies keeps it below 0.003.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import jsonschema
import numpy as np
import yaml
from scipy import stats

from lrstudy.analysis import adaptive as ad
from lrstudy.analysis import stats as st
from lrstudy.config import DEFAULTS_FILE, ConfigError, Stats, load_yaml, prepare_config, stats_of
from lrstudy.studies import assemble

SCHEMA = DEFAULTS_FILE.parent / "workflow" / "schemas" / "config.schema.yaml"
CIFAR10_TEST_IMAGES = 10_000
# A rate's Monte Carlo standard error is at most sqrt(0.25 / studies): 0.0030 at 28,000 studies.
DEFAULT_STUDIES = 28_000
MAX_FIXED_SEEDS = 1000
# What one run of lrstudy-design may hold and take. A design of hundreds of looks (max_seeds 1000) held
# 2.1 GB and took minutes at the default --studies: by default it simulates fewer studies and says so; a
# --studies whose arrays would not fit is refused with the estimate.
MEMORY_BUDGET = 2**30  # bytes of simulated accuracies and decisions
TIME_BUDGET = 60.0  # CPU-seconds of the default --studies, estimated from a pilot of PILOT_STUDIES
PILOT_STUDIES = 500


def load_config(configfile: str | Path | None) -> dict:
    """The study's complete config, as the workflow builds and checks it."""
    config, _ = assemble(DEFAULTS_FILE.parent, load_yaml(configfile) if configfile else {}, check_files=False)
    prepare_config(config)
    try:
        jsonschema.validate(config, yaml.safe_load(SCHEMA.read_text()))
    except jsonschema.ValidationError as error:
        where = ".".join(map(str, error.absolute_path)) or "the config"
        raise ConfigError(f"{configfile or 'config.yaml'}: {where}: {error.message}") from None
    return config


@dataclass(frozen=True)
class Spread:
    """How final accuracies scatter between seeds: sd points for the variants, sd_reference for the
    reference; t-distributed with df degrees of freedom (scaled to that sd) or, with df None, normal."""

    sd: float
    sd_reference: float | None = None
    df: float | None = None

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...], reference: bool = False) -> np.ndarray:
        sd = self.sd_reference if reference and self.sd_reference is not None else self.sd
        if self.df is None:
            return rng.normal(0.0, sd, shape)
        return rng.standard_t(self.df, shape) * sd / math.sqrt(self.df / (self.df - 2))


def rate(hits: np.ndarray) -> tuple[float, float]:
    """(mean, Monte Carlo standard error) of per-study values (one row per study)."""
    per_study = hits.reshape(len(hits), -1).mean(1)
    return float(per_study.mean()), float(per_study.std(ddof=1) / math.sqrt(len(per_study)))


def mean_where(values: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """(mean, Monte Carlo standard error) of values (studies, m) over the comparisons `where` holds; the
    error counts each study once (a ratio estimator): a study's comparisons share the reference's runs."""
    count = where.sum(1)
    total = np.where(where, values, 0.0).sum(1)
    n = len(count)
    if count.sum() < 2 or n < 2:
        return math.nan, math.nan
    mean = total.sum() / count.sum()
    return float(mean), float(math.sqrt(n / (n - 1) * ((total - mean * count) ** 2).sum()) / count.sum())


def fixed_decisions(variant, reference, resolution: float, settings: Stats) -> np.ndarray:
    """+1 better, -1 worse, 0 neither, per study and comparison, as stats.fixed_design decides."""
    diff, se, df, _ = st.welch_parts(variant, reference[:, None, :], resolution)
    p = 2 * stats.t.sf(np.abs(diff) / se, df)
    adjusted, _ = st.holm(p, settings.alpha, settings.multiplicity)
    return np.where(adjusted < settings.alpha, np.sign(diff), 0)


def _fixed(variant, reference, resolution: float, settings: Stats) -> Outcome:
    """The outcome of fixed-design studies: stats.fixed_design's verdicts, differences and simultaneous
    intervals."""
    studies, m, n = variant.shape
    diff = st.welch_parts(variant, reference[:, None, :], resolution)[0]
    low, high = st.simultaneous_ci(variant, reference[:, None, :], resolution, m, settings.alpha)
    called = fixed_decisions(variant, reference, resolution, settings)
    seeds = np.full((studies, m), n)
    negligible = np.zeros((studies, m), dtype=bool)  # a fixed design claims no negligible difference
    return Outcome(called, np.full(studies, (m + 1) * n), seeds, np.full(studies, n), diff, low, high, negligible)


def _adaptive(design: ad.Design, variant, reference, resolution: float) -> Outcome:
    """The outcome of adaptive studies, walked by the workflow's own Walk."""
    walk = ad.walk(design, variant, reference, resolution)
    called = np.select([walk.decision == ad.BETTER, walk.decision == ad.WORSE], [1, -1], 0)
    look = np.maximum(walk.decided_look(), 1)[..., None] - 1
    diff = np.take_along_axis(walk.diff, look, -1)[..., 0]
    seeds = walk.seeds()
    reference_seeds = seeds.max(1, initial=design.ends[0])
    negligible = walk.decision == ad.NEGLIGIBLE
    return Outcome(called, walk.runs(), seeds, reference_seeds, diff, *walk.simultaneous_ci(), negligible)


@dataclass(frozen=True)
class Setup:
    """A study as the simulation sees it: its variants, its seeds (an adaptive design's first stage), the
    test images an accuracy is counted on, and how its verdicts are tested."""

    variants: int
    seeds: int
    test_images: int
    settings: Stats

    @classmethod
    def of(cls, config: Mapping, settings: Stats) -> Setup:
        """The setup of a complete config (`settings`: its stats_of)."""
        test_images = config["dataset"]["test_limit"] or CIFAR10_TEST_IMAGES
        return cls(len(config["variants"]), len(config["seeds"]), test_images, settings)

    @property
    def comparisons(self) -> int:
        return self.variants - 1

    def fixed(self, seeds: int) -> Setup:
        """The same study as a fixed design of `seeds` seeds per variant."""
        return replace(self, seeds=seeds, settings=replace(self.settings, adaptive=None))


@dataclass
class Outcome:
    called: np.ndarray  # (studies, m): +1 better, -1 worse, 0 neither
    runs: np.ndarray  # (studies,): every run of the study
    variant_seeds: np.ndarray  # (studies, m)
    reference_seeds: np.ndarray  # (studies,)
    diff: np.ndarray  # (studies, m): the difference beside the verdict (NaN: no test)
    low: np.ndarray  # (studies, m): the simultaneous interval (stats.simultaneous_ci, Walk.simultaneous_ci)
    high: np.ndarray
    negligible: np.ndarray  # (studies, m): called negligible

    def covered(self, truth: float) -> np.ndarray:
        """(studies,): every comparison's simultaneous interval covers its true difference (one without a
        test has none to miss)."""
        return np.all(~(self.low > truth) & ~(self.high < truth), axis=1)


def simulator(setup: Setup, spread: Spread, studies: int, seed: int) -> Callable[[float], Outcome]:
    """diff -> the outcome of `studies` simulated studies of this setup in which every variant is diff
    points better than the reference."""
    m = setup.comparisons
    design = ad.design_of(setup.settings)
    n = setup.seeds if design is None else design.max_seeds

    def run(diff: float) -> Outcome:
        rng = np.random.default_rng(seed)
        variant = diff + spread.draw(rng, (studies, m, n))
        reference = spread.draw(rng, (studies, n), reference=True)
        return decide(setup, variant, reference)

    return run


def decide(setup: Setup, variant, reference) -> Outcome:
    """The outcome of studies of this setup with these final accuracies (points): variant (studies, m,
    seeds), reference (studies, seeds), decided as the workflow decides."""
    design, resolution = ad.design_of(setup.settings), st.resolution_pct(setup.test_images)
    if design is None:
        return _fixed(variant, reference, resolution, setup.settings)
    return _adaptive(design, variant, reference, resolution)


def fixed_seeds_for(power: float, setup: Setup, spread: Spread, effect: float, studies: int, seed: int) -> int:
    """The fewest seeds per variant of a fixed design (same variants and multiplicity) whose simulated
    power at effect reaches `power`; fixed_seeds_searched + 1 when it takes more. The same random numbers
    for every candidate keep the power rising with the seeds."""
    most = fixed_seeds_searched(setup, studies)

    def reached(n: int) -> bool:
        fixed = simulator(setup.fixed(n), spread, studies, seed)(effect)
        return rate(fixed.called == 1)[0] >= power

    low, high = 1, 2  # low never reaches it (one seed has no test), high is the next candidate
    while not reached(high):
        if high >= most:
            return most + 1
        low, high = high, min(2 * high, most)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if reached(mid) else (mid, high)
    return high


def bytes_needed(setup: Setup, studies: int, seeds: int | None = None) -> float:
    """An upper bound of the arrays a simulation of `studies` studies holds at once: both arms' accuracies
    with a copy while they are tested, and an adaptive design's seven arrays per look (Walk's z, level,
    conditional power, spread and Welch's difference, standard error and df; `seeds`: those of a fixed
    design instead)."""
    design = None if seeds is not None else ad.design_of(setup.settings)
    n = seeds or (setup.seeds if design is None else design.max_seeds)
    looks = 0 if design is None else design.stages
    return 8.0 * studies * (2 * (setup.variants * n) + 8 * setup.comparisons * looks)


def fixed_seeds_searched(setup: Setup, studies: int) -> int:
    """The most seeds per variant a fixed design of the same power is searched up to: MAX_FIXED_SEEDS, or
    fewer where `studies` of them would not fit in MEMORY_BUDGET."""
    fits = int(MEMORY_BUDGET // bytes_needed(setup, studies, seeds=1))
    return max(2, min(MAX_FIXED_SEEDS, fits))


def effect_of(setup: Setup, effect_pct: float | None) -> float:
    """The difference to power for: --effect-pct, else adaptive.effect_pct."""
    if effect_pct is not None:
        return effect_pct
    design = ad.design_of(setup.settings)
    if design is None:
        raise ConfigError("a fixed design has no adaptive.effect_pct: give the difference to power for, --effect-pct")
    return design.effect_pct


def affordable_studies(setup: Setup, spread: Spread, effect: float, seed: int) -> tuple[int, str | None]:
    """DEFAULT_STUDIES, or as many as fit MEMORY_BUDGET and TIME_BUDGET (the time per study measured on a
    pilot of PILOT_STUDIES), with a line that says why."""
    design = ad.design_of(setup.settings)
    if design is not None:  # the boundaries are computed once per process: not part of the time per study
        ad.Walk(design, setup.comparisons, 1, 0.01)
    started = time.process_time()
    check(setup, spread, PILOT_STUDIES, seed, effect)
    per_study = (time.process_time() - started) / PILOT_STUDIES
    by_memory = MEMORY_BUDGET / bytes_needed(setup, 1)
    studies = int(min(DEFAULT_STUDIES, by_memory, TIME_BUDGET / max(per_study, 1e-9)))
    if studies >= DEFAULT_STUDIES:
        return DEFAULT_STUDIES, None
    studies = max(PILOT_STUDIES, int(float(f"{studies:.2g}")))
    return studies, (
        f"lrstudy-design: {studies:,} simulated studies, not {DEFAULT_STUDIES:,}: this design would take about "
        f"{per_study * DEFAULT_STUDIES:.0f} CPU-s and {bytes_needed(setup, DEFAULT_STUDIES) / 2**30:.1f} GB at "
        f"{DEFAULT_STUDIES:,} (limits {TIME_BUDGET:.0f} s, {MEMORY_BUDGET / 2**30:.0f} GB); every rate's Monte "
        f"Carlo error is below {math.sqrt(0.25 / studies):.3f}. Give --studies to choose."
    )


def check(
    setup: Setup,
    spread: Spread,
    studies: int = DEFAULT_STUDIES,
    seed: int = 0,
    effect_pct: float | None = None,
) -> dict:
    """The design's operating characteristics: the keys lrstudy-design --json prints."""
    design = ad.design_of(setup.settings)
    effect = effect_of(setup, effect_pct)
    m = setup.comparisons
    if m < 1:
        raise ConfigError("variants: one variant has nothing to be compared with; configure at least two")
    simulate = simulator(setup, spread, studies, seed)
    null, alt = simulate(0.0), simulate(effect)
    fwer, fwer_mcse = rate(np.any(null.called != 0, axis=1))
    per_comparison, per_comparison_mcse = rate(null.called != 0)
    power, power_mcse = rate(alt.called == 1)
    fixed_seeds = fixed_seeds_for(power, setup, spread, effect, studies, seed)
    max_seeds = design.max_seeds if design else setup.seeds
    ceiling, fixed_runs = (m + 1) * max_seeds, (m + 1) * fixed_seeds
    expected = {"null": float(null.runs.mean()), "effect": float(alt.runs.mean())}
    return _errors(null, alt, effect) | {
        "design": "adaptive" if design else "fixed",
        "variants": m + 1,
        "comparisons": m,
        "alpha": setup.settings.alpha,
        "multiplicity": setup.settings.multiplicity,
        "sd": spread.sd,
        "effect_pct": effect,
        "seeds": setup.seeds,
        "max_seeds": max_seeds,
        "studies": studies,
        "test_images": setup.test_images,
        "fwer": fwer,
        "fwer_mcse": fwer_mcse,
        "per_comparison_error": per_comparison,
        "per_comparison_error_mcse": per_comparison_mcse,
        "power": power,
        "power_mcse": power_mcse,
        "expected_runs": expected,
        "seeds_per_variant": {"null": float(null.variant_seeds.mean()), "effect": float(alt.variant_seeds.mean())},
        "reference_seeds": {"null": float(null.reference_seeds.mean()), "effect": float(alt.reference_seeds.mean())},
        "runs_all_max_seeds": ceiling,
        "fixed_design_seeds_same_power": fixed_seeds,
        "fixed_design_seeds_searched": fixed_seeds_searched(setup, studies),
        "fixed_design_runs_same_power": fixed_runs,
        "runs_saved_vs_max_seeds": {k: 1 - v / ceiling for k, v in expected.items()},
        "runs_saved_vs_fixed_same_power": {k: 1 - v / fixed_runs for k, v in expected.items()},
    }


def _errors(null: Outcome, alt: Outcome, effect: float) -> dict:
    """What the intervals and the other claims beside the verdicts do, each with its Monte Carlo error:
    how often the simultaneous intervals cover every true difference, how often "negligible" is claimed
    when every variant is effect better (each claim false), and the difference reported for a
    comparison called better, which selection makes larger than effect on average."""
    coverage = {
        world: rate(outcome.covered(truth)) for world, outcome, truth in (("null", null, 0.0), ("effect", alt, effect))
    }
    return {
        "simultaneous_coverage": {world: c[0] for world, c in coverage.items()},
        "simultaneous_coverage_mcse": {world: c[1] for world, c in coverage.items()},
        **dict(zip(("false_negligible", "false_negligible_mcse"), rate(np.any(alt.negligible, axis=1)), strict=True)),
        **dict(
            zip(("called_better_diff", "called_better_diff_mcse"), mean_where(alt.diff, alt.called == 1), strict=True)
        ),
    }


def table(result: Mapping) -> str:
    """The result as the lines a person reads."""
    r = result
    mult = "Holm" if r["multiplicity"] == "holm" else "none (per comparison)"
    lines = [
        f"{r['design']} design: {r['variants']} variants ({r['comparisons']} compared with the reference), "
        + (
            f"{r['seeds']} seeds a stage, max_seeds {r['max_seeds']}"
            if r["design"] == "adaptive"
            else f"{r['seeds']} seeds each"
        )
        + f"; sd {r['sd']:g} points; {r['studies']:,} simulated studies",
        f"alpha {r['alpha']:g}, multiplicity {mult}",
        f"test set {r['test_images']:,} images: each accuracy moves in steps of {100 / r['test_images']:g} points "
        f"(100/{r['test_images']:,}), and the error rates depend on it",
        "",
        f"{'':44}{'no difference':>16}{'every variant +' + format(r['effect_pct'], 'g'):>22}",
        f"{'family-wise error (any better/worse)':44}{_rate(r['fwer'], r['fwer_mcse']):>16}",
        f"{'per-comparison error':44}{_rate(r['per_comparison_error'], r['per_comparison_error_mcse']):>16}",
        f"{'power (called better)':44}{'':>16}{_rate(r['power'], r['power_mcse']):>22}",
        f"{'simultaneous intervals cover every diff.':44}"
        f"{_rate(r['simultaneous_coverage']['null'], r['simultaneous_coverage_mcse']['null']):>16}"
        f"{_rate(r['simultaneous_coverage']['effect'], r['simultaneous_coverage_mcse']['effect']):>22}",
        f"{'negligible claimed (false: |diff| = effect)':44}{'':>16}"
        f"{_rate(r['false_negligible'], r['false_negligible_mcse']):>22}",
        f"{'difference reported when called better':44}{'':>16}"
        f"{_rate(r['called_better_diff'], r['called_better_diff_mcse'], 4):>22}",
        f"{'runs, all arms (expected)':44}{r['expected_runs']['null']:>16.1f}{r['expected_runs']['effect']:>22.1f}",
        f"{'seeds per variant':44}{r['seeds_per_variant']['null']:>16.2f}{r['seeds_per_variant']['effect']:>22.2f}",
        f"{'seeds of the reference':44}{r['reference_seeds']['null']:>16.2f}{r['reference_seeds']['effect']:>22.2f}",
        "",
        _ceiling_line(r),
        _fixed_line(r),
    ]
    return "\n".join(lines)


def _ceiling_line(r: Mapping) -> str:
    """The runs of every arm at its most seeds: what the adaptive design saves on; a fixed design runs them all."""
    if r["design"] == "fixed":
        return f"{r['seeds']} seeds per arm: {r['runs_all_max_seeds']} runs in every study"
    return (
        f"max_seeds for every arm: {r['runs_all_max_seeds']} runs; saved "
        f"{100 * r['runs_saved_vs_max_seeds']['null']:.0f}% (no difference), "
        f"{100 * r['runs_saved_vs_max_seeds']['effect']:.0f}% (effect)"
    )


def _fixed_line(r: Mapping) -> str:
    if r["fixed_design_seeds_same_power"] > r["fixed_design_seeds_searched"]:
        return f"fixed design with the same power: more than {r['fixed_design_seeds_searched']} seeds per variant"
    saved = r["runs_saved_vs_fixed_same_power"]
    return (
        f"fixed design with the same power: {r['fixed_design_seeds_same_power']} seeds per variant, "
        f"{r['fixed_design_runs_same_power']} runs; saved {100 * saved['null']:.0f}% "
        f"(no difference), {100 * saved['effect']:.0f}% (effect)"
    )


def _rate(value: float, mcse: float, digits: int = 3) -> str:
    return f"{value:.{digits}f} \u00b1 {mcse:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lrstudy-design", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", help="the study's config file, as given to snakemake (default: config.yaml)")
    parser.add_argument(
        "--sd", type=float, required=True, help="assumed spread of final accuracy between seeds, points"
    )
    parser.add_argument("--sd-reference", type=float, help="the reference's spread, if it differs (default: --sd)")
    parser.add_argument(
        "--studies", type=int, help=f"simulated studies (default {DEFAULT_STUDIES:,}, fewer for a design too large)"
    )
    parser.add_argument("--effect-pct", type=float, help="the difference to power for (default: adaptive.effect_pct)")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's random seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if problem := bad_argument(args):
        parser.error(problem)
    try:
        config = load_config(args.configfile)
        setup = Setup.of(config, stats_of(config))
        spread, effect = Spread(args.sd, args.sd_reference), effect_of(setup, args.effect_pct)
        studies = args.studies
        if studies is None:
            studies, note = affordable_studies(setup, spread, effect, args.seed)
            if note:
                print(note, file=sys.stderr)
        elif (needed := bytes_needed(setup, studies)) > MEMORY_BUDGET:
            fits = int(MEMORY_BUDGET / bytes_needed(setup, 1))
            raise ConfigError(
                f"--studies {studies:,} would hold about {needed / 2**30:,.1f} GB of simulated accuracies, more than "
                f"the {MEMORY_BUDGET / 2**30:.0f} GB this command allows: give --studies {fits:,} or fewer"
            )
        result = check(setup, spread, studies, args.seed, effect)
    except ConfigError as error:
        sys.exit(f"lrstudy-design: {error}")
    print(json.dumps(result, indent=2) if args.json else table(result))


def bad_argument(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line's numbers, as a sentence; None when nothing is."""
    for flag, value in (("--sd", args.sd), ("--sd-reference", args.sd_reference)):
        if value is not None and not (math.isfinite(value) and value > 0):
            return f"{flag} is {value}: give the spread of final accuracy between seeds, a positive number of points"
    if args.effect_pct is not None and not (math.isfinite(args.effect_pct) and args.effect_pct > 0):
        return f"--effect-pct is {args.effect_pct}: give the difference to power for, a positive number of points"
    if args.seed < 0:
        return f"--seed is {args.seed}: give a seed of 0 or more"
    if args.studies is not None and args.studies < 2:
        return f"--studies is {args.studies}: simulate at least 2 studies"
    return None


if __name__ == "__main__":
    main()
